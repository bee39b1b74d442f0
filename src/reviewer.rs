//! Reviewers' personal links: who opens the review page (held calls, unknown tools, paused
//! scopes) or a pause's page, proven by a token made for that one person.
//!
//! A token carries the reviewer's address, how it was issued (`link`: mailed or printed for a
//! person; `cli`: made by `airlock … --as EMAIL` on the gate's machine, with the OS user) and
//! its expiry, MACed with the link key ([`LinkKey::purpose_token`]): nothing is stored, a token
//! cannot be widened to another person or a later time, and it expires (links 24 h by default,
//! CLI tokens in minutes). This module only says who presents a token; whether they may decide
//! is [`crate::authority`]'s. It must never accept an expired or unmacced token, and never take a
//! decider's name from anything but a token.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::approval::link::LinkKey;

const PURPOSE: &str = "airlock.review.v2";

/// How long a mailed or printed review link stays valid.
pub const LINK_LIFETIME: TimeDelta = TimeDelta::hours(24);
/// How long a token the CLI makes for one command stays valid.
pub const CLI_LIFETIME: TimeDelta = TimeDelta::minutes(5);

/// Who presents a review token, as the token proves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reviewer {
    /// The reviewer's address (a member of some role, checked by [`crate::authority`]).
    #[serde(rename = "e")]
    pub email: String,
    /// `link` or `cli`.
    #[serde(rename = "v")]
    pub via: String,
    /// The OS user that ran the CLI (`via = cli`).
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<String>,
    /// Unix seconds after which the token is refused.
    #[serde(rename = "x")]
    pub expires: i64,
    /// The one pause (its call id) a mailed pause link is for; such a token opens nothing else.
    /// None: the person's review page (and any page they may decide on).
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<String>,
}

/// Why a review token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "this review link is not valid for this gate (it was not made with its link key: wrong --config, or a mangled link)"
    )]
    Invalid,
    #[error(
        "this review link expired at {0}: ask the operator for a new one (`airlock quarantine list --as YOUR-EMAIL` prints it)"
    )]
    Expired(String),
}

impl Reviewer {
    /// A reviewer whose token is valid for `lifetime` from `now`.
    pub fn new(
        email: &str,
        via: &str,
        os_user: Option<String>,
        now: DateTime<Utc>,
        lifetime: TimeDelta,
    ) -> Reviewer {
        Reviewer {
            email: email.trim().to_string(),
            via: via.to_string(),
            os_user,
            expires: (now + lifetime).timestamp(),
            pause: None,
        }
    }

    /// The same, for the page of one pause only (the pause mail's link).
    pub fn for_pause(mut self, call_id: &str) -> Reviewer {
        self.pause = Some(call_id.to_string());
        self
    }

    /// The token: `<hex of the claims>.<MAC>`.
    pub fn token(&self, key: &LinkKey) -> String {
        let claims = hex::encode(serde_json::to_vec(self).unwrap_or_default());
        let mac = key.purpose_token(&[PURPOSE, &claims]);
        format!("{claims}.{mac}")
    }

