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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Requirement {
    pub sign_in: SignIn,
    pub second_factor: Option<SecondFactor>,
}

impl Policy {
    /// What deciding a call of `class`, asked of `role`, requires: the role's sign-in, and a
    /// second factor when the class or the role asks for one. Unknown names require nothing
    /// more (the caller refused them long before).
    pub fn requirement(&self, class: &str, role: &str) -> Requirement {
        let role = self.roles.get(role);
        let class = self.classes.get(class);
        Requirement {
            sign_in: role.map_or(SignIn::Link, |r| r.sign_in),
            second_factor: class
                .and_then(|c| c.second_factor)
                .or_else(|| role.and_then(|r| r.second_factor)),
        }
    }

    /// Whether any role signs in with the provider (then `[sign_in]` must be configured).
    pub fn uses_sign_in(&self) -> bool {
        self.roles.values().any(|r| r.sign_in == SignIn::Oidc)
    }
}
