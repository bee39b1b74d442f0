//! The decision core: `decide(call, manifest, policy, context) -> Decision`.
//!
//! Owns the rules that turn a tool call into a verdict with reasons. It is pure and deterministic:
//! no I/O, no clock, no randomness, no global state — the actor and the time come in as arguments.
//! That makes `explain` exact and the tests table-driven. It must never perform, forward or record
//! anything; the gate does that with what this returns.
//!
//! Precedence, first match wins:
//! 1. A tool name outside `[A-Za-z0-9_.-]{1,128}` → deny (`invalid_tool_name`).
//! 2. Arguments over the size or depth limit → deny (`arguments_too_large` / `arguments_too_deep`).
//! 3. No manifest describes the tool → quarantine (`unknown_tool`): unknown never means allowed.
//! 4. The tool server presents a different definition than the reviewed one → quarantine
//!    (`tool_changed`, the rug-pull guard).
//! 5. The manifest's class is not in the policy → quarantine (`class_not_in_policy`); the policy
//!    limits the actor to other classes (`[actors]`) → deny (`actor_not_allowed`).
//! 6. The class path: `deny` → deny; `quarantine` → quarantine; `approve` → approval by its role.
//! 7. `allow` and `conditional` check the class's requirements (reversal tool, evidence fields).
//!    `allow` with all requirements held (or none) → allow. `conditional` with all held → allow;
//!    `conditional` with no requirement at all cannot prove anything → its `on_fail`.
//!    Conditions on the arguments (the class's, then the tool's) are requirements too; a failed
//!    condition may name its own role, or `on_fail = "quarantine"`, and the strictest failure wins.
//!    Any requirement that fails → `on_fail`: approval by the class's role, or quarantine.
//! 8. An allowed call must fit the rate limits (the class's, then the tool's; see
//!    [`crate::drift`]): a paused scope (`autopilot_paused`), a limit this call would cross
//!    (`limit_reached`, which pauses the scope) or an amount that cannot be counted
//!    (`limit_uncountable`) → quarantine.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::drift::{Charge, Usage};
use crate::manifest::{Reversal, ToolManifest};
use crate::policy::{ClassRule, FailPath, OnTimeout, PathKind, Policy};

/// Largest canonical argument encoding accepted, in bytes.
pub const MAX_ARGUMENT_BYTES: usize = 1 << 20;
/// Deepest nesting of arrays/objects accepted in arguments.
pub const MAX_ARGUMENT_DEPTH: usize = 32;

/// A tool call as the gate sees it, before anything runs.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The name the agent called (Airlock's exposed name).
    pub tool: &'a str,
    pub arguments: &'a Map<String, Value>,
    /// The request's `_meta`, where agents may put evidence references.
    pub meta: Option<&'a Map<String, Value>>,
    /// Length of the canonical argument encoding, computed once by the caller.
    pub canonical_len: usize,
    /// When the server now presents a different definition than the trusted one: (was, now).
    pub changed: Option<(&'a str, &'a str)>,
    /// Whether the manifest's reversal tool (if any) is served by the same server right now.
    pub reversal_served: bool,
}

/// Facts from outside the call: who asks, when, and the drift counters so far.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub actor: &'a str,
    pub now: DateTime<Utc>,
    /// Rate-limit counters and pauses (read-only: the gate charges them after deciding).
    pub usage: &'a dyn Usage,
}

/// What the gate must do with the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Run it now (autopilot, audited).
    Allow,
    /// Never run it.
    Deny,
    /// Do not run it; hold it for a person to classify or review.
    Quarantine,
    /// A person in `role` must decide before `expires_at`.
    Approve {
        role: String,
        #[serde(with = "humantime_serde_secs")]
        timeout: Duration,
        on_timeout: OnTimeout,
        #[serde(with = "crate::instant::serde_rfc3339")]
        expires_at: DateTime<Utc>,
    },
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Quarantine => "quarantine",
            Verdict::Approve { .. } => "approve",
        }
    }
}

/// The verdict, the class and rule that produced it, every reason, and the policy version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub class: Option<String>,
    /// The rule that decided, e.g. `classes.financial` or `gate.unknown_tool`.
    pub rule: String,
    pub reasons: Vec<Reason>,
    pub policy_version: String,
    /// For an allowed call: the rate-limit counters it adds to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub charges: Vec<Charge>,
    /// For a quarantined call: the roles whose authority it needs to be released — the roles its
    /// failed conditions or crossed limits name (a member of each must release it); empty: the
    /// policy's `[review] role`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub review_roles: Vec<String>,
}

impl Decision {
    /// One line an agent (or a person) can act on.
    /// The same decision with the values of redacted fields (`pointers`) no longer quoted by
    /// its reasons (a condition on a redacted field says `[redacted]`).
    pub fn hiding(mut self, pointers: &[String]) -> Decision {
        // a condition at a redacted field, inside one, or on an object holding one
        let within = |inner: &str, outer: &str| {
            inner == outer
                || outer.is_empty()
                || inner
                    .strip_prefix(outer)
                    .is_some_and(|r| r.starts_with('/'))
        };
        let hidden = |at: &str| pointers.iter().any(|p| within(at, p) || within(p, at));
        for r in &mut self.reasons {
            if let Reason::ConditionHeld { pointer, value, .. }
            | Reason::ConditionFailed { pointer, value, .. } = r
            {
                if hidden(pointer) {
                    *value = "[redacted]".into();
                }
            }
        }
        self
    }

