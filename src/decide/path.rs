//! Steps 6 and 7 of the precedence (and the way into 8): the class's path decides a call the
//! gate's own rules let through. `deny`, `quarantine`, `approve` by the class's role; `allow`
//! and `conditional` check the class's requirements and the conditions on the arguments, and
//! send failures where the strictest of them says (approval by one role, else quarantine).
//!
//! Pure like all of `decide`: it must never do I/O, read a clock or hold state (`now` comes in
//! with the context).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::limits::limits;
use super::{Call, Context, Decision, Reason, Verdict};
use crate::condition::Condition;
use crate::manifest::{Reversal, ToolManifest};
use crate::policy::{ClassRule, FailPath, PathKind, Policy};

/// 6. to 8.: the class's path decides (`classes.<class>`).
pub(super) fn class_path(
    call: &Call<'_>,
    m: &ToolManifest,
    rule: &ClassRule,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Decision {
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
        PathKind::Approve => approve_path(&mut d, rule, class, ctx.now),
        PathKind::Allow | PathKind::Conditional => autopilot_path(&mut d, call, m, rule, ctx),
    }
    d
}

/// 6. `approve` → approval by the class's role.
fn approve_path(d: &mut Decision, rule: &ClassRule, class: String, now: DateTime<Utc>) {
    // compile() guarantees approve has a role; fail closed if it somehow has not.
    match &rule.role {
        Some(role) => {
            d.reasons.push(Reason::PathApprove {
                class,
                role: role.clone(),
            });
            d.verdict = approval(rule, role, now);
        }
        None => {
            d.verdict = Verdict::Quarantine;
            d.reasons.push(Reason::PathQuarantine { class });
        }
    }
}

/// Step 7, `allow` and `conditional`: every requirement held → allow, within the rate limits
/// (step 8); `conditional` with nothing to check, or any requirement failed → `on_fail`.
fn autopilot_path(
    d: &mut Decision,
    call: &Call<'_>,
    m: &ToolManifest,
    rule: &ClassRule,
    ctx: &Context<'_>,
) {
    let class = m.class.clone();
    let (held, failed, mut route) = checked(call, m, rule);
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
        limits(d, call, m, rule, ctx);
    } else {
        d.reasons.extend(failed);
        d.verdict = on_fail(rule, &class, ctx.now, &mut d.reasons, &route);
    }
    if d.verdict == Verdict::Quarantine && d.review_roles.is_empty() {
        d.review_roles = route.roles.union(&route.held_by).cloned().collect();
    }
}

/// The class's requirements, then the conditions (the class's, then the tool's), checked
/// against the call: (held, failed, where the failures point).
fn checked(
    call: &Call<'_>,
    m: &ToolManifest,
    rule: &ClassRule,
) -> (Vec<Reason>, Vec<Reason>, Route) {
    let (mut held, mut failed) = requirements(call, m, rule);
    // A failing condition may send the call to a role of its own or straight to quarantine;
    // the strictest failure wins.
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
                route.condition_failed(c, rule);
            }
        }
    }
    (held, failed, route)
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
    roles: BTreeSet<String>,
    /// Roles named by failures that hold the call (a condition's own `role`).
    held_by: BTreeSet<String>,
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

    /// A failed condition: its own `on_fail`, else approval if it names a role, else the
    /// class's `on_fail`; approval by its role or the class's.
    fn condition_failed(&mut self, c: &Condition, rule: &ClassRule) {
        let path = c.on_fail.unwrap_or(if c.role.is_some() {
            FailPath::Approve
        } else {
            rule.on_fail
        });
        match (path, c.role.as_ref().or(rule.role.as_ref())) {
            (FailPath::Approve, Some(role)) => {
                self.roles.insert(role.clone());
            }
            _ => {
                self.quarantine = true;
                self.held_by.extend(c.role.clone());
            }
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
