//! Policy replay: re-decide recorded calls with a candidate policy and report what would change.
//!
//! Owns the reconstruction of a [`Call`] from its `proposal` and `verdict` rows and the
//! comparison. The pure core makes it exact for everything the rows record: arguments, `_meta`,
//! actor, time, a changed tool definition, a missing reversal tool. Rate limits are the one thing
//! it cannot replay (counters depend on the whole history), so calls a limit held are counted
//! apart. It must never run, forward or record anything.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::decide::{self, Call, Context, Decision, Verdict};
use crate::drift::NoUsage;
use crate::ledger::Record;
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

fn codes(verdict: &Value) -> Vec<&str> {
    verdict["reasons"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["code"].as_str()).collect())
        .unwrap_or_default()
}

/// Re-decide every call proposed at or after `since` with `candidate`.
pub fn replay(
    rows: &[Record],
    manifests: &ManifestSet,
    candidate: &Policy,
    since: Option<OffsetDateTime>,
) -> Report {
    let verdicts: HashMap<&str, &Value> = rows
        .iter()
        .filter(|r| r.kind == "verdict")
        .map(|r| (r.call_id.as_str(), &r.body))
        .collect();
    let mut report = Report::default();
    for p in rows.iter().filter(|r| r.kind == "proposal") {
        let Ok(at) = OffsetDateTime::parse(&p.time, &Rfc3339) else {
            continue;
        };
        if since.is_some_and(|s| at < s) {
            continue;
        }
        let Some(recorded) = verdicts.get(p.call_id.as_str()) else {
            continue;
        };
        let reasons = codes(recorded);
        let b = &p.body;
        let (Some(arguments), false) = (
            b["arguments"].as_object(),
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
        let meta: Option<&Map<String, Value>> = b["meta"].as_object();
        let tool = b["tool"].as_str().unwrap_or("");
        let changed = recorded["reasons"].as_array().and_then(|a| {
            a.iter().find(|r| r["code"] == "tool_changed").map(|r| {
                (
                    r["was"].as_str().unwrap_or(""),
                    r["now"].as_str().unwrap_or(""),
                )
            })
        });
        let reversal_unserved = recorded["reasons"].as_array().is_some_and(|a| {
            a.iter().any(|r| {
                r["code"] == "reversal_missing"
                    && r["declared"]
                        .as_str()
                        .is_some_and(|d| d.contains("does not serve"))
            })
        });
        let manifest = match (b["server"].as_str(), b["tool_name"].as_str()) {
            (Some(s), Some(t)) => manifests.get(s, t),
            _ => None,
        };
        let d = decide::decide(
            &Call {
                tool,
                arguments,
                meta,
                canonical_len: crate::canonical::to_string(&b["arguments"]).len(),
                changed,
                reversal_served: !reversal_unserved,
            },
            manifest,
            candidate,
            &Context {
                actor: b["actor"].as_str().unwrap_or(""),
                now: at,
                usage: &NoUsage,
            },
        );
        report.calls += 1;
        let was = label(
            recorded["verdict"].as_str().unwrap_or("?"),
            recorded["role"].as_str(),
        );
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
