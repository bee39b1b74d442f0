//! Whether each tool server answers now: a probe (MCP `ping`) every [`PROBE_EVERY`], and the
//! calls' own answers. A server that left [`DOWN_AFTER`] of its last three probes (or calls that
//! timed out) unanswered is `down` (named by `/readyz`, which then answers 503) until that is no
//! longer so — a server that answers every other ping is down too.
//!
//! Owns the per-server record of the last three answers and the last reason. It must never decide
//! anything about a call (a down server's calls still go to it and fail or succeed on their
//! own), and never keep a server down once it has answered.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// How often every tool server is pinged.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How long a ping may take before it counts as missed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(4);
/// Of the last three probes, how many missed make a server down: a server that dies is named
/// within `PROBE_EVERY × DOWN_AFTER + PROBE_TIMEOUT` (14 s).
pub const DOWN_AFTER: u32 = 2;

/// One server's health.
#[derive(Debug, Default)]
pub struct Health {
    /// The last three answers, newest in the lowest bit: 1 missed, 0 answered.
    recent: AtomicU8,
    why: Mutex<String>,
}

impl Health {
    /// It answered (a probe or a call).
    pub fn answered(&self) {
        self.push(0);
    }

    fn push(&self, bit: u8) {
        let _ = self
            .recent
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                Some(((r << 1) | bit) & 0b111)
            });
    }

    /// A probe went unanswered, for `why`.
    pub fn missed(&self, why: &str) {
        self.push(1);
        *self.why.lock().unwrap_or_else(|e| e.into_inner()) = why.to_string();
    }

    /// Why it is down, if it is.
    pub fn down(&self) -> Option<String> {
        let missed = self.recent.load(Ordering::SeqCst).count_ones();
        (missed >= DOWN_AFTER).then(|| {
            let why = self.why.lock().unwrap_or_else(|e| e.into_inner());
            format!("down: {missed} of its last 3 pings unanswered ({why})")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn a_server_is_down_while_two_of_its_last_three_probes_missed() {
        let h = Health::default();
        assert_eq!(h.down(), None);
        h.missed("connection refused");
        assert_eq!(h.down(), None, "one miss is not down");
        h.missed("connection refused");
        let why = h.down().expect("down");
        assert!(
            why.starts_with("down:") && why.contains("connection refused"),
            "{why}"
        );
        h.answered();
        assert!(h.down().is_some(), "two of the last three still missed");
        h.answered();
        assert_eq!(h.down(), None);
        // one that answers only every other ping is down too
        for _ in 0..3 {
            h.missed("no answer");
            h.answered();
        }
        h.missed("no answer");
        assert!(h.down().is_some());
    }
}
