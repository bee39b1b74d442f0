//! `[sign_in]`: the company's OpenID provider, for roles whose members sign in before deciding.
//!
//! Owns the section's format and its checks (an `https://` issuer, or plain `http://` only on a
//! loopback address, where nothing leaves the machine). It must never read the client secret
//! itself: only the name of the variable that holds it (read when `serve` starts).

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::diag::{Diagnostic, Source};

/// `[sign_in]` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInSection {
    /// The provider's issuer URL, exactly as in its discovery document, e.g.
    /// `https://accounts.google.com` or `https://login.example.com/realms/staff`. `https://`
    /// only, except a loopback address (`http://127.0.0.1:PORT`), whose traffic stays on this
    /// machine.
    pub issuer: String,
    /// Airlock's client id at the provider. Register `<web.public_url>/signin/callback` as its
    /// redirect URI.
    pub client_id: String,
    /// The environment variable holding the client secret (never written in this file); omit for
    /// a public client (PKCE alone).
    pub client_secret_env: Option<String>,
    /// How long a sign-in lets its person decide the one request it was made for, e.g. `15m`
    /// (default).
    pub session: Option<String>,
}

/// The compiled `[sign_in]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SignInConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret_env: Option<String>,
    /// Lifetime of the session cookie a sign-in sets.
    pub session: Duration,
}

/// Default lifetime of a sign-in's session.
pub const DEFAULT_SESSION: Duration = Duration::from_secs(15 * 60);

/// Compile `[sign_in]`, recording each problem at its key.
pub fn compile(
    src: &Source,
    s: Option<&SignInSection>,
    errors: &mut Vec<Diagnostic>,
) -> Option<SignInConfig> {
    let s = s?;
    let issuer = s.issuer.trim().trim_end_matches('/').to_string();
    if let Err(why) = check_issuer(&issuer) {
        errors.push(src.error(None, "sign_in.issuer", why));
    }
    if s.client_id.trim().is_empty() {
        errors.push(src.error(None, "sign_in.client_id", "must not be empty"));
    }
    if let Some(v) = &s.client_secret_env {
        let ok = !v.is_empty()
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !v.as_bytes()[0].is_ascii_digit();
        if !ok {
            errors.push(src.error(
                None,
                "sign_in.client_secret_env",
                format!("`{v}` is not an environment variable name: name the variable that holds the secret, not the secret"),
            ));
        }
    }
    let session = match &s.session {
        None => DEFAULT_SESSION,
        Some(t) => match crate::policy::parse_duration(t) {
            Ok(d) if d <= Duration::from_secs(3600) => d,
            Ok(_) => {
                errors.push(src.error(
                    None,
                    "sign_in.session",
                    format!(
                        "`{t}` is over an hour: a sign-in is for one decision; write e.g. `15m`"
                    ),
                ));
                DEFAULT_SESSION
            }
            Err(msg) => {
                errors.push(src.error(None, "sign_in.session", msg));
                DEFAULT_SESSION
            }
        },
    };
    Some(SignInConfig {
        issuer,
        client_id: s.client_id.trim().to_string(),
        client_secret_env: s.client_secret_env.clone(),
        session,
    })
}

/// An issuer Airlock will trust: `https://`, or `http://` on a loopback address.
pub fn check_issuer(issuer: &str) -> Result<(), String> {
    if let Some(rest) = issuer.strip_prefix("https://") {
        return if rest.is_empty() {
            Err(format!("`{issuer}` names no host"))
        } else {
            Ok(())
        };
    }
    let Some(rest) = issuer.strip_prefix("http://") else {
        return Err(format!(
            "`{issuer}` must be an https:// URL (the provider's issuer, as in its discovery document)"
        ));
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "`{issuer}` is plain http on another machine: ID tokens and codes would cross the network unprotected; use the provider's https:// issuer"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::check_issuer;

    #[test]
    fn an_issuer_is_https_or_plain_http_on_loopback_only() {
        for ok in [
            "https://accounts.google.com",
            "https://login.example.com/realms/staff",
            "http://127.0.0.1:9000",
            "http://localhost:8080/oidc",
            "http://[::1]:9000",
        ] {
            assert_eq!(check_issuer(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://login.example.com",
            "http://10.0.0.5:9000",
            "ftp://x",
            "login.example.com",
            "https://",
            "http://127.0.0.1.example.com",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
    }
}
