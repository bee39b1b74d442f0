//! Whether each tool server answers now: a probe (MCP `ping`) every [`PROBE_EVERY`], and the
//! calls' own answers. A server that misses [`DOWN_AFTER`] probes in a row is `down` (named by
//! `/readyz`, which then answers 503) until it answers a probe or a call again.
//!
//! Owns the per-server count of failures in a row and the last reason. It must never decide
//! anything about a call (a down server's calls still go to it and fail or succeed on their
//! own), and never keep a server down once it has answered.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How often every tool server is pinged.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How long a ping may take before it counts as missed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(4);
/// Probes missed in a row after which a server is down: a server that dies is named within
/// `PROBE_EVERY × DOWN_AFTER + PROBE_TIMEOUT` (14 s).
pub const DOWN_AFTER: u32 = 2;

/// One server's health.
#[derive(Debug, Default)]
pub struct Health {
    missed: AtomicU32,
    why: Mutex<String>,
}

impl Health {
    /// It answered (a probe or a call).
    pub fn answered(&self) {
        self.missed.store(0, Ordering::SeqCst);
    }

    /// A probe went unanswered, for `why`.
    pub fn missed(&self, why: &str) {
        self.missed.fetch_add(1, Ordering::SeqCst);
        *self.why.lock().unwrap_or_else(|e| e.into_inner()) = why.to_string();
    }

    /// Why it is down, if it is.
    pub fn down(&self) -> Option<String> {
        let missed = self.missed.load(Ordering::SeqCst);
        (missed >= DOWN_AFTER).then(|| {
            let why = self.why.lock().unwrap_or_else(|e| e.into_inner());
            format!("down: {missed} pings in a row unanswered ({why})")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn a_server_is_down_after_two_missed_probes_and_up_once_it_answers() {
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
        assert_eq!(h.down(), None);
    }
}
