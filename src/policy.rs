//! Policy: the versioned rules that say, per action class, which path a call takes.
//!
//! Owns the policy file format (`policies/*.toml`), its JSON Schema, and the compiled [`Policy`] that
//! [`crate::decide`] reads. It must never look at a concrete tool call or do I/O beyond reading its
//! own files; validation against manifests and config happens in [`crate::config`].

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod compile;
mod deciders;
mod file;
pub use compile::compile;
pub use deciders::{Requirement, SecondFactor, SignIn};
pub use file::{ActorFile, ClassRuleFile, PolicyFile, ReviewFile, RoleFile};

/// The default path a class of actions takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// Autopilot: the call runs at once and is audited.
    Allow,
    /// Runs on autopilot only while every condition the class demands holds; otherwise `on_fail`.
    Conditional,
    /// A named human role must decide.
    Approve,
    /// Never runs.
    Deny,
    /// Does not run; waits for a person to classify or review it.
    Quarantine,
}

impl PathKind {
    /// The word the policy file uses.
    pub fn name(self) -> &'static str {
        match self {
            PathKind::Allow => "allow",
            PathKind::Conditional => "conditional",
            PathKind::Approve => "approve",
            PathKind::Deny => "deny",
            PathKind::Quarantine => "quarantine",
        }
    }
}

/// What happens when an approval is not decided in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// The call ends denied.
    #[default]
    Deny,
    /// The role's `escalate_to` role is asked next, with a fresh clock.
    Escalate,
    /// The call ends as a logged no-op.
    Expire,
}

/// Where a call goes when a `conditional` class's conditions (or an `allow` class's reversal
/// requirement) do not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailPath {
    /// Ask the class's `role`.
    Approve,
    /// Hold the call for review.
    Quarantine,
}

/// A compiled, validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: String,
    pub classes: BTreeMap<String, ClassRule>,
    pub roles: BTreeMap<String, Role>,
    /// Actor id → the only classes it may use.
    pub actors: BTreeMap<String, Vec<String>>,
    /// `[review] role`: who reviews held calls that name no role of their own.
    pub review_role: Option<String>,
    /// An agent's refused calls a minute recorded one by one (the rest counted).
    pub refused_per_minute: u32,
}

/// `refused_per_minute` unless the policy says otherwise.
pub const REFUSED_PER_MINUTE_DEFAULT: u32 = 60;

#[derive(Debug, Clone, PartialEq)]
pub struct ClassRule {
    pub path: PathKind,
    pub role: Option<String>,
    pub timeout: Duration,
    pub on_timeout: OnTimeout,
    pub require_evidence: bool,
    pub require_reversal: bool,
    pub on_fail: FailPath,
    pub min_approvals: u32,
    pub conditions: Vec<crate::condition::Condition>,
    pub limits: Vec<crate::drift::Limit>,
    pub signed: bool,
    /// How long the class's rows are kept.
    pub retention: Duration,
    /// How long a settled call's outcome is replayed to an identical call.
    pub retry_window: Duration,
    pub second_factor: Option<SecondFactor>,
    /// The share of a stage's timeout (1–99 %) after which its undecided approvers are reminded.
    pub remind_at: Option<u8>,
}

/// Read a reminder point: `N%`, N from 1 to 99.
pub fn parse_remind_at(s: &str) -> Result<u8, String> {
    let n = s
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<u8>().ok());
    match n {
        Some(n) if (1..=99).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{s}` is not a share of the timeout like `50%` (1% to 99%)"
        )),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub emails: Vec<String>,
    pub escalate_to: Option<String>,
    pub sign_in: SignIn,
    pub second_factor: Option<SecondFactor>,
    /// Its approvers see redacted values on the approval page (it signs in).
    pub reveal_redacted: bool,
    /// `KIND:NAME` of each channel announcing its approvals besides mail.
    pub channels: Vec<String>,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long a settled call's outcome is replayed to an identical call by default (24 hours).
pub const RETRY_WINDOW_DEFAULT: Duration = Duration::from_secs(24 * 3600);

/// Default retention of a signed class's rows (7 years).
pub const RETENTION_SIGNED: Duration = Duration::from_secs(7 * 31_557_600);
/// Default retention of other rows (1 year).
pub const RETENTION_DEFAULT: Duration = Duration::from_secs(31_557_600);

/// Parse a retention period: `400d`, `7y` (a year is 365.25 days), from a day to 100 years.
pub fn parse_retention(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a period like `400d` or `7y` ({e})"))?;
    if d < Duration::from_secs(86_400) || d > Duration::from_secs(100 * 31_557_600) {
        return Err(format!("`{s}` must be between a day and 100 years"));
    }
    Ok(d)
}

/// A retention period as `parse_retention` reads it back: whole years as `7y`, else days.
pub fn format_retention(d: Duration) -> String {
    const YEAR: u64 = 31_557_600;
    match d.as_secs() {
        s if s % YEAR == 0 => format!("{}y", s / YEAR),
        s => format!("{}d", s / 86_400),
    }
}

impl Policy {
    /// How long rows of `class` are kept; rows of no class (gate events, unknown tools) for
    /// the default year. A prune removes only an expired prefix, so a row under retention also
    /// keeps every row after it.
    pub fn retention(&self, class: Option<&str>) -> Duration {
        class
            .and_then(|c| self.classes.get(c))
            .map_or(RETENTION_DEFAULT, |r| r.retention)
    }

    /// Whether rows of a call of `class` are signed.
    pub fn is_signed(&self, class: Option<&str>) -> bool {
        class
            .and_then(|c| self.classes.get(c))
            .is_some_and(|r| r.signed)
    }
}

/// Longest duration accepted anywhere (a year): beyond it, a timeout is a misconfiguration.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parse a human duration (`30m`, `2h`, `1d`), from 1 second to a year.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d < Duration::from_secs(1) => {
            Err(format!("`{s}` is under a second; write at least `1s`"))
        }
        Ok(d) if d > MAX_DURATION => Err(format!("`{s}` is over a year; write at most `366d`")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "`{s}` is not a duration ({e}); write e.g. `30m`, `2h`, `1d`"
        )),
    }
}

fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;
