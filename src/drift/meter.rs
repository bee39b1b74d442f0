//! The running drift counters and pauses.
//!
//! Owns the counters in memory (the gate reads them through [`Usage`] while it decides) and the
//! encoding of each change as drift-table entries that the gate commits in the same ledger
//! transaction as the verdict that caused it, so counters and pauses survive a restart exactly.
//! It must never write to the ledger itself, and never forget a pause that was not resumed.
//!
//! Each limit's window is counted in [`SLOTS`] slots: a slot that overlaps the window counts in
//! full, so a count errs on the strict side by at most one slot (1/120 of the window).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Charge, Pause, Usage};

/// Slots per window.
pub const SLOTS: i64 = 120;
const PAUSE: &str = "pause/";
const COUNT: &str = "count/";

/// A drift-table change: (key, new value or `None` to remove).
pub type Entry = (String, Option<Value>);

#[derive(Debug, Clone, Copy, PartialEq)]
struct Slot {
    start_ms: i64,
    calls: u64,
    total: f64,
}

#[derive(Debug, Clone, Default)]
struct Counter {
    slot_ms: i64,
    window_ms: i64,
    slots: VecDeque<Slot>,
}

impl Counter {
    fn encode(&self) -> Value {
        json!({
            "slot_ms": self.slot_ms,
            "window_ms": self.window_ms,
            "slots": self.slots.iter().map(|s| json!([s.start_ms, s.calls, s.total])).collect::<Vec<_>>(),
        })
    }

    fn decode(v: &Value) -> Option<Counter> {
        let slots = v
            .get("slots")?
            .as_array()?
            .iter()
            .map(|s| {
                Some(Slot {
                    start_ms: s.get(0)?.as_i64()?,
                    calls: s.get(1)?.as_u64()?,
                    total: s.get(2)?.as_f64()?,
                })
            })
            .collect::<Option<VecDeque<Slot>>>()?;
        Some(Counter {
            slot_ms: v.get("slot_ms")?.as_i64()?.max(1),
            window_ms: v.get("window_ms")?.as_i64()?,
            slots,
        })
    }
}

/// Counters and pauses, as of the last change.
#[derive(Debug, Default)]
pub struct State {
    counters: HashMap<String, Counter>,
    pauses: BTreeMap<String, Pause>,
}

fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl Usage for State {
    fn paused(&self, scope: &str) -> Option<&Pause> {
        self.pauses.get(scope)
    }

    fn used(&self, limit_key: &str, since: OffsetDateTime) -> (u64, f64) {
        let since = millis(since);
        self.counters.get(limit_key).map_or((0, 0.0), |c| {
            c.slots
                .iter()
                .filter(|s| s.start_ms + c.slot_ms > since)
                .fold((0, 0.0), |(n, t), s| (n + s.calls, t + s.total))
        })
    }
}

impl State {
    /// Add an allowed call to its counters; returns the entries to commit with its verdict.
    pub fn charge(&mut self, charges: &[Charge], now: OffsetDateTime) -> Vec<Entry> {
        let now_ms = millis(now);
        let mut out = Vec::with_capacity(charges.len());
        for ch in charges {
            let window_ms = i64::try_from(ch.window.as_millis()).unwrap_or(i64::MAX);
            let slot_ms = (window_ms / SLOTS).max(1);
            let c = self
                .counters
                .entry(ch.key.clone())
                .or_insert_with(|| Counter {
                    slot_ms,
                    window_ms,
                    slots: VecDeque::new(),
                });
            if c.slot_ms != slot_ms || c.window_ms != window_ms {
                // the same key always has the same window; a decoded oddity starts afresh
                *c = Counter {
                    slot_ms,
                    window_ms,
                    slots: VecDeque::new(),
                };
            }
            while c
                .slots
                .front()
                .is_some_and(|s| s.start_ms + slot_ms <= now_ms - window_ms)
            {
                c.slots.pop_front();
            }
            let start_ms = now_ms - now_ms.rem_euclid(slot_ms);
            match c.slots.back_mut() {
                Some(s) if s.start_ms == start_ms => {
                    s.calls += 1;
                    s.total += ch.amount;
                }
                _ => c.slots.push_back(Slot {
                    start_ms,
                    calls: 1,
                    total: ch.amount,
                }),
            }
            out.push((format!("{COUNT}{}", ch.key), Some(c.encode())));
        }
        out
    }

    /// Pause a scope; returns the entry to commit with the verdict that crossed the limit.
    pub fn pause(&mut self, pause: Pause) -> Vec<Entry> {
        let v = serde_json::to_value(&pause).ok();
        let key = format!("{PAUSE}{}", pause.scope);
        self.pauses.insert(pause.scope.clone(), pause);
        vec![(key, v)]
    }

    /// What resuming a paused scope commits (its pause and counters removed), without changing
    /// anything yet: the scope stays paused until the commit is durable. `None` when the scope
    /// is not paused, or (given `expected`) is paused by another call than the one reviewed.
    pub fn resume_entries(
        &self,
        scope: &str,
        expected: Option<&str>,
    ) -> Option<(Pause, Vec<Entry>)> {
        let pause = self.pauses.get(scope)?.clone();
        if expected.is_some_and(|id| id != pause.call_id) {
            return None;
        }
        let prefix = format!("{scope}|");
        let mut out = vec![(format!("{PAUSE}{scope}"), None)];
        out.extend(
            self.counters
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .map(|k| (format!("{COUNT}{k}"), None)),
        );
        Some((pause, out))
    }

    /// Apply a resume whose commit is durable: the pause goes, counters start afresh.
    pub fn resumed(&mut self, scope: &str) {
        self.pauses.remove(scope);
        let prefix = format!("{scope}|");
        self.counters.retain(|k, _| !k.starts_with(&prefix));
    }

    /// Resume a paused scope at once (the entries to commit, or `None` if not paused).
    pub fn resume(&mut self, scope: &str) -> Option<(Pause, Vec<Entry>)> {
        let out = self.resume_entries(scope, None)?;
        self.resumed(scope);
        Some(out)
    }

    /// Withdraw the pause call `call_id` started, when its commit failed (a later pause of the
    /// same scope is left alone).
    pub fn unpause(&mut self, scope: &str, call_id: &str) {
        if self.pauses.get(scope).is_some_and(|p| p.call_id == call_id) {
            self.pauses.remove(scope);
        }
    }

    pub fn pauses(&self) -> Vec<Pause> {
        self.pauses.values().cloned().collect()
    }
}

/// The gate's meter: the state behind one lock. Holding the lock while deciding, changing the
/// state and submitting the ledger change keeps memory and the ledger in the same order.
#[derive(Debug, Default)]
pub struct Meter {
    state: Mutex<State>,
}

impl Meter {
    /// Rebuild from the drift table's entries.
    pub fn load(entries: Vec<(String, Value)>) -> Result<Meter, String> {
        let mut state = State::default();
        for (key, v) in entries {
            if let Some(scope) = key.strip_prefix(PAUSE) {
                let p: Pause =
                    serde_json::from_value(v).map_err(|e| format!("drift entry `{key}`: {e}"))?;
                state.pauses.insert(scope.to_string(), p);
            } else if let Some(limit) = key.strip_prefix(COUNT) {
                let c = Counter::decode(&v)
                    .ok_or_else(|| format!("drift entry `{key}` is not a counter"))?;
                state.counters.insert(limit.to_string(), c);
            } else {
                return Err(format!("unknown drift entry `{key}`"));
            }
        }
        Ok(Meter {
            state: Mutex::new(state),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
