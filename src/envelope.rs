//! The approval envelope: everything an approver needs to decide, in one value, hashed.
//!
//! Owns the envelope's fields, its canonical hash, and its plain-text form for mail. It is pure:
//! built from the call, its manifest, the decision and the time given. It must never fetch
//! anything or change after it is built — a modify makes a new envelope with a new hash.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

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
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub on_timeout: OnTimeout,
    /// 0 for the first role asked, +1 per escalation or modification.
    pub stage: u32,
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
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
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
        tool: p.tool.to_string(),
        server: p.server.to_string(),
        tool_name: p.manifest.name.clone(),
        arguments_sha256: canonical::sha256_hex(canonical::to_string(&args).as_bytes()),
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
    }
}

impl Envelope {
    /// SHA-256 of the canonical JSON: the identity of exactly this proposal.
    pub fn hash(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or(Value::Null);
        canonical::sha256_hex(canonical::to_string(&v).as_bytes())
    }

    /// The same proposal with edited arguments (a modify), as a new envelope.
    pub fn with_arguments(&self, arguments: Map<String, Value>) -> Envelope {
        let args = Value::Object(arguments);
        Envelope {
            arguments_sha256: canonical::sha256_hex(canonical::to_string(&args).as_bytes()),
            arguments: args,
            stage: self.stage + 1,
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

    /// The envelope in a few lines of plain text, for mail.
    pub fn summary(&self) -> String {
        let fmt = |t: &OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let evidence = if self.evidence.is_empty() {
            "none".to_string()
        } else {
            self.evidence
                .iter()
                .map(|e| format!("{}={}", e.field, e.value))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "Action:    {} {}\nClass:     {}\nActor:     {}\nTarget:    {}\nImpact:    {}\nEvidence:  {}\nWhy:       {} (policy {})\nReversal:  {}\nExpires:   {} (then {})\n",
            self.tool,
            canonical::to_string(&self.arguments),
            self.class,
            self.actor,
            self.target,
            self.impact,
            evidence,
            self.reason,
            self.policy_version,
            self.reversal,
            fmt(&self.expires_at),
            self.timeout_words(),
        )
    }
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
    use super::diff;
    use serde_json::json;

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