    /// Who presents `token`, if it is this gate's and not expired at `now`.
    pub fn from_token(
        key: &LinkKey,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Reviewer, TokenError> {
        let (claims, mac) = token.split_once('.').ok_or(TokenError::Invalid)?;
        if !key.verify_purpose(mac, &[PURPOSE, claims]) {
            return Err(TokenError::Invalid);
        }
        let bytes = hex::decode(claims).map_err(|_| TokenError::Invalid)?;
        let r: Reviewer = serde_json::from_slice(&bytes).map_err(|_| TokenError::Invalid)?;
        if now.timestamp() > r.expires {
            let at = DateTime::from_timestamp_secs(r.expires)
                .map(|t| crate::instant::rfc3339(&t))
                .unwrap_or_default();
            return Err(TokenError::Expired(at));
        }
        Ok(r)
    }

    /// What a decision row records about how the decider was authenticated.
    pub fn auth(&self) -> serde_json::Value {
        serde_json::json!({"via": self.via, "os_user": self.os_user})
    }

    /// [`Reviewer::auth`] with the checks a decision passed beyond the token
    /// ([`crate::auth::Facts`]): `via` becomes `oidc` when signed in; `second_factor`, `subject`
    /// and `issuer` are added (null when not given).
    pub fn auth_with(&self, facts: &crate::auth::Facts) -> serde_json::Value {
        let via = match facts.via {
            crate::auth::Via::Oidc => "oidc",
            crate::auth::Via::Link => self.via.as_str(),
        };
        serde_json::json!({
            "via": via,
            "os_user": self.os_user,
            "second_factor": facts.second_factor,
            "subject": facts.subject,
            "issuer": facts.issuer,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::{CLI_LIFETIME, LINK_LIFETIME, Reviewer, TokenError};
    use crate::approval::link::LinkKey;

    #[test]
    fn a_token_names_its_reviewer_until_it_expires_and_cannot_be_altered() {
        let key = LinkKey::random().expect("key");
        let now = crate::instant::utc(2026, 12, 3, 12, 0, 0);
        let r = Reviewer::new("ann@example.com", "link", None, now, LINK_LIFETIME);
        let t = r.token(&key);
        assert_eq!(Reviewer::from_token(&key, &t, now), Ok(r.clone()));
        assert!(matches!(
            Reviewer::from_token(&key, &t, now + LINK_LIFETIME + TimeDelta::seconds(1)),
            Err(TokenError::Expired(_))
        ));
        // another person's claims under this MAC, another key, garbage: all invalid
        let (_, mac) = t.split_once('.').expect("dot");
        let bob = Reviewer::new("bob@example.com", "link", None, now, LINK_LIFETIME);
        let forged = format!("{}.{mac}", bob.token(&key).split_once('.').expect("dot").0);
        let other = LinkKey::random().expect("key");
        for bad in [forged.as_str(), &r.token(&other), "", "zz.zz", "abc"] {
            assert_eq!(
                Reviewer::from_token(&key, bad, now),
                Err(TokenError::Invalid),
                "{bad}"
            );
        }
        let pause =
            Reviewer::new("ann@example.com", "link", None, now, LINK_LIFETIME).for_pause("p1");
        let back = Reviewer::from_token(&key, &pause.token(&key), now).expect("valid");
        assert_eq!(
            back.pause.as_deref(),
            Some("p1"),
            "a pause link says which pause"
        );
        let cli = Reviewer::new(
            "ann@example.com",
            "cli",
            Some("ops".into()),
            now,
            CLI_LIFETIME,
        );
        assert_eq!(Reviewer::from_token(&key, &cli.token(&key), now), Ok(cli));
    }

    #[test]
    fn the_recorded_auth_says_oidc_only_when_signed_in_and_keeps_the_token_s_facts() {
        use crate::auth::{Facts, Via};
        use crate::policy::SecondFactor;
        let now = crate::instant::utc(2026, 12, 3, 12, 0, 0);
        let link = Reviewer::new("ann@example.com", "link", None, now, LINK_LIFETIME);
        let signed = Facts {
            via: Via::Oidc,
            second_factor: Some(SecondFactor::Totp),
            subject: Some("ann".into()),
            issuer: Some("https://idp.example.com".into()),
        };
        assert_eq!(
            link.auth_with(&signed),
            serde_json::json!({"via": "oidc", "os_user": null, "second_factor": "totp", "subject": "ann", "issuer": "https://idp.example.com"})
        );
        let cli = Reviewer::new(
            "ann@example.com",
            "cli",
            Some("ops".into()),
            now,
            CLI_LIFETIME,
        );
        let plain = Facts {
            via: Via::Link,
            second_factor: None,
            subject: None,
            issuer: None,
        };
        assert_eq!(
            cli.auth_with(&plain),
            serde_json::json!({"via": "cli", "os_user": "ops", "second_factor": null, "subject": null, "issuer": null})
        );
    }
}
