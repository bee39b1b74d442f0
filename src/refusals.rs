//! Refused calls per agent and minute, pure: the first `refused_per_minute` (policy) of an
//! agent's refused calls in a minute are recorded one by one; the rest are only counted, and
//! each minute's count becomes one `refused_counted` row.
//!
//! Owns the per-agent windows and which counts are due. It must never do I/O or read a clock
//! (time is passed in), and never let a call run: it only decides how a refusal is recorded.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::ledger::row::RefusedCounted;

/// Most tool names one count lists (the rest are summed under `…`).
const TOOLS_LISTED: usize = 16;

/// How one refused call is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// As every call: proposal, verdict and outcome rows.
    Record,
    /// Only counted: it is in its minute's `refused_counted` row.
    Count,
}

/// One agent's refused calls in one minute.
#[derive(Debug, Default)]
struct Window {
    minute: i64,
    recorded: u32,
    counted: u64,
    tools: BTreeMap<String, u64>,
}

/// A minute's count of one agent's refused calls that were not recorded one by one.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub actor: String,
    /// The minute's start, seconds since the epoch.
    pub minute: i64,
    pub calls: u64,
    pub tools: BTreeMap<String, u64>,
}

impl Counted {
    /// The `refused_counted` row's body.
    pub fn body(&self, limit: u32) -> RefusedCounted {
        let minute =
            DateTime::from_timestamp_secs(self.minute).map(|t| crate::instant::rfc3339(&t));
        RefusedCounted {
            actor: self.actor.clone(),
            minute,
            calls: self.calls,
            tools: self.tools.clone(),
            refused_per_minute: limit,
        }
    }
}

/// Every agent's window of the current minute.
#[derive(Debug, Default)]
pub struct Refusals {
    windows: HashMap<String, Window>,
}

fn minute_of(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(60) * 60
}

impl Refusals {
    /// How `actor`'s refused call of `tool` at `now` is recorded, and the counts of minutes
    /// now past (to be recorded with it).
    pub fn tally(
        &mut self,
        actor: &str,
        tool: &str,
        limit: u32,
        now: DateTime<Utc>,
    ) -> (Tally, Vec<Counted>) {
        let due = self.due(now);
        let minute = minute_of(now);
        let w = self.windows.entry(actor.to_string()).or_default();
        w.minute = minute;
        if w.recorded < limit {
            w.recorded += 1;
            return (Tally::Record, due);
        }
        w.counted += 1;
        let listed = w.tools.len() < TOOLS_LISTED || w.tools.contains_key(tool);
        let key = if listed { tool } else { "…" };
        *w.tools.entry(key.to_string()).or_insert(0) += 1;
        (Tally::Count, due)
    }

    /// The counts of minutes before `now`'s, taken out (a window with nothing counted is
    /// dropped without a row).
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<Counted> {
        self.remove_windows(|w| w.minute < minute_of(now))
    }

    /// Every count, the current minute's too (at a clean stop).
    pub fn all(&mut self) -> Vec<Counted> {
        self.remove_windows(|_| true)
    }

    fn remove_windows(&mut self, done: impl Fn(&Window) -> bool) -> Vec<Counted> {
        let ended: Vec<String> = self
            .windows
            .iter()
            .filter(|(_, w)| done(w))
            .map(|(a, _)| a.clone())
            .collect();
        let mut out: Vec<Counted> = ended
            .into_iter()
            .filter_map(|actor| {
                let w = self.windows.remove(&actor)?;
                (w.counted > 0).then_some(Counted {
                    actor,
                    minute: w.minute,
                    calls: w.counted,
                    tools: w.tools,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.minute, &a.actor).cmp(&(b.minute, &b.actor)));
        out
    }
}

#[cfg(test)]
mod tests {

    use super::{Refusals, Tally};

    #[test]
    fn past_the_limit_calls_are_counted_and_the_minute_s_count_is_due_after_it() {
        let mut r = Refusals::default();
        let t = crate::instant::utc(2026, 12, 3, 10, 0, 5);
        assert_eq!(r.tally("a", "delete", 2, t).0, Tally::Record);
        assert_eq!(r.tally("a", "delete", 2, t).0, Tally::Record);
        assert_eq!(r.tally("a", "delete", 2, t).0, Tally::Count);
        assert_eq!(r.tally("a", "wipe", 2, t).0, Tally::Count);
        // another agent has its own budget
        assert_eq!(r.tally("b", "delete", 2, t).0, Tally::Record);
        assert!(
            r.due(crate::instant::utc(2026, 12, 3, 10, 0, 59))
                .is_empty(),
            "the minute is not over"
        );

        let (tally, due) = r.tally("a", "delete", 2, crate::instant::utc(2026, 12, 3, 10, 1, 0));
        assert_eq!(tally, Tally::Record, "a new minute, a new budget");
        assert_eq!(due.len(), 1, "b counted nothing: no row for it");
        assert_eq!((due[0].actor.as_str(), due[0].calls), ("a", 2));
        assert_eq!(due[0].tools["delete"], 1);
        assert_eq!(due[0].tools["wipe"], 1);
        let body = due[0].body(2);
        assert_eq!(body.minute.as_deref(), Some("2026-12-03T10:00:00Z"));
        assert_eq!(body.refused_per_minute, 2);
    }

    #[test]
    fn a_count_lists_a_bounded_number_of_tools_and_a_stop_takes_the_current_minute() {
        let mut r = Refusals::default();
        let t = crate::instant::utc(2026, 12, 3, 10, 0, 5);
        for i in 0..40 {
            r.tally("a", &format!("tool{i}"), 0, t);
        }
        let all = r.all();
        assert_eq!(all[0].calls, 40);
        assert_eq!(all[0].tools.len(), super::TOOLS_LISTED + 1);
        assert_eq!(all[0].tools["…"], 40 - super::TOOLS_LISTED as u64);
        assert!(r.all().is_empty(), "taken once");
    }
}
