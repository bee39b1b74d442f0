//! The refusal quota: at most [`super::REFUSALS_PER_MINUTE`] refusal rows a minute per key (an
//! approval on the approval side, a reviewer on the review side). Anyone holding a link can make
//! refusals and each row costs an fsync, so the rest are counted and the next row recorded says
//! how many were left out. It must never drop a row that is not a refusal.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

/// Per key: its window.
#[derive(Debug, Default)]
pub struct RefusalQuota(Mutex<HashMap<String, Window>>);

/// (window start, rows recorded in it, rows left out since the last recorded).
type Window = (DateTime<Utc>, u32, u32);

impl RefusalQuota {
    /// Whether a refusal under `key` is recorded at `now`: `Some(n)` — record it, saying `n`
    /// were left out before it; `None` — leave it out (it is counted).
    pub fn tally(&self, key: &str, now: DateTime<Utc>) -> Option<u32> {
        let mut r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() > 10_000 {
            r.retain(|_, w| now - w.0 <= TimeDelta::minutes(1));
        }
        let w = r.entry(key.to_ascii_lowercase()).or_insert((now, 0, 0));
        if now - w.0 > TimeDelta::minutes(1) {
            *w = (now, 0, w.2);
        }
        if w.1 >= super::REFUSALS_PER_MINUTE {
            w.2 += 1;
            return None;
        }
        w.1 += 1;
        Some(std::mem::take(&mut w.2))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::RefusalQuota;
    use crate::approval::REFUSALS_PER_MINUTE;

    #[test]
    fn twenty_a_minute_per_key_then_the_next_says_how_many_were_left_out() {
        let q = RefusalQuota::default();
        let t = crate::instant::utc(2026, 12, 3, 12, 0, 0);
        for _ in 0..REFUSALS_PER_MINUTE {
            assert_eq!(q.tally("Ann@x", t), Some(0));
        }
        assert_eq!(q.tally("ann@x", t), None, "keys ignore case");
        assert_eq!(q.tally("bob@x", t), Some(0), "each key its own quota");
        assert_eq!(q.tally("ann@x", t + TimeDelta::seconds(61)), Some(1));
    }
}
