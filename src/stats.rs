//! The approval queue, audited: rates, time to decide and queue depth, computed from ledger rows.
//!
//! Owns the arithmetic and the flags (a rubber-stamping role or approver, classes that are
//! candidates for autopilot, classes that time out often). It is pure over [`Record`]s — the CLI
//! and the web page feed it rows — and must never read or write the ledger itself.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::ledger::{Record, Row};

/// Decisions needed before a 100 % approval rate is called rubber-stamping.
pub const RUBBER_STAMP_MIN: u64 = 20;
/// Requests needed before a class is called an autopilot candidate (≥ 95 % approved, no deny).
pub const AUTOPILOT_MIN: u64 = 20;
/// Requests needed before a class is said to time out often (≥ 25 % timeouts).
pub const TIMEOUT_MIN: u64 = 10;

/// Counts and times for one role, approver or class.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Group {
    /// Approval requests (for an approver: decisions made).
    pub requests: u64,
    pub approve: u64,
    pub modify: u64,
    pub deny: u64,
    pub escalate: u64,
    pub timeout: u64,
    /// Share of decisions and timeouts that were approvals.
    pub approve_rate: Option<f64>,
    pub median_secs_to_decide: Option<f64>,
    pub p90_secs_to_decide: Option<f64>,
    #[serde(skip)]
    waits: Vec<f64>,
}

impl Group {
    fn outcomes(&self) -> u64 {
        self.approve + self.modify + self.deny + self.escalate + self.timeout
    }

    fn count(&mut self, choice: &str) {
        match choice {
            "approve" => self.approve += 1,
            "modify" => self.modify += 1,
            "deny" => self.deny += 1,
            "escalate" => self.escalate += 1,
            "timeout" => self.timeout += 1,
            _ => {}
        }
    }

