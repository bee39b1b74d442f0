//! The approval envelope: everything an approver needs to decide, in one value, hashed.
//!
//! Owns the envelope's fields and its canonical hash (how it is shown — page and mail — is
//! [`crate::shown`]'s, in `web` and `approval::notify`). It is pure:
//! built from the call, its manifest, the decision and the time given. It must never fetch
//! anything or change after it is built — a modify makes a new envelope with a new hash.

use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::canonical;
use crate::decide::Decision;
use crate::manifest::ToolManifest;
use crate::policy::OnTimeout;

/// One evidence reference: the field the manifest names and the value the call carried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRef {
    pub field: String,
    pub value: Value,
}

/// What an approver sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The action in one line (the manifest's `summary` template over the arguments, or the tool
    /// and its target): the mail's subject and the page's heading. Part of the hash; envelopes
    /// stored before it existed have none, and hash as they did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// The proposed action: the exposed tool name and the canonical arguments.
    pub tool: String,
    pub server: String,
    pub tool_name: String,
    pub arguments: Value,
    pub arguments_sha256: String,
    pub class: String,
    /// Who proposed it (the agent's identity).
    pub actor: String,
    pub target: String,
    pub impact: String,
    pub evidence: Vec<EvidenceRef>,
    pub policy_version: String,
    /// Why approval is required: the rule and the reasons.
    pub rule: String,
    pub reason: String,
    /// `tool:NAME` or `none: why`.
    pub reversal: String,
    pub role: String,
    pub min_approvals: u32,
    #[serde(with = "crate::instant::serde_rfc3339")]
    pub requested_at: DateTime<Utc>,
    #[serde(with = "crate::instant::serde_rfc3339")]
    pub expires_at: DateTime<Utc>,
    pub on_timeout: OnTimeout,
    /// 0 for the first role asked, +1 per escalation or modification.
    pub stage: u32,
    /// After a modification of a call with redacted values: which of them the approver kept as
    /// they were and which they replaced. Part of the hash; absent otherwise, so envelopes
    /// stored before it existed hash as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<RedactedEdit>,
}

/// Which redacted values a modification kept and which it replaced (JSON pointers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactedEdit {
    pub kept: Vec<String>,
    pub replaced: Vec<String>,
}

/// The facts an envelope is built from.
pub struct Proposal<'a> {
    pub tool: &'a str,
    pub server: &'a str,
    pub arguments: &'a Map<String, Value>,
    pub meta: Option<&'a Map<String, Value>>,
    pub actor: &'a str,
    pub manifest: &'a ToolManifest,
    pub decision: &'a Decision,
}

/// Build the envelope for an approval by `role` until `expires_at`.
pub fn build(
    p: &Proposal<'_>,
    role: &str,
    min_approvals: u32,
    on_timeout: OnTimeout,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Envelope {
    let args = Value::Object(p.arguments.clone());
    let evidence = p
        .manifest
        .evidence
        .iter()
        .filter_map(|field| {
            let value = match field.strip_prefix("_meta.") {
                Some(k) => p.meta.and_then(|m| m.get(k)),
                None => p.arguments.get(field.as_str()),
            };
            value.map(|v| EvidenceRef {
                field: field.clone(),
                value: v.clone(),
            })
        })
        .collect();
    Envelope {
        summary: summarize(p.manifest, p.tool, p.arguments, p.meta),
        tool: p.tool.to_string(),
        server: p.server.to_string(),
        tool_name: p.manifest.name.clone(),
        arguments_sha256: crate::redact::arguments_sha256(&args),
        arguments: args,
        class: p.manifest.class.clone(),
        actor: p.actor.to_string(),
        target: p.manifest.target.clone(),
        impact: p.manifest.impact.clone(),
        evidence,
        policy_version: p.decision.policy_version.clone(),
        rule: p.decision.rule.clone(),
        reason: p
            .decision
            .reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        reversal: p.manifest.reversal.to_string(),
        role: role.to_string(),
        min_approvals,
        requested_at: now,
        expires_at,
        on_timeout,
        stage: 0,
        redacted: None,
    }
}

/// The one-line summary of a call to `tool` (its exposed name) described by `manifest`.
pub fn summarize(
    manifest: &ToolManifest,
    tool: &str,
    arguments: &Map<String, Value>,
    meta: Option<&Map<String, Value>>,
) -> String {
    // a redacted field reads as its marker, `[redacted 3f9a1c2b]`
    let shown = crate::redact::for_people(&Value::Object(arguments.clone()));
    crate::summary::describe(
        manifest.summary.as_ref(),
        tool,
        &manifest.target,
        shown.as_object().unwrap_or(arguments),
        meta,
    )
}

/// Prose without markdown punctuation: code spans (`` `finance` ``) lose their backticks.
pub fn plain(s: &str) -> String {
    s.replace('`', "")
}

impl Envelope {
    /// SHA-256 of the canonical JSON: the identity of exactly this proposal.
    pub fn hash(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or(Value::Null);
        canonical::sha256_hex(canonical::to_string(&v).as_bytes())
    }

    /// The same proposal with edited arguments (a modify) and their `summary`, as a new envelope.
    /// The next stage's envelope for modified `arguments`, with which redacted values the
    /// modification kept or replaced (none when the call has none).
    pub fn with_arguments(
        &self,
        arguments: Map<String, Value>,
        summary: String,
        redacted: Option<RedactedEdit>,
    ) -> Envelope {
        let args = Value::Object(arguments);
        Envelope {
            summary,
            arguments_sha256: crate::redact::arguments_sha256(&args),
            arguments: args,
            stage: self.stage + 1,
            redacted,
            ..self.clone()
        }
    }

    /// `what happens on timeout`, in words.
    pub fn timeout_words(&self) -> &'static str {
        match self.on_timeout {
            OnTimeout::Deny => "the call is denied",
            OnTimeout::Escalate => "it escalates to the next role",
            OnTimeout::Expire => "it expires as a logged no-op",
        }
    }

    /// When it expires, readable and exact: `Thu 3 Dec 2026, 08:34 UTC (2026-12-03T08:34:36Z)`.
    pub fn expires_words(&self) -> String {
        format!(
            "{} ({})",
            crate::summary::readable_time(self.expires_at),
            exact_instant(self.expires_at)
        )
    }
}

