//! The rows of the review side of the desk: held calls released or rejected, tools classified,
//! paused scopes resumed, and the decisions refused there.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who decided, as every review-side decision row records it (the `authority` rule's decider).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecidedBy {
    pub by: String,
    /// The roles the authority rule authorized them in.
    #[serde(default)]
    pub roles: Vec<String>,
    /// How they proved who they are (`via`: `link`, `cli` or `oidc`; `os_user`, …).
    #[serde(default)]
    pub auth: Value,
}

/// `held_released`: a held call released (its `outcome` row follows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldReleased {
    /// SHA-256 of the arguments that run (`null`: the held call was not found).
    #[serde(default)]
    pub arguments_sha256: Option<String>,
    #[serde(flatten)]
    pub by: DecidedBy,
    /// What the reviewer saw: SHA-256 of the call as shown, and how (`page` or `json`).
    #[serde(default)]
    pub seen_sha256: String,
    #[serde(default)]
    pub seen_of: String,
}

/// `held_rejected`: a held call rejected; it never runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldRejected {
    pub reason: String,
    #[serde(flatten)]
    pub by: DecidedBy,
    #[serde(default)]
    pub seen_sha256: String,
    #[serde(default)]
    pub seen_of: String,
}

/// `tool_classified`: a tool classified by a reviewer; a manifest file is written next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolClassified {
    pub server: String,
    pub tool: String,
    pub class: String,
    pub target: String,
    pub impact: String,
    pub reversal: String,
    pub definition_hash: String,
    /// The manifest file written.
    pub file: String,
    #[serde(flatten)]
    pub by: DecidedBy,
}

/// `tool_classify_failed`: a classification's manifest file could not be written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolClassifyFailed {
    pub server: String,
    pub tool: String,
    pub error: String,
}

/// `autopilot_resumed`: a paused scope resumed; its counters start afresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutopilotResumed {
    pub scope: String,
    /// The pause (`scope`, `since`, `limit`, `call_id`, `notify`).
    pub pause: Value,
    #[serde(flatten)]
    pub by: DecidedBy,
}

/// `decision_refused`: a release, rejection, classification, resume or sign-in refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRefused {
    /// `release`, `reject`, `classify`, `resume`, or `sign_in`.
    pub act: String,
    pub by: String,
    /// How the decider was authenticated (absent for a failed sign-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Value>,
    pub reason: String,
    /// The check that refused, when not the authority rule: `sign_in` or `second_factor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    /// Refusals left out before this one (over the reviewer's quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_before: Option<u64>,
}
