//! `serve`'s channels, started: each `[[channel]]` with its URL and secret read from the
//! environment now (a missing one stops the start, as `check` says), one delivery task each, and
//! their health for `/readyz`.
//!
//! It must never decide anything nor post itself: `airlock::channel::dispatch` does.

use std::sync::Arc;

use super::Opened;
use super::desk::Desked;
use airlock::channel;
use airlock::config::Config;

/// Start announcing approvals on the configured channels (their secrets read now).
pub(super) fn start_channels(
    cfg: &Config,
    opened: &Opened,
    desk: &Desked,
) -> anyhow::Result<(channel::dispatch::Running, Arc<channel::Status>)> {
    let channels = channel::from_config(&cfg.channels).map_err(anyhow::Error::msg)?;
    let status = channel::Status::new();
    for c in &channels {
        tracing::info!(channel = %c.reference, "approvals announced on a channel");
    }
    let running = channel::dispatch::start(
        opened.ledger.clone(),
        desk.live.clone(),
        desk.approvals.clone(),
        channels,
        status.clone(),
    );
    Ok((running, status))
}
