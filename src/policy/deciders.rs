//! How a decider proves who they are: a role's `sign_in`, a class's or role's `second_factor`,
//! and the [`Requirement`] they add up to for one decision.
//!
//! Only the policy's words and their meaning live here; the checks themselves are in
//! [`crate::auth`]. It must never relax a requirement: a role's and a class's add up.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Policy;

/// How a role's members prove who they are before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignIn {
    /// The mailed link alone (it proves possession of the mailbox).
    #[default]
    Link,
    /// Sign in with the OpenID provider of `[sign_in]`; the ID token's verified email must be
    /// the address the link was made for.
    Oidc,
}

/// A second factor given with the decision itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecondFactor {
    /// A time-based one-time code (RFC 6238) from the app enrolled with `airlock approver enroll`.
    Totp,
}

/// What one decision asks of its decider, beyond a valid link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Requirement {
    pub sign_in: SignIn,
    pub second_factor: Option<SecondFactor>,
}

impl Requirement {
    /// Whether it asks for more than the link: a sign-in or a second factor (which a token the
    /// CLI makes can never give).
    pub fn beyond_link(&self) -> bool {
        self.sign_in != SignIn::Link || self.second_factor.is_some()
    }

    /// What it asks for, in words: "signing in with the company account and a TOTP code".
    pub fn words(&self) -> String {
        let mut parts = Vec::new();
        if self.sign_in == SignIn::Oidc {
            parts.push("signing in with the company account");
        }
        if self.second_factor == Some(SecondFactor::Totp) {
            parts.push("a code from an authenticator app (TOTP)");
        }
        if parts.is_empty() {
            "the link alone".to_string()
        } else {
            parts.join(" and ")
        }
    }
}

impl Policy {
    /// What deciding a call of `class`, asked of `role`, requires: the role's sign-in, and a
    /// second factor when the class or the role asks for one. Unknown names require nothing
    /// more (the caller refused them long before).
    pub fn requirement(&self, class: &str, role: &str) -> Requirement {
        self.requirement_of(&[role.to_string()], Some(class))
    }

    /// What deciding a matter that needs every role in `roles` requires: the strictest of them
    /// (sign in if any role signs in; a second factor if any role, or the `class` of the call
    /// decided, asks for one). Unknown names require nothing more.
    pub fn requirement_of(&self, roles: &[String], class: Option<&str>) -> Requirement {
        let mut need = Requirement {
            sign_in: SignIn::Link,
            second_factor: class
                .and_then(|c| self.classes.get(c))
                .and_then(|c| c.second_factor),
        };
        for r in roles.iter().filter_map(|r| self.roles.get(r)) {
            if r.sign_in == SignIn::Oidc {
                need.sign_in = SignIn::Oidc;
            }
            need.second_factor = need.second_factor.or(r.second_factor);
        }
        need
    }

    /// The roles `email` is a member of.
    pub fn roles_of(&self, email: &str) -> Vec<String> {
        let email = email.trim();
        self.roles
            .iter()
            .filter(|(_, r)| {
                r.emails
                    .iter()
                    .any(|e| e.trim().eq_ignore_ascii_case(email))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}
