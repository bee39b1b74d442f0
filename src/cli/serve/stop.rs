//! How `serve` ends: SIGTERM or Ctrl-C, the agents going, and the graceful stop (calls in flight
//! drain, queued outcome rows are committed, then the background tasks end and the last
//! checkpoint is written).
//!
//! It must never start anything, nor end a task before the calls in flight have drained and the
//! ledger has been flushed.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::AbortHandle;

use super::{Desked, Listeners};
use airlock::gate::Gate;
use airlock::ledger::{Ledger, checkpoint};
use airlock::mcp::upstream::AgentServer;

/// SIGTERM or Ctrl-C (SIGINT), listened for from the moment it is installed.
pub(super) struct Shutdown {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Shutdown {
    pub(super) fn install() -> std::io::Result<Shutdown> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Shutdown {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Shutdown {})
    }

    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serve the agent on stdio until it goes or a signal comes. A signal ends serving at any time
/// (and still drains); stdio closing ends it unless HTTP agents are served too, which keep being
/// served until a signal.
pub(super) async fn wait_for_shutdown(
    agent: AgentServer,
    listeners: &Listeners,
    shutdown: &mut Shutdown,
) -> anyhow::Result<()> {
    let signalled = tokio::select! {
        served = agent.serve_stdio() => {
            match served {
                Err(e) if listeners.http.is_some() => tracing::info!("no agent on stdio ({e})"),
                other => other?,
            }
            false
        }
        _ = shutdown.wait() => true,
    };
    if listeners.http.is_some() && !signalled {
        tracing::info!("stdio agent gone; serving HTTP agents until SIGTERM or Ctrl-C");
        shutdown.wait().await;
    }
    Ok(())
}

/// Everything the graceful stop ends.
pub(super) struct Running {
    pub(super) gate: Arc<Gate>,
    pub(super) desk: Desked,
    pub(super) ledger: Arc<Ledger>,
    pub(super) listeners: Listeners,
    /// Background tasks, aborted in this order: the watchers, then the gate's chores.
    pub(super) tasks: [[AbortHandle; 2]; 2],
    pub(super) runtime_file: PathBuf,
    pub(super) checkpoints: checkpoint::Running,
    /// The channels' delivery tasks (an event in flight goes again after a restart).
    pub(super) channels: airlock::channel::dispatch::Running,
}

impl Running {
    /// Let the calls already running finish and record their outcome, then end the rest.
    pub(super) async fn stop(self) {
        self.listeners.stop.cancel();
        // The agent has gone. Let calls already running finish and record their outcome; pending
        // approvals stay pending in the ledger for the next start.
        self.gate.drain(std::time::Duration::from_secs(30)).await;
        self.desk
            .desk
            .drain(std::time::Duration::from_secs(30))
            .await;
        // Outcome rows answered before they were durable are queued: commit them before exit.
        if let Err(e) = self.ledger.flush().await {
            tracing::error!(error = %e, "cannot commit the last outcome rows; the next start records them as unknown");
        }
        self.listeners.web.abort();
        for task in self.tasks.iter().flatten() {
            task.abort();
        }
        self.channels.abort();
        if let Some(r) = &self.desk.replicas {
            r.abort();
        }
        if let Some(shared) = &self.desk.shared {
            let shared = shared.clone();
            let _ = tokio::task::spawn_blocking(move || shared.leave()).await;
        }
        let _ = std::fs::remove_file(&self.runtime_file);
        // The last checkpoint, with every row of this run, to the directory and the witness.
        self.checkpoints.stop().await;
    }
}