    fn finish(&mut self) {
        let n = self.outcomes();
        self.approve_rate = (n > 0).then(|| self.approve as f64 / n as f64);
        self.waits.sort_by(f64::total_cmp);
        self.median_secs_to_decide = percentile(&self.waits, 0.5);
        self.p90_secs_to_decide = percentile(&self.waits, 0.9);
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Something a reviewer should look at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    /// `rubber_stamp`, `autopilot_candidate` or `times_out_often`.
    pub kind: &'static str,
    /// `role:NAME`, `approver:ADDRESS` or `class:NAME`.
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub by_role: BTreeMap<String, Group>,
    pub by_approver: BTreeMap<String, Group>,
    pub by_class: BTreeMap<String, Group>,
    /// (hour, most approvals open at once during it).
    pub queue_depth: Vec<(String, u64)>,
    pub flags: Vec<Flag>,
}

fn time_of(r: &Record) -> Option<DateTime<Utc>> {
    crate::instant::parse_rfc3339(&r.time).ok()
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Compute the stats of every approval requested at or after `since`.
pub fn compute(rows: &[Record], since: Option<DateTime<Utc>>) -> Stats {
    let mut s = Stats::default();
    // approval id -> class; (approval id, stage) -> (role, envelope time)
    let mut class_of: HashMap<String, String> = HashMap::new();
    let mut stage: HashMap<(String, u64), (String, DateTime<Utc>)> = HashMap::new();
    let mut events: Vec<(DateTime<Utc>, i64)> = Vec::new();
    for r in rows {
        let (Some(t), Ok(row)) = (time_of(r), r.row()) else {
            continue;
        };
        match row {
            Row::Envelope(e) => {
                let (id, st) = (e.approval_id, u64::from(e.stage));
                let role = text(&e.envelope, "role").to_string();
                if st == 0 && !class_of.contains_key(&id) {
                    if since.is_some_and(|since| t < since) {
                        continue;
                    }
                    let class = text(&e.envelope, "class").to_string();
                    s.requests += 1;
                    s.by_class.entry(class.clone()).or_default().requests += 1;
                    class_of.insert(id.clone(), class);
                    events.push((t, 1));
                }
                if class_of.contains_key(&id) && !stage.contains_key(&(id.clone(), st)) {
                    s.by_role.entry(role.clone()).or_default().requests += 1;
                    stage.insert((id, st), (role, t));
                }
            }
            Row::Decision(d) => {
                let key = (d.approval_id, u64::from(d.stage));
                let approver = Some(d.approver.to_lowercase());
                s.decided(&class_of, &stage, key, d.choice.as_str(), approver, t);
            }
            Row::Timeout(d) => {
                let key = (d.approval_id, u64::from(d.stage));
                s.decided(&class_of, &stage, key, "timeout", None, t);
            }
            Row::ApprovalClosed(c) if class_of.contains_key(&c.approval_id) => events.push((t, -1)),
            _ => {}
        }
    }
    for g in s
        .by_role
        .values_mut()
        .chain(s.by_approver.values_mut())
        .chain(s.by_class.values_mut())
    {
        g.finish();
    }
    s.queue_depth = depth_by_hour(events);
    s.flags = flags(&s);
    s
}

impl Stats {
    /// Count a decision (by `approver`) or a timeout (no approver) on stage `key` of an
    /// approval requested since the start of the window.
    fn decided(
        &mut self,
        class_of: &HashMap<String, String>,
        stage: &HashMap<(String, u64), (String, DateTime<Utc>)>,
        key: (String, u64),
        choice: &str,
        approver: Option<String>,
        t: DateTime<Utc>,
    ) {
        let Some(class) = class_of.get(&key.0) else {
            return;
        };
        let Some((role, opened)) = stage.get(&key) else {
            return;
        };
        let wait = (t - *opened).as_seconds_f64();
        // a decision's wait counts toward the time to decide; a timeout's does not
        let decision = approver.is_some();
        let role_g = self.by_role.entry(role.clone()).or_default();
        role_g.count(choice);
        if decision {
            role_g.waits.push(wait);
        }
        let class_g = self.by_class.entry(class.clone()).or_default();
        class_g.count(choice);
        if decision {
            class_g.waits.push(wait);
        }
        if let Some(approver) = approver {
            let a = self.by_approver.entry(approver).or_default();
            a.requests += 1;
            a.waits.push(wait);
            a.count(choice);
        }
    }
}

fn depth_by_hour(mut events: Vec<(DateTime<Utc>, i64)>) -> Vec<(String, u64)> {
    events.sort_by_key(|e| e.0);
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut depth: i64 = 0;
    for (t, d) in events {
        depth += d;
        let hour = t
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .map(|t| crate::instant::rfc3339(&t))
            .unwrap_or_default();
        let now = u64::try_from(depth.max(0)).unwrap_or(0);
        match out.last_mut() {
            Some((h, max)) if *h == hour => *max = (*max).max(now),
            _ => out.push((hour, now)),
        }
    }
    out
}

fn flags(s: &Stats) -> Vec<Flag> {
    let mut out = Vec::new();
    let stamp = |kind: &str, name: &str, g: &Group, out: &mut Vec<Flag>| {
        let decided = g.approve + g.modify + g.deny + g.escalate;
        if decided >= RUBBER_STAMP_MIN && g.approve == decided {
            out.push(Flag {
                kind: "rubber_stamp",
                subject: format!("{kind}:{name}"),
                detail: format!("approved all {decided} requests it decided"),
            });
        }
    };
    for (name, g) in &s.by_role {
        stamp("role", name, g, &mut out);
    }
    for (name, g) in &s.by_approver {
        stamp("approver", name, g, &mut out);
    }
    for (name, g) in &s.by_class {
        let n = g.outcomes();
        if g.requests >= AUTOPILOT_MIN
            && n > 0
            && g.deny == 0
            && g.approve as f64 / n as f64 >= 0.95
        {
            out.push(Flag {
                kind: "autopilot_candidate",
                subject: format!("class:{name}"),
                detail: format!(
                    "{} of {} outcomes were approvals, none denied",
                    g.approve, n
                ),
            });
        }
        if g.requests >= TIMEOUT_MIN && g.timeout as f64 / g.requests as f64 >= 0.25 {
            out.push(Flag {
                kind: "times_out_often",
                subject: format!("class:{name}"),
                detail: format!("{} of {} requests timed out", g.timeout, g.requests),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
