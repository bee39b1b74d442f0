//! Policy replay: re-decide recorded calls with a candidate policy and report what would change.
//!
//! Owns the reconstruction of a [`Call`] from its `proposal` and `verdict` rows and the
//! comparison. The pure core makes it exact for everything the rows record: arguments, `_meta`,
//! actor, time, a changed tool definition, a missing reversal tool. Rate limits are the one thing
//! it cannot replay (counters depend on the whole history), so calls a limit held are counted
//! apart. It must never run, forward or record anything.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::decide::{self, Call, Context, Decision, Verdict};
use crate::drift::NoUsage;
use crate::ledger::row::{self, Decided};
use crate::ledger::{Record, Row};
use crate::manifest::ManifestSet;
use crate::policy::Policy;

/// Examples kept per kind of change.
pub const EXAMPLES: usize = 5;

/// One call whose verdict would change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changed {
    pub call_id: String,
    pub time: String,
    pub tool: String,
    pub was: String,
    pub now: String,
    /// Why, under the candidate policy.
    pub because: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Calls re-decided.
    pub calls: u64,
    pub unchanged: u64,
    /// `was → now` → how many calls.
    pub changes: BTreeMap<String, u64>,
    pub examples: Vec<Changed>,
    /// Calls held by a rate limit (not replayable) or without recorded arguments.
    pub skipped: u64,
}

/// A verdict as one word, with the role for approvals: `allow`, `approve(finance)`.
fn label(verdict: &str, role: Option<&str>) -> String {
    match (verdict, role) {
        ("approve", Some(r)) => format!("approve({r})"),
        (v, _) => v.to_string(),
    }
}

fn label_of(d: &Decision) -> String {
    match &d.verdict {
        Verdict::Approve { role, .. } => label("approve", Some(role)),
        v => label(v.name(), None),
    }
}

fn codes(verdict: &row::Verdict) -> Vec<&str> {
    verdict
        .reasons
        .iter()
        .filter_map(|r| r["code"].as_str())
        .collect()
}

/// A recorded verdict as one word, with the role for approvals.
fn label_recorded(v: &row::Verdict) -> String {
    match &v.verdict {
        Decided::Approve { role, .. } => label("approve", Some(role)),
        d => label(d.name(), None),
    }
}

/// Re-decide every call proposed at or after `since` with `candidate`.
pub fn replay(
    rows: &[Record],
    manifests: &ManifestSet,
    candidate: &Policy,
    since: Option<DateTime<Utc>>,
) -> Report {
    let mut verdicts: HashMap<&str, row::Verdict> = HashMap::new();
    let mut proposals: Vec<(&Record, row::Proposal)> = Vec::new();
    for r in rows {
        match r.row() {
            Ok(Row::Verdict(v)) => {
                verdicts.insert(r.call_id.as_str(), v);
            }
            Ok(Row::Proposal(p)) => proposals.push((r, p)),
            _ => {}
        }
    }
    let mut report = Report::default();
    for (p, b) in &proposals {
        let Ok(at) = crate::instant::parse_rfc3339(&p.time) else {
            continue;
        };
        if since.is_some_and(|s| at < s) {
            continue;
        }
        let Some(recorded) = verdicts.get(p.call_id.as_str()) else {
            continue;
        };
        let reasons = codes(recorded);
        let (Some(arguments), false) = (
            b.arguments.as_object(),
            reasons.iter().any(|c| {
                matches!(
                    *c,
                    "autopilot_paused" | "limit_reached" | "limit_uncountable"
                )
            }),
        ) else {
            report.skipped += 1;
            continue;
        };
        let meta: Option<&Map<String, Value>> = b.meta.as_ref().and_then(Value::as_object);
        let tool = b.tool.as_str();
        let changed = recorded
            .reasons
            .iter()
            .find(|r| r["code"] == "tool_changed")
            .map(|r| {
                (
                    r["was"].as_str().unwrap_or(""),
                    r["now"].as_str().unwrap_or(""),
                )
            });
        let reversal_unserved = recorded.reasons.iter().any(|r| {
            r["code"] == "reversal_missing"
                && r["declared"]
                    .as_str()
                    .is_some_and(|d| d.contains("does not serve"))
        });
        let manifest = match (&b.server, &b.tool_name) {
            (Some(s), Some(t)) => manifests.get(s, t),
            _ => None,
        };
        let d = decide::decide(
            &Call {
                tool,
                arguments,
                meta,
                canonical_len: crate::canonical::to_string(&b.arguments).len(),
                changed,
                reversal_served: !reversal_unserved,
            },
            manifest,
            candidate,
            &Context {
                actor: &b.actor,
                now: at,
                usage: &NoUsage,
            },
        );
        report.calls += 1;
        let was = label_recorded(recorded);
        let now = label_of(&d);
        if was == now {
            report.unchanged += 1;
            continue;
        }
        let key = format!("{was} → {now}");
        let n = report.changes.entry(key.clone()).or_default();
        *n += 1;
        if *n as usize <= EXAMPLES {
            report.examples.push(Changed {
                call_id: p.call_id.clone(),
                time: p.time.clone(),
                tool: tool.to_string(),
                was,
                now,
                because: d.explanation(),
            });
        }
    }
    report
}

#[cfg(test)]
mod tests;
