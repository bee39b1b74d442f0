//! The ledger's rows as types: one [`Row`] variant per `kind`, each with a struct of its body.
//!
//! Owns the vocabulary of the chain: every kind's name ([`Row::kind`]), the exact JSON of its
//! body ([`Row::body`]), and reading a stored row back ([`Row::parse`], [`Record::row`]). Writers
//! build a variant and hand it to the ledger in a [`super::NewRow`]; readers parse a
//! [`Record`] and `match`. No code outside this module compares a row's kind with a string.
//!
//! It must never change a byte of what a row hashes: a body serialises to exactly the JSON value
//! Airlock wrote before rows were typed (field names, `null` against absent, integers, string
//! formats; the chain hashes its canonical JSON), and a row read back serialises to the bytes it
//! was stored as — `tests` proves it on a ledger written before this module existed. Open-ended
//! documents (tool arguments, `_meta`, an envelope, a diff, a reason's data, an approval's state)
//! stay [`serde_json::Value`]. It must never import the modules that write rows (no cycle with
//! the desk, the gate or the approvals), do I/O, or decide anything.
//!
//! Reading accepts every row Airlock has written: a field added later has a default. A kind this
//! build does not know (a row written by a newer Airlock) is [`RowError::Unknown`]; readers show
//! the record as stored.

mod approval;
mod call;
mod channel;
mod gate;
mod review;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Record;

pub use approval::{
    ApprovalClosed, Choice, Decision, Envelope, ExecutionIntent, LinkRefused, MailAbout,
    MailFailed, MailSent, Reminder, Timeout,
};
pub use call::{
    Decided, Held, HeldVoided, Outcome, OutcomeStatus, PromptGet, Proposal, RefusedCounted,
    ResourceRead, Retry, RetryAction, RunContext, SealedDestroyed, Verdict,
};
pub use channel::{ChannelDelivered, ChannelFailed, ChannelGaveUp};
pub use gate::{
    GateStarted, PolicyLoaded, PolicyRejected, Pruned, ServerState, Signature, ToolAccepted,
    ToolChanged, ToolSeen, ToolsRelisted, WebAddress,
};
pub use review::{
    AutopilotResumed, DecidedBy, DecisionRefused, HeldRejected, HeldReleased, ToolClassified,
    ToolClassifyFailed,
};

