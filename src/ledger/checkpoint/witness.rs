//! Checkpoints off the machine: each signed note is POSTed to the `[ledger] witness` URL
//! (bounded timeouts, retried with back-off until it is taken or a newer one replaces it), and
//! mailed to the `[ledger] mail_to` auditor at most once per `mail_every`. A witness that keeps
//! failing shows in `/readyz` and the log; it never stops the gate from recording calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::SignedNote;
use crate::ledger::Ledger;
use crate::mail::{Mail, Mailer};

/// Waits between attempts at one checkpoint; the last repeats.
const BACKOFF: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(15),
    Duration::from_secs(60),
];
/// Failed attempts after which `/readyz` reports the witness.
pub const REPORT_AFTER: u32 = 3;

/// An HTTP endpoint that keeps checkpoints.
#[derive(Clone)]
pub struct Witness {
    url: String,
    client: reqwest::Client,
}

impl Witness {
    pub fn new(url: &str) -> Result<Witness, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("checkpoint witness client: {e}"))?;
        Ok(Witness {
            url: url.to_string(),
            client,
        })
    }

    /// One attempt: POST the note; any 2xx answer means the witness has it.
    pub async fn post(&self, note: &SignedNote) -> Result<(), String> {
        let answer = self
            .client
            .post(&self.url)
            .header("content-type", "text/plain; charset=utf-8")
            .body(note.bytes.clone())
            .send()
            .await
            .map_err(|e| format!("POST {}: {e}", self.url))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {}: answered {status}", self.url))
        }
    }

    /// A few quick attempts within about `budget` (at a clean stop).
    pub async fn post_soon(&self, note: &SignedNote, budget: Duration) -> Result<(), String> {
        let until = Instant::now() + budget;
        let mut last = String::new();
        for wait in BACKOFF.iter().take(3) {
            match tokio::time::timeout_at(until.into(), self.post(note)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = e,
                Err(_) => return Err(format!("POST {}: no answer in time", self.url)),
            }
            if Instant::now() + *wait >= until {
                break;
            }
            tokio::time::sleep(*wait).await;
        }
        Err(last)
    }
}

/// Deliver the newest checkpoint in `latest` to `witness`, retrying each until it is taken or
/// a newer one replaces it; the ledger's checkpoint status tells `/readyz`. Ends when the
/// sender is dropped.
pub async fn deliver(
    witness: Witness,
    mut latest: watch::Receiver<Option<SignedNote>>,
    ledger: Arc<Ledger>,
) {
    let mut delivered: Option<u64> = None;
    let mut failed = 0u32;
    loop {
        let note = latest.borrow_and_update().clone();
        if let Some(note) = note.filter(|n| delivered != Some(n.size)) {
            match witness.post(&note).await {
                Ok(()) => {
                    if failed > 0 {
                        tracing::info!(rows = note.size, "checkpoint witness reached again");
                    }
                    failed = 0;
                    delivered = Some(note.size);
                    ledger.checkpoints().delivered(note.size);
                    continue;
                }
                Err(e) => {
                    failed += 1;
                    if failed >= REPORT_AFTER {
                        ledger.checkpoints().failed(note.size, failed);
                        tracing::error!(rows = note.size, attempts = failed, error = %e, "the checkpoint witness has not received the newest checkpoint; rows after the last witnessed one could be rolled back unnoticed");
                    } else {
                        tracing::warn!(rows = note.size, attempt = failed, error = %e, "checkpoint witness: not delivered; retrying");
                    }
                    let wait = BACKOFF[(failed as usize - 1).min(BACKOFF.len() - 1)];
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        changed = latest.changed() => if changed.is_err() { return },
                    }
                    continue;
                }
            }
        }
        if latest.changed().await.is_err() {
            return;
        }
    }
}

/// Mail to the auditor's address: the newest checkpoint at most once per `every`.
pub struct Auditor {
    mailer: Mailer,
    to: String,
    every: Duration,
    last: Option<(Instant, u64)>,
}

impl Auditor {
    pub fn new(mailer: Mailer, to: &str, every: Duration) -> Auditor {
        Auditor {
            mailer,
            to: to.to_string(),
            every,
            last: None,
        }
    }

    /// Mail `note` if it is new and the last mail is `every` old (or `now_anyway`: a clean stop).
    pub async fn offer(&mut self, note: &SignedNote, now_anyway: bool) {
        let now = Instant::now();
        let due = match self.last {
            None => true,
            Some((_, size)) if size == note.size => false,
            Some((at, _)) => now_anyway || now.duration_since(at) >= self.every,
        };
        if !due {
            return;
        }
        match self.mailer.send(&mail(&self.to, note)).await {
            Ok(_) => self.last = Some((now, note.size)),
            Err(e) => {
                tracing::error!(to = %self.to, rows = note.size, error = %e, "cannot mail the checkpoint to the auditor; the next one is tried")
            }
        }
    }
}

fn mail(to: &str, note: &SignedNote) -> Mail {
    Mail {
        to: to.to_string(),
        subject: format!(
            "[Airlock] Ledger checkpoint: {} rows of {}",
            note.size, note.origin
        ),
        body: format!(
            "A signed checkpoint of the Airlock ledger {origin}: after {size} rows, the hash of row {size} was {hex}.\n\n\
             Keep this mail. A ledger found later with fewer rows, or with another row {size}, was rolled back or rewritten.\n\
             To check: save the note below (from its first line to the signature line) as a file and run\n\
             `airlock ledger verify --public-key KEY --checkpoint FILE`.\n\n{text}",
            origin = note.origin,
            size = note.size,
            hex = note.root_hex(),
            text = String::from_utf8_lossy(&note.bytes),
        ),
        key: format!("checkpoint-{}", note.size),
    }
}
