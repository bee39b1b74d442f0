//! Drift pause: rate limits on autopilot calls, as pure rules.
//!
//! Owns the limit format (`limits` on a policy class, `[[tool.limit]]` in a manifest), the keys
//! that name a limit's counter and its pause scope, and [`check`]: given the counters so far, may
//! this autopilot call run, and what does it add to them? It is pure — the counters come in
//! through [`Usage`]; the running, durable counters are the [`meter`]'s. It must never let a call
//! through a paused scope or past a limit, and never count a call that did not run on autopilot.

pub mod meter;
pub mod pauses;

use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One limit as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitFile {
    /// The sliding window counted over, e.g. `1m`, `1h`, `1d`.
    pub window: String,
    /// Most autopilot calls in the window.
    pub max_calls: Option<u64>,
    /// JSON pointer of a number argument to add up, e.g. `/amount`; with `max_total`.
    pub sum: Option<String>,
    /// Largest total of `sum` in the window.
    pub max_total: Option<f64>,
    /// `actor` (default): each actor has its own counter and pause; `all`: one shared by all.
    #[serde(default)]
    pub per: Per,
    /// The role mailed when this limit pauses autopilot (default: the class's `role`).
    pub notify: Option<String>,
}

/// Whose calls a limit counts together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    #[default]
    Actor,
    All,
}

/// What a limit counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    Calls { max: u64 },
    Sum { pointer: String, max: f64 },
}

/// A compiled limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub window: Duration,
    pub metric: Metric,
    pub per: Per,
    pub notify: Option<String>,
}

impl Limit {
    /// In words, e.g. `30 calls per 1m per actor`.
    pub fn describe(&self) -> String {
        let what = match &self.metric {
            Metric::Calls { max } => format!("{max} calls"),
            Metric::Sum { pointer, max } => format!("a total of `{pointer}` of {max}"),
        };
        let per = match self.per {
            Per::Actor => "per actor",
            Per::All => "for all actors together",
        };
        format!(
            "{what} per {} {per}",
            humantime::format_duration(self.window)
        )
    }
}

/// Check a limit as written.
pub fn compile(f: &LimitFile) -> Result<Limit, String> {
    let window = crate::policy::parse_duration(&f.window).map_err(|e| format!("window: {e}"))?;
    let metric = match (f.max_calls, &f.sum, f.max_total) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(
                "`max_calls` counts calls and `sum`/`max_total` add up an argument: use one per limit"
                    .into(),
            );
        }
        (None, Some(_), None) => return Err("`sum` needs `max_total`, the largest total".into()),
        (None, None, Some(_)) => {
            return Err(
                "`max_total` needs `sum`, the JSON pointer of the argument to add up".into(),
            );
        }
        (Some(0), None, None) => return Err("`max_calls` must be at least 1".into()),
        (Some(max), None, None) => Metric::Calls { max },
        (None, Some(pointer), Some(max)) => {
            if !pointer.starts_with('/') {
                return Err(format!(
                    "`sum` must be a JSON pointer such as `/amount`, not `{pointer}`"
                ));
            }
            if !(max.is_finite() && max > 0.0) {
                return Err("`max_total` must be a positive number".into());
            }
            Metric::Sum {
                pointer: pointer.clone(),
                max,
            }
        }
        _ => {
            return Err(
                "a limit needs either `max_calls`, or `sum` (a JSON pointer) with `max_total`"
                    .into(),
            );
        }
    };
    Ok(Limit {
        window,
        metric,
        per: f.per,
        notify: f.notify.clone(),
    })
}

/// What a limit is attached to.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Class(&'a str),
    Tool { server: &'a str, tool: &'a str },
}

/// The pause scope of a limit for `actor`: `class:NAME` or `tool:SERVER/TOOL`, with `@ACTOR`
/// when the limit counts per actor.
pub fn scope_key(scope: Scope<'_>, per: Per, actor: &str) -> String {
    let base = match scope {
        Scope::Class(c) => format!("class:{c}"),
        Scope::Tool { server, tool } => format!("tool:{server}/{tool}"),
    };
    match per {
        Per::Actor => format!("{base}@{actor}"),
        Per::All => base,
    }
}

/// The counter of one limit in one scope.
pub fn limit_key(scope_key: &str, limit: &Limit) -> String {
    format!("{scope_key}|{}", counter_name(limit))
}

