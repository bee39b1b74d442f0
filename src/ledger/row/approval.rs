//! The rows of an approval: the envelope each stage asks about, the mail that carried it, the
//! approvers' decisions and refused links, the intent to run, timeouts, and its end.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::OnTimeout;

/// `envelope`: what the approvers of one stage are asked to decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub approval_id: String,
    pub stage: u32,
    /// The envelope as the approver sees it (its summary, the call, the terms).
    pub envelope: Value,
    pub envelope_hash: String,
    /// The addresses asked.
    pub approvers: Vec<String>,
}

/// What a mail was about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MailAbout {
    /// An approval's stage, mailed to one of its approvers.
    Approval { approval_id: String, stage: u32 },
    /// An approved call whose outcome is unknown (`notice`: `outcome_unknown`).
    Notice { approval_id: String, notice: String },
    /// A held call, mailed to someone who may release it.
    Held { held: String },
    /// A paused scope, mailed to someone who may resume it.
    Pause { pause: String },
}

/// `mail_sent`: a mail delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailSent {
    #[serde(flatten)]
    pub about: MailAbout,
    pub to: String,
    /// `smtp`, or the path of the `.eml` written to the outbox (absent on the outcome-unknown
    /// notice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// `mail_failed`: a mail that could not be delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailFailed {
    #[serde(flatten)]
    pub about: MailAbout,
    pub to: String,
    pub error: String,
}

impl super::Row {
    /// The row of one mail about `about` to `to`: `mail_sent` with how it went (`Ok(via)`), or
    /// `mail_failed` with why not.
    pub fn mail(about: MailAbout, to: &str, delivered: Result<String, String>) -> super::Row {
        let to = to.to_string();
        match delivered {
            Ok(via) => super::Row::MailSent(MailSent {
                about,
                to,
                via: Some(via),
            }),
            Err(error) => super::Row::MailFailed(MailFailed { about, to, error }),
        }
    }
}

/// What an approver chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    Approve,
    Deny,
    Modify,
    Escalate,
}

impl Choice {
    /// The word stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Approve => "approve",
            Choice::Deny => "deny",
            Choice::Modify => "modify",
            Choice::Escalate => "escalate",
        }
    }
}

/// `decision`: an approver's decision on one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub approval_id: String,
    pub stage: u32,
    pub approver: String,
    pub choice: Choice,
    pub comment: String,
    /// SHA-256 of the envelope as the page rendered it.
    pub seen_sha256: String,
    pub envelope_hash: String,
    pub policy_version: String,
    /// The roles the authority rule authorized the approver in (absent in rows written before
    /// the rule was recorded, and in `gen_ledger`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// How the approver was authenticated (`via`, `second_factor`, `subject`, `issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Value>,
    /// A modification: what changed, and the new envelope's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_envelope_hash: Option<String>,
    /// A modification's redacted fields (their markers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<Value>,
}

/// `execution_intent`: an approved call about to run once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionIntent {
    pub approval_id: String,
    pub idempotency_key: String,
    pub arguments_sha256: String,
    pub envelope_hash: String,
}

/// `reminder`: a stage's undecided approvers reminded (once per stage, before the mail goes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reminder {
    pub approval_id: String,
    pub stage: u32,
    pub role: String,
    /// Who was reminded: the stage's approvers who had not decided.
    pub to: Vec<String>,
}

/// `timeout`: a stage not decided before it expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeout {
    pub approval_id: String,
    pub stage: u32,
    pub role: String,
    pub on_timeout: OnTimeout,
    /// RFC 3339.
    pub expires_at: String,
}

/// `approval_closed`: an approval ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalClosed {
    pub approval_id: String,
    /// How it ended: the approval's final state (`outcome`: `denied`, `expired`, …), or for an
    /// executed call `{"outcome": "executed", "is_error", "result_sha256"}`.
    #[serde(default)]
    pub outcome: Value,
}

/// `link_refused`: an approval link, form, sign-in or code refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkRefused {
    pub approval_id: String,
    /// The link's approver slot (a link or form refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
    /// The approver (a sign-in or second factor refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// `view`, `decide`, `modify`, `form`, `sign_in`, `second_factor`.
    pub attempt: String,
    pub reason: String,
    /// Refusals left out before this one (over the per-minute quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_before: Option<u64>,
}
