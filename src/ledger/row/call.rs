//! The rows of one tool call: what was asked, what was decided, what ran, and how a call that
//! was not run whole was recorded (held, repeated, counted, its sealed values destroyed).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::OnTimeout;

/// `proposal`: a tool call as the agent made it, arguments as recorded (redacted fields as
/// markers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The exposed tool name the agent called.
    pub tool: String,
    /// The tool server and its own name for the tool (`null`: no server serves it).
    pub server: Option<String>,
    pub tool_name: Option<String>,
    /// The arguments as recorded; `null` when cut (a refused call's too-large arguments).
    pub arguments: Value,
    /// SHA-256 of the canonical arguments (a redaction marker counted by its digest).
    pub arguments_sha256: String,
    /// The call's `_meta`, as the agent sent it.
    #[serde(default)]
    pub meta: Option<Value>,
    #[serde(default)]
    pub actor: String,
    /// The fields the manifest's `redact` took out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<Vec<String>>,
    /// A refused call's arguments past the cap: the first bytes of their canonical JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments_preview: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments_cut: Option<bool>,
    /// The size of the cut arguments' canonical JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments_bytes: Option<u64>,
}

/// `verdict`: the decision (as `decide` serialises it), its explanation, and `signed` when its
/// class is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    #[serde(flatten)]
    pub verdict: Decided,
    pub class: Option<String>,
    /// The rule that decided, e.g. `classes.financial`.
    pub rule: String,
    /// Every reason: `code` and its data.
    pub reasons: Vec<Value>,
    pub policy_version: String,
    /// For an allowed call: the rate-limit counters it adds to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charges: Vec<Value>,
    /// For a quarantined call: the roles its release needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub review_roles: Vec<String>,
    #[serde(default)]
    pub explanation: String,
    /// The call's rows are signed.
    #[serde(default, skip_serializing_if = "super::is_false")]
    pub signed: bool,
}

/// The verdict itself, with an approval's terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Decided {
    Allow,
    Deny,
    Quarantine,
    Approve {
        role: String,
        /// As humantime writes it, e.g. `4h`.
        timeout: String,
        on_timeout: OnTimeout,
        /// RFC 3339.
        expires_at: String,
    },
}

impl Decided {
    /// The verdict's name: `allow`, `deny`, `quarantine`, `approve`.
    pub fn name(&self) -> &'static str {
        match self {
            Decided::Allow => "allow",
            Decided::Deny => "deny",
            Decided::Quarantine => "quarantine",
            Decided::Approve { .. } => "approve",
        }
    }
}

/// `outcome`: what happened to a call that was decided (ran, failed, was not run, or is
/// unknown after a crash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: OutcomeStatus,
    /// SHA-256 of the tool's result (canonical JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// An unknown outcome: where the call had been forwarded, and why it is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A released call whose run a crash interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<bool>,
    /// What the call ran under, when a person decided it.
    #[serde(flatten)]
    pub context: RunContext,
}

/// What a decided call ran under, recorded with its outcome: an approved call's approval, key
/// and arguments' hash; a released call's reviewer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// It ran and the tool answered.
    Ok,
    /// It ran and the tool answered with an error.
    ToolError,
    /// It could not be run (the tool server failed, timed out, or was gone).
    Failed,
    /// The agent cancelled it; the tool server was told to stop.
    Cancelled,
    /// It was decided and never run.
    NotRun,
    /// It was forwarded and a crash left no outcome.
    Unknown,
    /// A release (or approval) was carried out when a crash came: it is never run again.
    OutcomeUnknown,
}

impl OutcomeStatus {
    /// The word stored.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Ok => "ok",
            OutcomeStatus::ToolError => "tool_error",
            OutcomeStatus::Failed => "failed",
            OutcomeStatus::Cancelled => "cancelled",
            OutcomeStatus::NotRun => "not_run",
            OutcomeStatus::Unknown => "unknown",
            OutcomeStatus::OutcomeUnknown => "outcome_unknown",
        }
    }
}

impl Outcome {
    /// An outcome of `status` with nothing else said.
    pub fn of(status: OutcomeStatus) -> Outcome {
        Outcome {
            status,
            result_sha256: None,
            error: None,
            duration_us: None,
            server: None,
            tool: None,
            reason: None,
            released: None,
            context: RunContext::default(),
        }
    }
}

/// `held`: a quarantined call held for review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    pub reason: String,
    #[serde(default)]
    pub arguments_sha256: String,
}

/// `held_voided`: a released call not run, since its tool changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldVoided {
    pub reason: String,
}

/// `retry`: a repeat of an earlier call (same actor, tool and arguments, or idempotency key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    pub action: RetryAction,
    /// The desk item it repeats (`{"kind": …, "id": …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<Value>,
    /// The call that opened that item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of_call_id: Option<String>,
    /// Why a repeat was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a repeat got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryAction {
    /// Attached to the open item: answered when it ends.
    Attach,
    /// Answered with the settled item's outcome.
    Replay,
    /// Refused (a key reused for another call, or a racing repeat).
    Refused,
}

/// `refused_counted`: one agent's refused calls in one minute, past its `refused_per_minute`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedCounted {
    pub actor: String,
    /// The minute's start, RFC 3339.
    pub minute: Option<String>,
    pub calls: u64,
    /// Refused calls per tool.
    pub tools: std::collections::BTreeMap<String, u64>,
    pub refused_per_minute: u32,
}

/// `resource_read`: a resource read, before its content reached the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRead {
    pub server: String,
    pub uri: String,
    /// SHA-256 of the contents handed over (canonical JSON).
    #[serde(default)]
    pub contents_sha256: String,
    pub actor: String,
}

/// `prompt_get`: a prompt fetched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptGet {
    pub server: String,
    pub prompt: String,
    pub actor: String,
}

/// `sealed_destroyed`: an item's sealed values destroyed as it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedDestroyed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Why: the item's end (`denied`, `expired`, `ended`, `held_rejected`, …).
    pub why: String,
}
