//! The running gate's checkpoints: one when it starts, one at least every `every` while rows are
//! written, and one at every clean stop — each into the directory, then to the witness and the
//! auditor. A checkpoint signs the head as committed (durable), never rows still queued.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use super::witness::{Auditor, Witness, deliver};
use super::{SignedNote, default_origin, dir};
use crate::ledger::Ledger;
use crate::mail::Mailer;
use crate::signing::Signer;

/// How checkpoints are written and sent (`[gate] checkpoints`, `checkpoint_every`; `[ledger]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub dir: PathBuf,
    pub every: Duration,
    /// The origin line and key name; default [`default_origin`] of the signing key.
    pub origin: Option<String>,
    /// An http:// URL that receives each checkpoint.
    pub witness: Option<String>,
    /// An auditor's address that receives a checkpoint at most once per `mail_every`.
    pub mail_to: Option<String>,
    pub mail_every: Duration,
}

/// The checkpoint writer of a running gate.
pub struct Writer {
    ledger: Arc<Ledger>,
    signer: Signer,
    origin: String,
    dir: PathBuf,
    newest: watch::Sender<Option<SignedNote>>,
    auditor: Mutex<Option<Auditor>>,
    witness: Option<Witness>,
}

/// The writer's tasks: `stop` them at a clean stop.
pub struct Running {
    writer: Arc<Writer>,
    periodic: tokio::task::JoinHandle<()>,
    delivery: Option<tokio::task::JoinHandle<()>>,
}

impl Writer {
    /// Write a checkpoint now unless the newest one already has every committed row.
    async fn write_now(&self, stopping: bool) -> Option<SignedNote> {
        let (rows, head) = match self.ledger.head() {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the ledger head for a checkpoint");
                return None;
            }
        };
        if self
            .newest
            .borrow()
            .as_ref()
            .is_some_and(|n| n.size == rows)
        {
            return None;
        }
        let mut root = [0u8; 32];
        if hex::decode_to_slice(&head, &mut root).is_err() {
            tracing::error!(%head, "the ledger head is not a hash; no checkpoint");
            return None;
        }
        let note = match SignedNote::sign(&self.signer, &self.origin, rows, &root) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "cannot sign a checkpoint");
                return None;
            }
        };
        let now = crate::instant::now().timestamp();
        match dir::write(&self.dir, &note, now) {
            Ok(path) => {
                tracing::info!(rows, path = %path.display(), stopping, "checkpoint written");
            }
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "cannot write a checkpoint");
            }
        }
        self.ledger.checkpoints().written(&note);
        self.newest.send_replace(Some(note.clone()));
        if let Some(a) = self.auditor.lock().await.as_mut() {
            a.offer(&note, stopping).await;
        }
        Some(note)
    }
}

/// Start writing checkpoints (the first before this returns, so it exists before any agent is
/// served), and delivering them when a witness is set.
pub async fn start(
    ledger: Arc<Ledger>,
    signer: Signer,
    settings: &Settings,
    mailer: Option<Mailer>,
) -> Result<Running, String> {
    let origin = settings
        .origin
        .clone()
        .unwrap_or_else(|| default_origin(&signer.public()));
    let witness = settings.witness.as_deref().map(Witness::new).transpose()?;
    let auditor = match (&settings.mail_to, mailer) {
        (Some(to), Some(m)) => Some(Auditor::new(m, to, settings.mail_every)),
        _ => None,
    };
    let (newest, latest) = watch::channel(None);
    let delivery = witness
        .clone()
        .map(|w| tokio::spawn(deliver(w, latest, ledger.clone())));
    let writer = Arc::new(Writer {
        ledger,
        signer,
        origin,
        dir: settings.dir.clone(),
        newest,
        auditor: Mutex::new(auditor),
        witness,
    });
    writer.write_now(false).await;
    let every = settings.every;
    let w = writer.clone();
    let periodic = tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            w.write_now(false).await;
        }
    });
    Ok(Running {
        writer,
        periodic,
        delivery,
    })
}

impl Running {
    /// The origin the checkpoints name.
    pub fn origin(&self) -> &str {
        &self.writer.origin
    }

    /// A clean stop: the last checkpoint (every row committed), sent to the witness within a few
    /// seconds and mailed to the auditor.
    pub async fn stop(self) {
        self.periodic.abort();
        let _ = self.periodic.await;
        if let Some(d) = self.delivery {
            d.abort();
        }
        let last = match self.writer.write_now(true).await {
            Some(n) => Some(n),
            None => self.writer.newest.borrow().clone(),
        };
        let (Some(w), Some(note)) = (&self.writer.witness, last) else {
            return;
        };
        if self.writer.ledger.checkpoints().witnessed() == Some(note.size) {
            return;
        }
        match w.post_soon(&note, Duration::from_secs(10)).await {
            Ok(()) => {
                self.writer.ledger.checkpoints().delivered(note.size);
                tracing::info!(rows = note.size, "last checkpoint witnessed");
            }
            Err(e) => {
                tracing::error!(rows = note.size, error = %e, "the last checkpoint did not reach the witness; rows after the last witnessed checkpoint could be rolled back unnoticed")
            }
        }
    }
}
