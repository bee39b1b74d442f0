//! The reasons a decision gives: one fact each, with a stable `code` and a sentence.

use std::fmt;

use serde::Serialize;

/// Why: one fact that contributed to the verdict, with a stable `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    InvalidToolName {
        tool: String,
    },
    ArgumentsTooLarge {
        bytes: usize,
        limit: usize,
    },
    ArgumentsTooDeep {
        limit: usize,
    },
    /// An argument object uses a key Airlock reserves (the redaction marker).
    ReservedKey {
        key: String,
    },
    UnknownTool {
        tool: String,
    },
    ClassNotInPolicy {
        class: String,
    },
    PathAllow {
        class: String,
    },
    PathDeny {
        class: String,
    },
    PathQuarantine {
        class: String,
    },
    PathApprove {
        class: String,
        role: String,
    },
    ReversalDeclared {
        tool: String,
    },
    ReversalMissing {
        class: String,
        declared: String,
    },
    EvidencePresent {
        field: String,
    },
    EvidenceMissing {
        field: String,
    },
    NoEvidenceDeclared {
        class: String,
    },
    NoConditions {
        class: String,
    },
    ToolChanged {
        was: String,
        now: String,
    },
    ConditionHeld {
        pointer: String,
        rule: String,
        value: String,
    },
    ConditionFailed {
        pointer: String,
        rule: String,
        value: String,
    },
    WithinLimits {
        limits: usize,
    },
    ActorNotAllowed {
        actor: String,
        class: String,
    },
    AutopilotPaused {
        scope: String,
        since: String,
    },
    LimitReached {
        scope: String,
        limit: String,
        used: String,
        notify: Option<String>,
    },
    LimitUncountable {
        scope: String,
        pointer: String,
    },
}

impl Reason {
    /// The stable machine code (`unknown_tool`, `path_deny`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Reason::InvalidToolName { .. } => "invalid_tool_name",
            Reason::ArgumentsTooLarge { .. } => "arguments_too_large",
            Reason::ArgumentsTooDeep { .. } => "arguments_too_deep",
            Reason::ReservedKey { .. } => "reserved_key",
            Reason::UnknownTool { .. } => "unknown_tool",
            Reason::ClassNotInPolicy { .. } => "class_not_in_policy",
            Reason::PathAllow { .. } => "path_allow",
            Reason::PathDeny { .. } => "path_deny",
            Reason::PathQuarantine { .. } => "path_quarantine",
            Reason::PathApprove { .. } => "path_approve",
            Reason::ReversalDeclared { .. } => "reversal_declared",
            Reason::ReversalMissing { .. } => "reversal_missing",
            Reason::EvidencePresent { .. } => "evidence_present",
            Reason::EvidenceMissing { .. } => "evidence_missing",
            Reason::NoEvidenceDeclared { .. } => "no_evidence_declared",
            Reason::NoConditions { .. } => "no_conditions",
            Reason::ToolChanged { .. } => "tool_changed",
            Reason::ConditionHeld { .. } => "condition_held",
            Reason::ConditionFailed { .. } => "condition_failed",
            Reason::WithinLimits { .. } => "within_limits",
            Reason::ActorNotAllowed { .. } => "actor_not_allowed",
            Reason::AutopilotPaused { .. } => "autopilot_paused",
            Reason::LimitReached { .. } => "limit_reached",
            Reason::LimitUncountable { .. } => "limit_uncountable",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::InvalidToolName { tool } => write!(
                f,
                "tool name {tool:?} is not 1-128 characters of [A-Za-z0-9_.-]"
            ),
            Reason::ArgumentsTooLarge { bytes, limit } => {
                write!(f, "arguments are {bytes} bytes; the limit is {limit}")
            }
            Reason::ArgumentsTooDeep { limit } => {
                write!(f, "arguments nest deeper than {limit} levels")
            }
            Reason::ReservedKey { key } => write!(
                f,
                "an argument object uses the key `{key}`, which Airlock reserves for redacted values; rename it"
            ),
            Reason::UnknownTool { tool } => write!(
                f,
                "no manifest describes tool `{tool}`; it is quarantined until someone classifies it"
            ),
            Reason::ClassNotInPolicy { class } => {
                write!(f, "class `{class}` is not defined by the active policy")
            }
            Reason::PathAllow { class } => write!(f, "class `{class}` runs on autopilot"),
            Reason::PathDeny { class } => write!(f, "class `{class}` is denied by policy"),
            Reason::PathQuarantine { class } => {
                write!(f, "class `{class}` is held for review by policy")
            }
            Reason::PathApprove { class, role } => {
                write!(f, "class `{class}` needs approval by role `{role}`")
            }
            Reason::ReversalDeclared { tool } => {
                write!(f, "reversal handle declared: tool `{tool}`")
            }
            Reason::ReversalMissing { class, declared } => write!(
                f,
                "class `{class}` needs a reversal tool, but the manifest declares `{declared}`"
            ),
            Reason::EvidencePresent { field } => write!(f, "evidence `{field}` is present"),
            Reason::EvidenceMissing { field } => write!(
                f,
                "evidence `{field}` is missing or empty; pass it in the arguments or `_meta`"
            ),
            Reason::NoEvidenceDeclared { class } => write!(
                f,
                "class `{class}` requires evidence, but the manifest names no evidence field"
            ),
            Reason::NoConditions { class } => write!(
                f,
                "class `{class}` is conditional but states no condition that could hold"
            ),
            Reason::ToolChanged { was, now } => write!(
                f,
                "the tool server now describes this tool differently (definition {} instead of the reviewed {}); it is quarantined until someone reviews it and pins the new definition",
                short(now),
                short(was)
            ),
            Reason::ConditionHeld {
                pointer,
                rule,
                value,
            } => write!(f, "`{pointer}` = {value} is {rule}"),
            Reason::ConditionFailed {
                pointer,
                rule,
                value,
            } => write!(f, "`{pointer}` = {value} is not {rule}"),
            Reason::ActorNotAllowed { actor, class } => write!(
                f,
                "actor `{actor}` may not use class `{class}` (the policy's [actors] lists what it may use)"
            ),
            Reason::WithinLimits { limits } => {
                write!(f, "within its {limits} rate limit(s)")
            }
            Reason::AutopilotPaused { scope, since } => write!(
                f,
                "autopilot is paused for `{scope}` since {since} (a rate limit was crossed); a reviewer must resume it"
            ),
            Reason::LimitReached {
                scope, limit, used, ..
            } => write!(
                f,
                "rate limit {limit} reached for `{scope}` ({used}); autopilot is now paused for it"
            ),
            Reason::LimitUncountable { scope, pointer } => write!(
                f,
                "a rate limit for `{scope}` adds up `{pointer}`, but the call has no non-negative number there"
            ),
        }
    }
}

/// The first 12 hex digits of a hash, for messages.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