/// An instant to the second, in UTC: `2026-12-03T08:34:36Z`.
pub fn exact_instant(t: DateTime<Utc>) -> String {
    crate::instant::rfc3339(&t.with_nanosecond(0).unwrap_or(t))
}

/// Differences between two argument objects, as JSON pointers with before/after values.
pub fn diff(before: &Value, after: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    diff_at("", before, after, &mut out);
    out
}

fn diff_at(path: &str, before: &Value, after: &Value, out: &mut Vec<Value>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_at(&p, x, y, out),
                    (Some(x), None) => {
                        out.push(serde_json::json!({"op": "remove", "path": p, "before": x}))
                    }
                    (None, Some(y)) => {
                        out.push(serde_json::json!({"op": "add", "path": p, "after": y}))
                    }
                    (None, None) => {}
                }
            }
        }
        (x, y) if x != y => {
            out.push(serde_json::json!({"op": "replace", "path": path, "before": x, "after": y}))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::{Envelope, diff};
    use serde_json::json;

    #[test]
    fn the_summary_is_in_the_hash_and_old_envelopes_hash_as_before() {
        // an envelope as stored before summaries existed
        let stored = json!({
            "tool": "refund_order", "server": "shop", "tool_name": "refund_order",
            "arguments": {"amount_cents": 4599}, "arguments_sha256": "x", "class": "financial",
            "actor": "agent:bot", "target": "payments.refunds", "impact": "money", "evidence": [],
            "policy_version": "v1", "rule": "classes.financial", "reason": "r",
            "reversal": "none: no", "role": "finance", "min_approvals": 1,
            "requested_at": "2026-12-03T08:04:36Z", "expires_at": "2026-12-03T08:34:36Z",
            "on_timeout": "deny", "stage": 0
        });
        let old: Envelope = serde_json::from_value(stored.clone()).expect("old envelope");
        assert_eq!(old.summary, "");
        let stored_hash =
            crate::canonical::sha256_hex(crate::canonical::to_string(&stored).as_bytes());
        assert_eq!(
            old.hash(),
            stored_hash,
            "an old envelope hashes to the same bytes"
        );
        let shown = Envelope {
            summary: "Refund $45.99".into(),
            ..old.clone()
        };
        let other = Envelope {
            summary: "Refund $4.59".into(),
            ..old.clone()
        };
        assert_ne!(shown.hash(), old.hash());
        assert_ne!(
            shown.hash(),
            other.hash(),
            "what the approver read is in the hash"
        );
        assert_eq!(
            shown.expires_words(),
            "Thu 3 Dec 2026, 08:34 UTC (2026-12-03T08:34:36Z)"
        );
    }

    #[test]
    fn diff_lists_changed_added_and_removed_paths() {
        let d = diff(
            &json!({"a": 1, "b": {"c": 2}, "gone": true}),
            &json!({"a": 1, "b": {"c": 3}, "new": "x"}),
        );
        assert_eq!(
            d,
            vec![
                json!({"op": "replace", "path": "/b/c", "before": 2, "after": 3}),
                json!({"op": "remove", "path": "/gone", "before": true}),
                json!({"op": "add", "path": "/new", "after": "x"}),
            ]
        );
        assert!(diff(&json!({"a": [1]}), &json!({"a": [1]})).is_empty());
    }
}
