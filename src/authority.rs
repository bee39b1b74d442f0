//! Authority: who may make a decision a person makes — approve, deny, modify or escalate an
//! approval; release or reject a held call; classify a tool no manifest describes; resume a
//! paused scope. One rule for all of them, in this order:
//!
//! 1. no agent identity ever decides (`gate.actor`, every `[[agent]]` actor, and with `[oauth]`
//!    every name that starts with its actor prefix, `oauth:` by default);
//! 2. the requester never decides its own call;
//!
//! Rules 1 and 2 compare identities with [`same_identity`]: case-insensitively, and an address's
//! `+tag` (`bot+ops@example.com`) does not make it another identity, since it reaches the same
//! mailbox. Rule 3 (membership) compares without that: a tag only ever refuses, never authorizes.
//! 3. the decider is a member of the role the matter needs — the approval's role (its stage);
//!    for a held call, every role its failed conditions or crossed limits name, else the
//!    policy's `[review] role`; for a paused scope, the limit's role, else the review role; for
//!    classifying, the review role. No such role: nobody may decide (fail closed).
//!
//! Pure: the matter, the decider (already authenticated), the policy and the agents' identities
//! are passed in. It must never do I/O and never authenticate anyone: links, sign-in and second
//! factors prove who the decider is before this is asked whether they may.

use crate::policy::Policy;

/// What is to be decided, with what the rule needs to know about it.
#[derive(Debug, Clone, Copy)]
pub enum Matter<'a> {
    /// A stage of an approval: the role asked, and who made the call.
    Approval { role: &'a str, requester: &'a str },
    /// A held call: the roles it names (empty: the review role), and who made the call.
    Held {
        roles: &'a [String],
        requester: &'a str,
    },
    /// A paused scope: the limit's role (none: the review role), and the call that tripped it.
    Pause {
        role: Option<&'a str>,
        requester: Option<&'a str>,
    },
    /// Writing the manifest of a tool no manifest describes.
    Classify,
}

/// Why a decider may not decide, in a sentence that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "`{0}` is an agent's identity, and agents never decide: a person in the role must (sign in as yourself, not as the agent)"
    )]
    Agent(String),
    #[error(
        "`{0}` made this call, and the requester never decides its own call: another member of role {1} must"
    )]
    Requester(String, String),
    #[error("only a member of role {roles} may decide this, and `{who}` is not: ask one of them")]
    NotInRole { who: String, roles: String },
    #[error(
        "no role may decide this: the policy names no [review] role (add `[review] role = \"…\"` to the policy)"
    )]
    NoRole,
}

/// A decider the rule authorized: who, in which roles, and how they were authenticated — what
/// every decision row records beside the decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decider {
    pub who: String,
    pub roles: Vec<String>,
    /// How they proved who they are, e.g. `{"via": "link"}` or `{"via": "cli", "os_user": …}`.
    pub auth: serde_json::Value,
}

impl Decider {
    /// `by`, `roles` and `auth`, as a decision row records them.
    pub fn record(&self) -> crate::ledger::row::DecidedBy {
        crate::ledger::row::DecidedBy {
            by: self.who.clone(),
            roles: self.roles.clone(),
            auth: self.auth.clone(),
        }
    }
}

/// Every agent identity: the static ones (`gate.actor`, each `[[agent]]` actor), compared by
/// [`same_identity`], and the prefixes OAuth agents' names start with (any case).
#[derive(Debug, Clone, Default)]
pub struct AgentIds<'a> {
    ids: Vec<&'a str>,
    prefixes: Vec<&'a str>,
}

impl<'a> AgentIds<'a> {
    pub fn new(ids: impl IntoIterator<Item = &'a str>) -> AgentIds<'a> {
        AgentIds {
            ids: ids.into_iter().collect(),
            prefixes: Vec::new(),
        }
    }

    /// Every name starting with `prefix` is an agent's too.
    pub fn with_prefix(mut self, prefix: &'a str) -> AgentIds<'a> {
        self.prefixes.push(prefix);
        self
    }

    /// Whether `who` is an agent's identity.
    pub fn is_agent(&self, who: &str) -> bool {
        let who = who.trim();
        self.ids.iter().any(|a| same_identity(a, who))
            || self.prefixes.iter().any(|p| {
                who.len() >= p.len() && who.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            })
    }
}

/// Whether `decider` may decide `matter`: the roles they decide in, or why not.
pub fn authorize(
    matter: &Matter<'_>,
    decider: &str,
    policy: &Policy,
    agents: &AgentIds<'_>,
) -> Result<Vec<String>, Refusal> {
    let same = |a: &str| same_identity(a, decider);
    if agents.is_agent(decider) {
        return Err(Refusal::Agent(decider.to_string()));
    }
    let roles = needed(matter, policy)?;
    let requester = match matter {
        Matter::Approval { requester, .. } | Matter::Held { requester, .. } => Some(*requester),
        Matter::Pause { requester, .. } => *requester,
        Matter::Classify => None,
    };
    if requester.is_some_and(same) {
        return Err(Refusal::Requester(decider.to_string(), roles.join(" and ")));
    }
    let member = |role: &String| {
        policy.roles.get(role).is_some_and(|r| {
            r.emails
                .iter()
                .any(|e| e.trim().eq_ignore_ascii_case(decider.trim()))
        })
    };
    if roles.iter().all(member) {
        Ok(roles)
    } else {
        Err(Refusal::NotInRole {
            who: decider.to_string(),
            roles: roles.join(" and "),
        })
    }
}

/// Whether `a` and `b` name the same identity for rules 1 and 2: equal ignoring case and
/// surrounding spaces, once a `+tag` in an address's local part is removed from each
/// (`Bot+ops@Example.com` is `bot@example.com`). Something without an `@` is compared whole.
pub fn same_identity(a: &str, b: &str) -> bool {
    untagged(a) == untagged(b)
}

/// An identity as [`same_identity`] compares it: trimmed, lowercase, the local part's `+tag` gone.
fn untagged(id: &str) -> String {
    let id = id.trim().to_lowercase();
    match id.rsplit_once('@') {
        Some((local, domain)) => {
            let local = local.split_once('+').map_or(local, |(base, _)| base);
            format!("{local}@{domain}")
        }
        None => id,
    }
}

/// The roles a matter needs (a member of each), or `NoRole`.
pub fn needed(matter: &Matter<'_>, policy: &Policy) -> Result<Vec<String>, Refusal> {
    let review = || policy.review_role.clone().ok_or(Refusal::NoRole);
    Ok(match matter {
        Matter::Approval { role, .. } => vec![role.to_string()],
        Matter::Held { roles, .. } if !roles.is_empty() => roles.to_vec(),
        Matter::Pause {
            role: Some(role), ..
        } => vec![role.to_string()],
        Matter::Held { .. } | Matter::Pause { .. } | Matter::Classify => vec![review()?],
    })
}

/// The people who may decide `matter`: the members of every role it needs who are neither the
/// requester nor an agent (whom to tell, and whose links to print).
pub fn deciders(matter: &Matter<'_>, policy: &Policy, agents: &AgentIds<'_>) -> Vec<String> {
    let Ok(roles) = needed(matter, policy) else {
        return Vec::new();
    };
    let mut all: Vec<String> = roles
        .iter()
        .filter_map(|r| policy.roles.get(r))
        .flat_map(|r| r.emails.iter().cloned())
        .collect();
    all.sort_by_key(|e| e.to_ascii_lowercase());
    all.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    all.retain(|e| authorize(matter, e, policy, agents).is_ok());
    all
}

#[cfg(test)]
mod tests;