    pub fn explanation(&self) -> String {
        let reasons: Vec<String> = self.reasons.iter().map(ToString::to_string).collect();
        format!(
            "{} (rule `{}`, policy {})",
            reasons.join("; "),
            self.rule,
            self.policy_version
        )
    }
}

/// Decide what to do with `call`. Pure: same inputs, same decision.
pub fn decide(
    call: &Call<'_>,
    manifest: Option<&ToolManifest>,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Decision {
    let gate = |verdict: Verdict, rule: &str, reason: Reason| Decision {
        verdict,
        class: manifest.map(|m| m.class.clone()),
        rule: format!("gate.{rule}"),
        reasons: vec![reason],
        policy_version: policy.version.clone(),
        charges: Vec::new(),
        review_roles: Vec::new(),
    };
    if !valid_tool_name(call.tool) {
        return gate(
            Verdict::Deny,
            "tool_name",
            Reason::InvalidToolName {
                tool: call.tool.chars().take(140).collect(),
            },
        );
    }
    if call.canonical_len > MAX_ARGUMENT_BYTES {
        return gate(
            Verdict::Deny,
            "argument_limits",
            Reason::ArgumentsTooLarge {
                bytes: call.canonical_len,
                limit: MAX_ARGUMENT_BYTES,
            },
        );
    }
    // one walk over the arguments: how deep they nest, whether they use the marker's key
    let shape = shape::Shape::of_arguments(call.arguments);
    if shape.depth >= MAX_ARGUMENT_DEPTH {
        return gate(
            Verdict::Deny,
            "argument_limits",
            Reason::ArgumentsTooDeep {
                limit: MAX_ARGUMENT_DEPTH,
            },
        );
    }
    // the redaction marker is Airlock's: an agent's look-alike could pass for a redacted value
    if shape.reserved {
        return gate(
            Verdict::Deny,
            "argument_limits",
            Reason::ReservedKey {
                key: crate::redact::MARKER.to_string(),
            },
        );
    }
    let Some(m) = manifest else {
        return gate(
            Verdict::Quarantine,
            "unknown_tool",
            Reason::UnknownTool {
                tool: call.tool.to_string(),
            },
        );
    };
    if let Some((was, now)) = call.changed {
        return gate(
            Verdict::Quarantine,
            "tool_changed",
            Reason::ToolChanged {
                was: was.to_string(),
                now: now.to_string(),
            },
        );
    }
    let Some(rule) = policy.classes.get(&m.class) else {
        return gate(
            Verdict::Quarantine,
            "unknown_class",
            Reason::ClassNotInPolicy {
                class: m.class.clone(),
            },
        );
    };
    if let Some(allowed) = policy.actors.get(ctx.actor) {
        if !allowed.contains(&m.class) {
            return Decision {
                rule: format!("actors.{}", ctx.actor),
                ..gate(
                    Verdict::Deny,
                    "actor",
                    Reason::ActorNotAllowed {
                        actor: ctx.actor.to_string(),
                        class: m.class.clone(),
                    },
                )
            };
        }
    }
    let class = m.class.clone();
    let mut d = Decision {
        verdict: Verdict::Deny,
        class: Some(class.clone()),
        rule: format!("classes.{class}"),
        reasons: Vec::new(),
        policy_version: policy.version.clone(),
        charges: Vec::new(),
        review_roles: Vec::new(),
    };
    match rule.path {
        PathKind::Deny => {
            d.reasons.push(Reason::PathDeny { class });
        }
        PathKind::Quarantine => {
            d.verdict = Verdict::Quarantine;
            d.reasons.push(Reason::PathQuarantine { class });
        }
        PathKind::Approve => {
            // compile() guarantees approve has a role; fail closed if it somehow has not.
            match &rule.role {
                Some(role) => {
                    d.reasons.push(Reason::PathApprove {
                        class,
                        role: role.clone(),
                    });
                    d.verdict = approval(rule, role, ctx.now);
                }
                None => {
                    d.verdict = Verdict::Quarantine;
                    d.reasons.push(Reason::PathQuarantine { class });
                }
            }
        }
        PathKind::Allow | PathKind::Conditional => {
            let (mut held, mut failed) = requirements(call, m, rule);
            // Conditions: the class's, then the tool's. A failing one may send the call to a
            // role of its own or straight to quarantine; the strictest failure wins.
            let mut route = Route::default();
            if !failed.is_empty() {
                route.class_default(rule);
            }
            for c in rule.conditions.iter().chain(&m.conditions) {
                match c.check(call.arguments, call.meta) {
                    Ok(ch) => held.push(Reason::ConditionHeld {
                        pointer: ch.pointer,
                        rule: ch.rule,
                        value: ch.value,
                    }),
                    Err(ch) => {
                        failed.push(Reason::ConditionFailed {
                            pointer: ch.pointer,
                            rule: ch.rule,
                            value: ch.value,
                        });
                        let path = c.on_fail.unwrap_or(if c.role.is_some() {
                            FailPath::Approve
                        } else {
                            rule.on_fail
                        });
                        match (path, c.role.as_ref().or(rule.role.as_ref())) {
                            (FailPath::Approve, Some(role)) => {
                                route.roles.insert(role.clone());
                            }
                            _ => {
                                route.quarantine = true;
                                route.held_by.extend(c.role.clone());
                            }
                        }
                    }
                }
            }
            let nothing_to_check = held.is_empty() && failed.is_empty();
            d.reasons.extend(held);
            if rule.path == PathKind::Conditional && nothing_to_check {
                d.reasons.push(Reason::NoConditions {
                    class: class.clone(),
                });
                route.class_default(rule);
                d.verdict = on_fail(rule, &class, ctx.now, &mut d.reasons, &route);
            } else if failed.is_empty() {
                d.reasons.insert(0, Reason::PathAllow { class });
                d.verdict = Verdict::Allow;
                limits(&mut d, call, m, rule, ctx);
            } else {
                d.reasons.extend(failed);
                d.verdict = on_fail(rule, &class, ctx.now, &mut d.reasons, &route);
            }
            if d.verdict == Verdict::Quarantine && d.review_roles.is_empty() {
                d.review_roles = route.roles.union(&route.held_by).cloned().collect();
            }
        }
    }
    d
}

/// Check the class's requirements against the call: (held, failed).
fn requirements(call: &Call<'_>, m: &ToolManifest, rule: &ClassRule) -> (Vec<Reason>, Vec<Reason>) {
    let mut held = Vec::new();
    let mut failed = Vec::new();
    if rule.require_reversal {
        match &m.reversal {
            Reversal::Tool { tool } if call.reversal_served => {
                held.push(Reason::ReversalDeclared { tool: tool.clone() })
            }
            Reversal::Tool { tool } => failed.push(Reason::ReversalMissing {
                class: m.class.clone(),
                declared: format!("tool:{tool}, which its server does not serve right now"),
            }),
            other => failed.push(Reason::ReversalMissing {
                class: m.class.clone(),
                declared: other.to_string(),
            }),
        }
    }
    if rule.require_evidence {
        if m.evidence.is_empty() {
            failed.push(Reason::NoEvidenceDeclared {
                class: m.class.clone(),
            });
        }
        for field in &m.evidence {
            if evidence_present(call, field) {
                held.push(Reason::EvidencePresent {
                    field: field.clone(),
                });
            } else {
                failed.push(Reason::EvidenceMissing {
                    field: field.clone(),
                });
            }
        }
    }
    (held, failed)
}

/// Where the failures point. The strictest wins: any failure that must be quarantined (or has no
/// role to ask) quarantines the call, and so do failures that need different roles (no single
/// approver may clear all of them).
#[derive(Default)]
struct Route {
    quarantine: bool,
    roles: std::collections::BTreeSet<String>,
    /// Roles named by failures that hold the call (a condition's own `role`).
    held_by: std::collections::BTreeSet<String>,
}

impl Route {
    /// A failure that goes where the class's `on_fail` says.
    fn class_default(&mut self, rule: &ClassRule) {
        match (rule.on_fail, &rule.role) {
            (FailPath::Approve, Some(role)) => {
                self.roles.insert(role.clone());
            }
            _ => self.quarantine = true,
        }
    }
}

fn on_fail(
    rule: &ClassRule,
    class: &str,
    now: DateTime<Utc>,
    reasons: &mut Vec<Reason>,
    route: &Route,
) -> Verdict {
    match (
        route.quarantine,
        route.roles.len(),
        route.roles.iter().next(),
    ) {
        (false, 1, Some(role)) => {
            reasons.push(Reason::PathApprove {
                class: class.to_string(),
                role: role.clone(),
            });
            approval(rule, role, now)
        }
        _ => {
            reasons.push(Reason::PathQuarantine {
                class: class.to_string(),
            });
            Verdict::Quarantine
        }
    }
}

fn approval(rule: &ClassRule, role: &str, now: DateTime<Utc>) -> Verdict {
    Verdict::Approve {
        role: role.to_string(),
        timeout: rule.timeout,
        on_timeout: rule.on_timeout,
        expires_at: now + rule.timeout,
    }
}

/// `field` names an argument, or `_meta.KEY` a key of the request's `_meta`.
fn evidence_present(call: &Call<'_>, field: &str) -> bool {
    let value = match field.strip_prefix("_meta.") {
        Some(key) => call.meta.and_then(|m| m.get(key)),
        None => call.arguments.get(field),
    };
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// Tool names an agent may call: 1-128 characters of `[A-Za-z0-9_.-]`.
pub fn valid_tool_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

mod humantime_serde_secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

mod limits;
mod reason;
mod shape;
use limits::limits;
pub use reason::Reason;

#[cfg(test)]
mod tests;