/// Why a stored row could not be read as a [`Row`].
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    /// A kind this build does not know (a newer Airlock wrote it).
    #[error("unknown row kind `{0}`")]
    Unknown(String),
    /// The body does not have the fields its kind has.
    #[error("a `{kind}` row's body cannot be read: {source}")]
    Body {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl RowError {
    /// A row of kind `signature` whose body is not a signature: `verify` refuses it rather
    /// than pass over it.
    pub fn is_signature(&self) -> bool {
        matches!(
            self,
            RowError::Body {
                kind: "signature",
                ..
            }
        )
    }
}

/// Declares [`Row`] with one variant per kind, and the kind names in one place.
macro_rules! rows {
    ($($(#[$doc:meta])* $variant:ident($body:ty) = $kind:literal,)*) => {
        /// One ledger row: its kind and its body. Serialised as `{"kind": …, "body": …}`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", content = "body")]
        pub enum Row {
            $($(#[$doc])* #[serde(rename = $kind)] $variant($body),)*
        }

        impl Row {
            /// The row's kind, as stored.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Row::$variant(_) => $kind,)*
                }
            }

            /// The row's body, exactly as it is hashed.
            pub fn body(&self) -> Value {
                let body = match self {
                    $(Row::$variant(b) => serde_json::to_value(b),)*
                };
                // a body is plain data (string keys only): serialising it cannot fail
                body.unwrap_or_else(|e| serde_json::json!({"encoding_error": e.to_string()}))
            }

            /// Read a stored row's kind and body.
            pub fn parse(kind: &str, body: &Value) -> Result<Row, RowError> {
                match kind {
                    $($kind => <$body>::deserialize(body)
                        .map(Row::$variant)
                        .map_err(|source| RowError::Body { kind: $kind, source }),)*
                    other => Err(RowError::Unknown(other.to_string())),
                }
            }

            /// Every kind, in the order declared.
            pub const KINDS: &'static [&'static str] = &[$($kind,)*];
        }
    };
}

rows! {
    /// A gate started serving: its policy, servers, tools and signing key.
    GateStarted(GateStarted) = "gate_started",
    /// A tool call as the agent made it (arguments as recorded).
    Proposal(Proposal) = "proposal",
    /// What the policy decided about a call.
    Verdict(Verdict) = "verdict",
    /// What happened when a call ran (or why it did not).
    Outcome(Outcome) = "outcome",
    /// A call held for review.
    Held(Held) = "held",
    /// A held call released by a reviewer (its outcome row follows).
    HeldReleased(HeldReleased) = "held_released",
    /// A held call rejected by a reviewer.
    HeldRejected(HeldRejected) = "held_rejected",
    /// A released call not run: its tool is no longer the definition it was held under.
    HeldVoided(HeldVoided) = "held_voided",
    /// A repeat of an earlier call, answered by it (or refused).
    Retry(Retry) = "retry",
    /// A minute's refused calls of one agent, counted rather than recorded one by one.
    RefusedCounted(RefusedCounted) = "refused_counted",
    /// A resource read (recorded before its content is handed over).
    ResourceRead(ResourceRead) = "resource_read",
    /// A prompt fetched.
    PromptGet(PromptGet) = "prompt_get",
    /// An item's sealed (redacted) values destroyed.
    SealedDestroyed(SealedDestroyed) = "sealed_destroyed",
    /// What an approver is asked to decide, for one stage.
    Envelope(Envelope) = "envelope",
    /// A mail delivered (over SMTP or to the outbox).
    MailSent(MailSent) = "mail_sent",
    /// A mail that could not be delivered.
    MailFailed(MailFailed) = "mail_failed",
    /// An approver's decision.
    Decision(Decision) = "decision",
    /// An approved call about to run, with its idempotency key.
    ExecutionIntent(ExecutionIntent) = "execution_intent",
    /// An approval stage not decided in time.
    Timeout(Timeout) = "timeout",
    /// An approval ended.
    ApprovalClosed(ApprovalClosed) = "approval_closed",
    /// A refused use of an approval link (or a refused sign-in or code).
    LinkRefused(LinkRefused) = "link_refused",
    /// A tool classified by a reviewer (a manifest file written).
    ToolClassified(ToolClassified) = "tool_classified",
    /// A classification whose manifest file could not be written.
    ToolClassifyFailed(ToolClassifyFailed) = "tool_classify_failed",
    /// A paused scope resumed.
    AutopilotResumed(AutopilotResumed) = "autopilot_resumed",
    /// A review-side decision refused.
    DecisionRefused(DecisionRefused) = "decision_refused",
    /// A policy (re)loaded.
    PolicyLoaded(PolicyLoaded) = "policy_loaded",
    /// An edited setup rejected; the active one stays.
    PolicyRejected(PolicyRejected) = "policy_rejected",
    /// A tool seen for the first time (its definition now trusted).
    ToolSeen(ToolSeen) = "tool_seen",
    /// A tool whose definition changed (rug-pull guard).
    ToolChanged(ToolChanged) = "tool_changed",
    /// A tool definition accepted by its manifest's pin.
    ToolAccepted(ToolAccepted) = "tool_accepted",
    /// Tool servers listed again.
    ToolsRelisted(ToolsRelisted) = "tools_relisted",
    /// The writer's signature over the head.
    Signature(Signature) = "signature",
    /// An expired prefix removed behind a signed tombstone.
    Pruned(Pruned) = "pruned",
    /// A channel took an event.
    ChannelDelivered(ChannelDelivered) = "channel_delivered",
    /// A channel's attempt failed (retried).
    ChannelFailed(ChannelFailed) = "channel_failed",
    /// A channel's event given up on.
    ChannelGaveUp(ChannelGaveUp) = "channel_gave_up",
    /// A stage's undecided approvers reminded.
    Reminder(Reminder) = "reminder",
}

impl Record {
    /// This record as a typed row.
    pub fn row(&self) -> Result<Row, RowError> {
        Row::parse(&self.kind, &self.body)
    }
}

/// `skip_serializing_if` for flags written only when set.
fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests;

/// Small rows for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod sample {
    use serde_json::{Value, json};

    use super::{Decided, Outcome, OutcomeStatus, Proposal, Row, Verdict};

    /// A proposal of `tool` with no arguments.
    pub fn proposal(tool: &str) -> Row {
        Row::Proposal(Proposal {
            tool: tool.to_string(),
            server: None,
            tool_name: None,
            arguments: json!({}),
            arguments_sha256: String::new(),
            meta: None,
            actor: "agent:test".to_string(),
            redacted: None,
            arguments_preview: None,
            arguments_cut: None,
            arguments_bytes: None,
        })
    }

    /// An allowing verdict of `class`; `signed` asks the ledger to sign the call's rows.
    pub fn verdict(class: Option<&str>, signed: bool) -> Row {
        Row::Verdict(Verdict {
            verdict: Decided::Allow,
            class: class.map(str::to_string),
            rule: "test".to_string(),
            reasons: Vec::<Value>::new(),
            policy_version: "test.1".to_string(),
            charges: Vec::new(),
            review_roles: Vec::new(),
            explanation: String::new(),
            signed,
        })
    }

    /// An outcome of `status`.
    pub fn outcome(status: OutcomeStatus) -> Row {
        Row::Outcome(Outcome::of(status))
    }
}