/// What a limit counts over which window, e.g. `calls|60000ms`: two limits with the same name
/// would share a counter.
fn counter_name(limit: &Limit) -> String {
    let w = limit.window.as_millis();
    match &limit.metric {
        Metric::Calls { .. } => format!("calls|{w}ms"),
        Metric::Sum { pointer, .. } => format!("sum:{pointer}|{w}ms"),
    }
}

/// The first limit that counts the same thing over the same window as an earlier one.
pub fn duplicate(limits: &[Limit]) -> Option<usize> {
    let mut seen = std::collections::HashSet::new();
    limits.iter().position(|l| !seen.insert(counter_name(l)))
}

/// A paused scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    pub scope: String,
    #[serde(with = "crate::instant::serde_rfc3339")]
    pub since: DateTime<Utc>,
    /// The limit that was crossed, in words.
    pub limit: String,
    /// The call that would have crossed it (quarantined).
    pub call_id: String,
    /// The role notified, if any.
    pub notify: Option<String>,
}

/// The counters as they stand: read-only, so [`check`] stays pure.
pub trait Usage: std::fmt::Debug {
    /// The pause on a scope, if it is paused.
    fn paused(&self, scope: &str) -> Option<&Pause>;
    /// (calls, total) counted by a limit since `since`.
    fn used(&self, limit_key: &str, since: DateTime<Utc>) -> (u64, f64);
}

/// No counters at all (for `explain`, which has no running gate).
#[derive(Debug, Default)]
pub struct NoUsage;

impl Usage for NoUsage {
    fn paused(&self, _: &str) -> Option<&Pause> {
        None
    }
    fn used(&self, _: &str, _: DateTime<Utc>) -> (u64, f64) {
        (0, 0.0)
    }
}

/// One counter an allowed call adds to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Charge {
    pub key: String,
    pub amount: f64,
    #[serde(skip)]
    pub window: Duration,
}

/// What the limits say about an autopilot call.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Within every limit; the counters it adds to.
    Pass(Vec<Charge>),
    /// A scope it falls in is paused.
    Paused {
        scope: String,
        since: DateTime<Utc>,
        /// The pause's role (who may resume it), if it names one.
        notify: Option<String>,
    },
    /// It would cross a limit: it is held and the scope pauses.
    Crossed {
        scope: String,
        limit: String,
        used: String,
        notify: Option<String>,
    },
    /// A summed argument is missing, not a number, or negative: it cannot be counted.
    Uncountable { scope: String, pointer: String },
}

/// Check a call against every limit on it: (scope, limit, default role to notify).
pub fn check(
    limits: &[(Scope<'_>, &Limit, Option<&str>)],
    arguments: &Map<String, Value>,
    meta: Option<&Map<String, Value>>,
    actor: &str,
    now: DateTime<Utc>,
    usage: &dyn Usage,
) -> Check {
    for (scope, limit, _) in limits {
        let key = scope_key(*scope, limit.per, actor);
        if let Some(p) = usage.paused(&key) {
            return Check::Paused {
                scope: key,
                since: p.since,
                notify: p.notify.clone(),
            };
        }
    }
    let mut charges = Vec::new();
    for (scope, limit, role) in limits {
        let scope = scope_key(*scope, limit.per, actor);
        let key = limit_key(&scope, limit);
        let since = now - limit.window;
        let (calls, total) = usage.used(&key, since);
        let notify = limit.notify.clone().or(role.map(str::to_string));
        match &limit.metric {
            Metric::Calls { max } => {
                if calls.saturating_add(1) > *max {
                    return Check::Crossed {
                        scope,
                        limit: limit.describe(),
                        used: format!(
                            "{calls} calls in the window; this would be call {}",
                            calls.saturating_add(1)
                        ),
                        notify,
                    };
                }
                charges.push(Charge {
                    key,
                    amount: 1.0,
                    window: limit.window,
                });
            }
            Metric::Sum { pointer, max } => {
                let amount =
                    crate::condition::lookup(pointer, arguments, meta).and_then(Value::as_f64);
                let Some(amount) = amount.filter(|a| a.is_finite() && *a >= 0.0) else {
                    return Check::Uncountable {
                        scope,
                        pointer: pointer.clone(),
                    };
                };
                if total + amount > *max {
                    return Check::Crossed {
                        scope,
                        limit: limit.describe(),
                        used: format!("{total} used in the window; this call adds {amount}"),
                        notify,
                    };
                }
                charges.push(Charge {
                    key,
                    amount,
                    window: limit.window,
                });
            }
        }
    }
    Check::Pass(charges)
}

#[cfg(test)]
mod tests;
