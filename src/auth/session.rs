//! Cookies a sign-in sets: the session that lets one person decide one thing for a few minutes,
//! and the marker that ties a sign-in under way to the browser that started it.
//!
//! Both are signed (HMAC-SHA256, by the `cookie` crate's signed jar) with a key derived from the
//! link key, so they survive a restart and every replica with the same key accepts them. They
//! are `HttpOnly`, `SameSite=Lax`, `Secure` when the pages are served over https, and limited to
//! the paths that need them (an approval's `/a/{id}/`, a review link's `/review/{token}`, a pause's
//! `/p/{call}/`). A session must never be accepted for another decision, another
//! address, or after it expired.

use cookie::{Cookie, CookieJar, Key, SameSite};
use serde::{Deserialize, Serialize};

use crate::approval::link::LinkKey;

/// The session cookie's name.
pub const SESSION: &str = "airlock_session";
/// The cookie naming the `state` of the sign-in this browser started.
pub const SIGNING_IN: &str = "airlock_signin";

/// The signing key of the cookies, derived from the link key (HMAC, a separate purpose).
#[derive(Clone)]
pub struct CookieKey(Key);

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

impl CookieKey {
    pub fn derive(link: &LinkKey) -> CookieKey {
        // 64 bytes, as the cookie crate wants: two HMACs of the link key under this purpose.
        let a = link.purpose_token(&["airlock.cookie.v1", "1"]);
        let b = link.purpose_token(&["airlock.cookie.v1", "2"]);
        let bytes = hex::decode(format!("{a}{b}")).unwrap_or_default();
        CookieKey(Key::try_from(bytes.as_slice()).unwrap_or_else(|_| Key::generate()))
    }
}

/// A signed-in person, allowed to decide one thing until `expires` (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    #[serde(rename = "d")]
    pub decision: String,
    #[serde(rename = "e")]
    pub email: String,
    /// The provider's subject (`sub`) and issuer.
    #[serde(rename = "s")]
    pub subject: String,
    #[serde(rename = "i")]
    pub issuer: String,
    #[serde(rename = "x")]
    pub expires: i64,
}

/// How cookies are set: `Secure` or not (behind TLS).
#[derive(Debug, Clone)]
pub struct Cookies {
    key: CookieKey,
    secure: bool,
}

impl Cookies {
    pub fn new(key: CookieKey, secure: bool) -> Cookies {
        Cookies { key, secure }
    }

    fn signed(&self, name: &str, value: String, path: &str, max_age: i64) -> String {
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key.0).add(
            Cookie::build((name.to_string(), value))
                .path(path.to_string())
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(self.secure)
                .max_age(cookie::time::Duration::seconds(max_age)),
        );
        jar.get(name).map(ToString::to_string).unwrap_or_default()
    }

    /// Values of `name` in a `Cookie` header whose signature holds.
    fn verified<'h>(&'h self, header: &'h str, name: &'h str) -> impl Iterator<Item = String> + 'h {
        Cookie::split_parse(header.to_string())
            .filter_map(Result::ok)
            .filter(move |c| c.name() == name)
            .filter_map(move |c| {
                let jar = CookieJar::new();
                jar.signed(&self.key.0)
                    .verify(c.into_owned())
                    .map(|v| v.value().to_string())
            })
    }

    /// `Set-Cookie` for a session, limited to `path`.
    pub fn session(&self, s: &Session, path: &str, now: i64) -> String {
        let json = serde_json::to_string(s).unwrap_or_default();
        self.signed(SESSION, hex::encode(json), path, (s.expires - now).max(0))
    }

    /// The session in a `Cookie` header that lets `email` decide `decision` now, if any.
    pub fn read_session(
        &self,
        header: &str,
        decision: &str,
        email: &str,
        now: i64,
    ) -> Option<Session> {
        self.verified(header, SESSION)
            .filter_map(|v| hex::decode(v).ok())
            .filter_map(|b| serde_json::from_slice::<Session>(&b).ok())
            .find(|s| {
                s.decision == decision && s.email.eq_ignore_ascii_case(email) && now < s.expires
            })
    }

    /// `Set-Cookie` naming the state of the sign-in this browser starts (limited to the callback).
    pub fn signing_in(&self, state: &str, callback_path: &str, max_age: i64) -> String {
        self.signed(SIGNING_IN, state.to_string(), callback_path, max_age)
    }

    /// The state this browser started a sign-in with.
    pub fn read_signing_in(&self, header: &str) -> Option<String> {
        self.verified(header, SIGNING_IN).next()
    }

    /// `Set-Cookie` that removes the sign-in marker.
    pub fn clear_signing_in(&self, callback_path: &str) -> String {
        Cookie::build((SIGNING_IN, ""))
            .path(callback_path.to_string())
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .max_age(cookie::time::Duration::ZERO)
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::{CookieKey, Cookies, Session};
    use crate::approval::link::LinkKey;

    fn session(expires: i64) -> Session {
        Session {
            decision: "a1".into(),
            email: "ann@example.com".into(),
            subject: "ann".into(),
            issuer: "https://idp.example.com".into(),
            expires,
        }
    }

    /// The `name=value` part of a Set-Cookie, as a browser sends it back.
    fn sent(set_cookie: &str) -> String {
        set_cookie.split(';').next().unwrap_or_default().to_string()
    }

    #[test]
    fn a_session_cookie_is_httponly_lax_secure_and_limited_to_its_path() {
        let c = Cookies::new(CookieKey::derive(&LinkKey::random().unwrap()), true);
        let set = c.session(&session(1900), "/a/a1/", 1000);
        for part in [
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/a/a1/",
            "Max-Age=900",
        ] {
            assert!(set.contains(part), "{set} lacks {part}");
        }
        let plain = Cookies::new(CookieKey::derive(&LinkKey::random().unwrap()), false);
        assert!(
            !plain
                .session(&session(1900), "/a/a1/", 1000)
                .contains("Secure")
        );
    }

    #[test]
    fn a_session_decides_only_its_own_decision_as_its_own_address_until_it_expires() {
        let key = LinkKey::random().unwrap();
        let c = Cookies::new(CookieKey::derive(&key), false);
        let header = sent(&c.session(&session(1900), "/a/a1/", 1000));
        assert_eq!(
            c.read_session(&header, "a1", "Ann@Example.com", 1899),
            Some(session(1900))
        );
        assert_eq!(
            c.read_session(&header, "a2", "ann@example.com", 1000),
            None,
            "another decision"
        );
        assert_eq!(
            c.read_session(&header, "a1", "bob@example.com", 1000),
            None,
            "another address"
        );
        assert_eq!(
            c.read_session(&header, "a1", "ann@example.com", 1900),
            None,
            "expired"
        );
        let other = Cookies::new(CookieKey::derive(&LinkKey::random().unwrap()), false);
        assert_eq!(
            other.read_session(&header, "a1", "ann@example.com", 1000),
            None,
            "another key"
        );
        // an edited value fails its signature
        let forged = header.replacen("airlock_session=", "airlock_session=00", 1);
        assert_eq!(c.read_session(&forged, "a1", "ann@example.com", 1000), None);
    }

    #[test]
    fn the_sign_in_marker_is_signed() {
        let c = Cookies::new(CookieKey::derive(&LinkKey::random().unwrap()), false);
        let header = format!(
            "other=1; {}",
            sent(&c.signing_in("st4te", "/signin/callback", 600))
        );
        assert_eq!(c.read_signing_in(&header).as_deref(), Some("st4te"));
        assert_eq!(c.read_signing_in("airlock_signin=st4te"), None, "unsigned");
    }
}
