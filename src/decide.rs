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
use crate::manifest::ToolManifest;
use crate::policy::{OnTimeout, Policy};

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
///
/// Each step is one of the precedence list's (module doc), in its order: the first that decides
/// wins.
pub fn decide(
    call: &Call<'_>,
    manifest: Option<&ToolManifest>,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Decision {
    let gate = GateRules { manifest, policy };
    // 1. and 2.: the call's own shape.
    if let Some(d) = gate.tool_name(call).or_else(|| gate.argument_limits(call)) {
        return d;
    }
    // 3. Unknown never means allowed.
    let Some(m) = manifest else {
        return gate.unknown_tool(call);
    };
    // 4. The rug-pull guard.
    if let Some(d) = gate.tool_changed(call) {
        return d;
    }
    // 5. The class in the policy, and the actor allowed to use it.
    let Some(rule) = policy.classes.get(&m.class) else {
        return gate.class_not_in_policy(m);
    };
    if let Some(d) = gate.actor_not_allowed(m, ctx) {
        return d;
    }
    // 6. to 8. The class's path, its requirements and the rate limits.
    path::class_path(call, m, rule, policy, ctx)
}

/// The gate's own rules (`gate.<rule>`, and `actors.<actor>`), which decide before any class's.
struct GateRules<'a> {
    manifest: Option<&'a ToolManifest>,
    policy: &'a Policy,
}

impl GateRules<'_> {
    /// A decision by the gate's rule `rule`, for one reason.
    fn decision(&self, verdict: Verdict, rule: &str, reason: Reason) -> Decision {
        Decision {
            verdict,
            class: self.manifest.map(|m| m.class.clone()),
            rule: format!("gate.{rule}"),
            reasons: vec![reason],
            policy_version: self.policy.version.clone(),
            charges: Vec::new(),
            review_roles: Vec::new(),
        }
    }

    /// 1. A tool name outside `[A-Za-z0-9_.-]{1,128}` → deny.
    fn tool_name(&self, call: &Call<'_>) -> Option<Decision> {
        if valid_tool_name(call.tool) {
            return None;
        }
        let tool = call.tool.chars().take(140).collect();
        Some(self.decision(Verdict::Deny, "tool_name", Reason::InvalidToolName { tool }))
    }

    /// 2. Arguments over the size or depth limit, or using the redaction marker's key → deny.
    fn argument_limits(&self, call: &Call<'_>) -> Option<Decision> {
        let reason = if call.canonical_len > MAX_ARGUMENT_BYTES {
            Reason::ArgumentsTooLarge {
                bytes: call.canonical_len,
                limit: MAX_ARGUMENT_BYTES,
            }
        } else {
            // one walk over the arguments: how deep they nest, whether they use the marker's key
            let shape = shape::Shape::of_arguments(call.arguments);
            if shape.depth >= MAX_ARGUMENT_DEPTH {
                Reason::ArgumentsTooDeep {
                    limit: MAX_ARGUMENT_DEPTH,
                }
            } else if shape.reserved {
                // the redaction marker is Airlock's: an agent's look-alike could pass for a
                // redacted value
                Reason::ReservedKey {
                    key: crate::redact::MARKER.to_string(),
                }
            } else {
                return None;
            }
        };
        Some(self.decision(Verdict::Deny, "argument_limits", reason))
    }

    /// 3. No manifest describes the tool → quarantine.
    fn unknown_tool(&self, call: &Call<'_>) -> Decision {
        let tool = call.tool.to_string();
        self.decision(
            Verdict::Quarantine,
            "unknown_tool",
            Reason::UnknownTool { tool },
        )
    }

    /// 4. The tool server presents a different definition than the reviewed one → quarantine.
    fn tool_changed(&self, call: &Call<'_>) -> Option<Decision> {
        let (was, now) = call.changed?;
        let reason = Reason::ToolChanged {
            was: was.to_string(),
            now: now.to_string(),
        };
        Some(self.decision(Verdict::Quarantine, "tool_changed", reason))
    }

    /// 5. The manifest's class is not in the policy → quarantine.
    fn class_not_in_policy(&self, m: &ToolManifest) -> Decision {
        let class = m.class.clone();
        self.decision(
            Verdict::Quarantine,
            "unknown_class",
            Reason::ClassNotInPolicy { class },
        )
    }

    /// 5. The policy limits the actor to other classes (`[actors]`) → deny.
    fn actor_not_allowed(&self, m: &ToolManifest, ctx: &Context<'_>) -> Option<Decision> {
        let allowed = self.policy.actors.get(ctx.actor)?;
        if allowed.contains(&m.class) {
            return None;
        }
        let reason = Reason::ActorNotAllowed {
            actor: ctx.actor.to_string(),
            class: m.class.clone(),
        };
        Some(Decision {
            rule: format!("actors.{}", ctx.actor),
            ..self.decision(Verdict::Deny, "actor", reason)
        })
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
mod path;
mod reason;
mod shape;
pub use reason::Reason;

#[cfg(test)]
mod tests;
