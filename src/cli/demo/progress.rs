//! Progress lines: while something the demo waits for takes more than a second, say so, and
//! again every few seconds. It only prints; it never changes what it waits for.

use std::future::Future;
use std::time::{Duration, Instant};

/// Seconds between progress lines after the first.
const EVERY: u64 = 5;

/// Await `work`, printing "… {what} (N s)" after a second and then every few seconds.
pub(super) async fn while_waiting<F: Future>(what: &str, work: F) -> F::Output {
    let begun = Instant::now();
    tokio::pin!(work);
    let mut next = Duration::from_secs(1);
    loop {
        tokio::select! {
            out = &mut work => return out,
            () = tokio::time::sleep_until((begun + next).into()) => {
                println!("  … {what} ({} s)", begun.elapsed().as_secs());
                next = Duration::from_secs((next.as_secs() / EVERY + 1) * EVERY);
            }
        }
    }
}
