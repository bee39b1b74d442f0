//! The running drift counters and pauses.
//!
//! Owns the counters in memory (the gate reads them through [`Usage`] while it decides) and the
//! encoding of each change as drift-table entries that the gate commits in the same ledger
//! transaction as the verdict that caused it, so counters and pauses survive a restart exactly.
//! It must never write to the ledger itself, and never forget a pause that was not resumed.
//!
//! Each limit's window is counted in [`SLOTS`] slots: a slot that overlaps the window counts in
//! full, so a count errs on the strict side by at most one slot (1/120 of the window).
//!
//! Replicas sharing a ledger each count their own calls under entries named for the replica
//! (`count@<replica>/…`), so no replica overwrites another's; each adds the others' entries, as
//! last read from the shared table ([`State::absorb`], every heartbeat), to its own counts, and
//! takes on the pauses and resumes committed elsewhere.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Charge, Pause, Usage};

/// Slots per window.
pub const SLOTS: i64 = 120;
const PAUSE: &str = "pause/";
const COUNT: &str = "count/";
/// Start of a replica's own counter entries: `count@<16 hex of SHA-256(replica)>/<limit>`.
const REPLICA_COUNT: &str = "count@";

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
    /// This replica's entry prefix (`count@<id>/`), when replicas share the ledger.
    own: Option<String>,
    /// The other replicas' counters as last read: entry key → (limit key, counter).
    others: HashMap<String, (String, Counter)>,
    /// Pauses found committed at the last read: one gone from the table since was resumed.
    committed_pauses: std::collections::BTreeSet<String>,
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

impl Usage for State {
    fn paused(&self, scope: &str) -> Option<&Pause> {
        self.pauses.get(scope)
    }

    fn used(&self, limit_key: &str, since: DateTime<Utc>) -> (u64, f64) {
        let since = millis(since);
        let count = |c: &Counter| {
            c.slots
                .iter()
                .filter(|s| s.start_ms + c.slot_ms > since)
                .fold((0, 0.0), |(n, t), s| (n + s.calls, t + s.total))
        };
        let mut used = self.counters.get(limit_key).map_or((0, 0.0), count);
        for (_, c) in self.others.values().filter(|(k, _)| k == limit_key) {
            let (n, t) = count(c);
            used = (used.0 + n, used.1 + t);
        }
        used
    }
}

impl State {
    /// Add an allowed call to its counters; returns the entries to commit with its verdict.
    pub fn charge(&mut self, charges: &[Charge], now: DateTime<Utc>) -> Vec<Entry> {
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
            let prefix = self.own.as_deref().unwrap_or(COUNT);
            out.push((format!("{prefix}{}", ch.key), Some(c.encode())));
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
        let own = self.own.as_deref().unwrap_or(COUNT);
        let mut out = vec![(format!("{PAUSE}{scope}"), None)];
        out.extend(
            self.counters
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .map(|k| (format!("{own}{k}"), None)),
        );
        // a resume starts the scope afresh on every replica
        out.extend(
            self.others
                .iter()
                .filter(|(_, (k, _))| k.starts_with(&prefix))
                .map(|(entry, _)| (entry.clone(), None)),
        );
        Some((pause, out))
    }

    /// Apply a resume whose commit is durable: the pause goes, counters start afresh.
    pub fn resumed(&mut self, scope: &str) {
        self.pauses.remove(scope);
        let prefix = format!("{scope}|");
        self.counters.retain(|k, _| !k.starts_with(&prefix));
        self.others.retain(|_, (k, _)| !k.starts_with(&prefix));
    }

    /// Take in the shared drift table as it is now (replicas): the other replicas' counters,
    /// pauses committed elsewhere, and resumes made elsewhere (a pause once committed and now
    /// gone). A pause of this replica's not yet committed is kept.
    pub fn absorb(&mut self, entries: Vec<(String, Value)>) {
        let Some(own) = self.own.clone() else { return };
        let mut others = HashMap::new();
        let mut paused = std::collections::BTreeSet::new();
        for (key, v) in entries {
            if let Some(scope) = key.strip_prefix(PAUSE) {
                if let Ok(p) = serde_json::from_value::<Pause>(v) {
                    self.pauses.entry(scope.to_string()).or_insert(p);
                    paused.insert(scope.to_string());
                }
            } else if key.starts_with(REPLICA_COUNT) && !key.starts_with(&own) {
                if let (Some((_, limit)), Some(c)) = (key.split_once('/'), Counter::decode(&v)) {
                    others.insert(key.clone(), (limit.to_string(), c));
                }
            } else if let (Some(limit), Some(c)) = (key.strip_prefix(COUNT), Counter::decode(&v)) {
                // written before replicas shared the ledger: nobody's own, counted once by all
                others.insert(key.clone(), (limit.to_string(), c));
            }
        }
        for gone in self.committed_pauses.difference(&paused) {
            self.pauses.remove(gone);
            let prefix = format!("{gone}|");
            self.counters.retain(|k, _| !k.starts_with(&prefix));
        }
        self.others = others;
        self.committed_pauses = paused;
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
        Meter::load_as(entries, None)
    }

    /// Rebuild as replica `replica` of a shared ledger (`None`: the only one): its own counters
    /// are those it wrote (and those written before replicas), the rest are the others'.
    pub fn load_as(entries: Vec<(String, Value)>, replica: Option<&str>) -> Result<Meter, String> {
        let mut state = State {
            own: replica.map(|r| {
                let id = crate::canonical::sha256_hex(r.as_bytes());
                format!("{REPLICA_COUNT}{}/", &id[..16])
            }),
            ..State::default()
        };
        let mut rest = Vec::new();
        for (key, v) in entries {
            let mine = state.own.as_deref().and_then(|own| key.strip_prefix(own));
            if let Some(limit) = mine {
                let c = Counter::decode(&v)
                    .ok_or_else(|| format!("drift entry `{key}` is not a counter"))?;
                state.counters.insert(limit.to_string(), c);
            } else if key.starts_with(REPLICA_COUNT)
                || (state.own.is_some() && key.starts_with(COUNT))
            {
                rest.push((key, v));
            } else if let Some(scope) = key.strip_prefix(PAUSE).map(str::to_string) {
                let p: Pause =
                    serde_json::from_value(v).map_err(|e| format!("drift entry `{key}`: {e}"))?;
                state.committed_pauses.insert(scope.clone());
                rest.push((key, serde_json::to_value(&p).unwrap_or_default()));
                state.pauses.insert(scope, p);
            } else if let Some(limit) = key.strip_prefix(COUNT) {
                let c = Counter::decode(&v)
                    .ok_or_else(|| format!("drift entry `{key}` is not a counter"))?;
                state.counters.insert(limit.to_string(), c);
            } else {
                return Err(format!("unknown drift entry `{key}`"));
            }
        }
        if state.own.is_some() {
            state.absorb(rest);
        } else {
            // copied from a ledger replicas shared: their counters all count, as before
            for (key, v) in rest
                .into_iter()
                .filter(|(k, _)| k.starts_with(REPLICA_COUNT))
            {
                let limit = key.split_once('/').map(|(_, l)| l.to_string());
                match (limit, Counter::decode(&v)) {
                    (Some(limit), Some(c)) => {
                        state.others.insert(key, (limit, c));
                    }
                    _ => return Err(format!("drift entry `{key}` is not a counter")),
                }
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
