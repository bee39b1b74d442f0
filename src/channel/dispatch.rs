//! Delivery: one task per channel follows the ledger from its cursor, turns each row that is
//! news for a role naming the channel into an event ([`super::event`]), posts it signed, and
//! records the attempt — `channel_delivered` (with the cursor), `channel_failed` (retried with
//! back-off, in order: a later event waits for an earlier one) or `channel_gave_up` (a refusal
//! that retrying cannot fix, a day of failures, or the live policy's role no longer naming the
//! channel). The I/O edge of channels: the HTTP client
//! (bounded timeouts, no redirects), the clock, the ledger. It never decides anything.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tokio::task::AbortHandle;

use super::event::{self, Event};
use super::{Channel, Status, chat, slack, teams};
use crate::approval::Approvals;
use crate::config::channel::ChannelKind;
use crate::ledger::row::{ChannelDelivered, ChannelFailed, ChannelGaveUp, Row};
use crate::ledger::{Change, Ledger, NewRow, Record};
use crate::live::Live;
use read::{Gathered, Looked, gather};

mod read;

/// How often a channel looks for new rows when it has caught up.
const POLL: Duration = Duration::from_millis(200);
/// Rows read in one go.
const READ_BATCH: u64 = 256;
/// The first retry's wait, doubled each attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// After this long failing, an event is given up on (a `channel_gave_up` row) and the next goes.
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Rows passed over without news after which the cursor is committed anyway (a restart then
/// reads less again).
const CURSOR_EVERY: u64 = 10_000;
/// Per attempt: connecting, and the whole request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(10);

/// The channels' tasks, ended when the gate stops.
pub struct Running(Vec<AbortHandle>);

impl Running {
    pub fn abort(&self) {
        self.0.iter().for_each(AbortHandle::abort);
    }
}

/// Start one delivery task per channel.
pub fn start(
    ledger: Arc<Ledger>,
    live: Arc<Live>,
    approvals: Arc<Approvals>,
    channels: Vec<Channel>,
    status: Arc<Status>,
) -> Running {
    let http: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let tasks = channels
        .into_iter()
        .map(|channel| {
            let follower = Follower {
                channel,
                ledger: ledger.clone(),
                live: live.clone(),
                approvals: approvals.clone(),
                status: status.clone(),
                http: http.clone(),
                roles: HashMap::new(),
            };
            tokio::spawn(follower.run()).abort_handle()
        })
        .collect();
    Running(tasks)
}

/// The delivery id of `channel`'s event from the row with `hash`: stable across attempts,
/// restarts and replicas (a receiver deduplicates by it).
pub fn delivery_id(channel: &str, hash: &str) -> String {
    let digest = Sha256::digest(format!("{channel}\n{hash}").as_bytes());
    format!("msg_{}", &hex::encode(digest)[..32])
}

/// One channel following the ledger.
struct Follower {
    channel: Channel,
    ledger: Arc<Ledger>,
    live: Arc<Live>,
    /// Mints the approvers' links a chat message's buttons carry.
    approvals: Arc<Approvals>,
    status: Arc<Status>,
    http: ureq::Agent,
    /// (approval, stage) → the role asked, from the envelopes read (decisions do not name it).
    roles: HashMap<(String, u32), String>,
}

/// Why an attempt failed, and whether another may succeed.
struct Failure {
    error: String,
    retry: bool,
}

impl Follower {
    async fn run(mut self) {
        let mut cursor = self.start_cursor().await;
        let mut committed = cursor;
        loop {
            let head = self.ledger.head().map(|(seq, _)| seq).unwrap_or(cursor);
            if cursor >= head {
                tokio::time::sleep(POLL).await;
                continue;
            }
            let upto = head.min(cursor + READ_BATCH);
            let read = self.read(cursor + 1, upto).await;
            for record in &read.records {
                if let Some(ev) = self.news(record) {
                    self.deliver(ev).await;
                    committed = record.seq;
                }
            }
            // only as far as rows were read: a row the ledger did not answer for is asked again
            cursor = read.through;
            if read.stopped.is_some() {
                tokio::time::sleep(FIRST_BACKOFF).await;
            }
            if cursor - committed >= CURSOR_EVERY {
                self.commit(Vec::new(), cursor).await;
                committed = cursor;
            }
        }
    }

    /// Where this channel left off; a new channel starts at the head (it announces what happens
    /// from now on), committed at once so a restart does not move it.
    async fn start_cursor(&self) -> u64 {
        loop {
            match self.ledger.channel_cursor(&self.channel.name) {
                Ok(Some(seq)) => return seq,
                Ok(None) => {
                    let head = self.ledger.head().map(|(seq, _)| seq).unwrap_or(0);
                    if self.commit(Vec::new(), head).await {
                        tracing::info!(channel = %self.channel.reference, from = head, "channel starts announcing approvals");
                        return head;
                    }
                }
                Err(e) => {
                    tracing::error!(channel = %self.channel.reference, error = %e, "cannot read the channel's cursor; trying again");
                }
            }
            tokio::time::sleep(FIRST_BACKOFF).await;
        }
    }

    /// Rows `from..=to` as far as the ledger answered, readable ones only (off the async
    /// threads: a shared ledger reads over the network).
    async fn read(&self, from: u64, to: u64) -> Gathered {
        let ledger = self.ledger.clone();
        let read = tokio::task::spawn_blocking(move || gather(from, to, |seq| ledger.record(seq)));
        let channel = &self.channel.reference;
        let g = read
            .await
            .unwrap_or_else(|e| Gathered::none(from, format!("the read stopped: {e}")));
        for (seq, why) in &g.skipped {
            tracing::warn!(channel = %channel, seq, why = %why, "a row passed over: its news, if any, is not announced");
        }
        if let Some(error) = &g.stopped {
            tracing::error!(channel = %channel, from = g.through + 1, error = %error, "cannot read the ledger; trying again");
        }
        g
    }

    /// The event `record` is for this channel, if any role naming it is told.
    fn news(&mut self, record: &Record) -> Option<Event> {
        let (setup, _) = self.live.snapshot();
        let look = Looked {
            ledger: &self.ledger,
            roles: &self.roles,
            review_role: setup.policy.review_role.clone(),
        };
        let ev = event::of(record, &look)?;
        if ev.kind == "approval.opened" {
            if self.roles.len() > 100_000 {
                self.roles.clear();
            }
            let stage = ev.data["stage"].as_u64().unwrap_or(0) as u32;
            let id = ev.data["approval_id"].as_str().unwrap_or("").to_string();
            let role = ev.roles.first().cloned().unwrap_or_default();
            self.roles.insert((id, stage), role);
        }
        self.told(&ev.roles).then_some(ev)
    }

    /// Whether the live policy's `roles` name this channel (any of them).
    fn told(&self, roles: &[String]) -> bool {
        let (setup, _) = self.live.snapshot();
        roles.iter().any(|role| {
            (setup.policy.roles.get(role))
                .is_some_and(|r| r.channels.contains(&self.channel.reference))
        })
    }

    /// Post `ev` until it is taken or given up on, recording each attempt.
    async fn deliver(&self, ev: Event) {
        let reference = self.channel.reference.clone();
        let delivery = delivery_id(&reference, &ev.hash);
        let body = self.body(&ev);
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            if attempt > 0 && !self.told(&ev.roles) {
                // a policy edit took the channel from the roles while the event waited
                self.status.recovered(&reference);
                let error = format!(
                    "no role of {} names this channel any more",
                    ev.roles.join(", ")
                );
                self.gave_up(&ev, &delivery, attempt, error).await;
                return;
            }
            attempt += 1;
            let failure = match self.post(&delivery, &body).await {
                Ok(status) => {
                    self.delivered(&ev, &delivery, attempt, status).await;
                    return;
                }
                Err(f) => f,
            };
            let now = crate::instant::now();
            self.status
                .failed(&reference, &crate::instant::rfc3339(&now), &failure.error);
            if !failure.retry || started.elapsed() >= GIVE_UP_AFTER {
                self.gave_up(&ev, &delivery, attempt, failure.error).await;
                return;
            }
            let wait = backoff(attempt);
            let next_at = now + chrono::Duration::from_std(wait).unwrap_or_default();
            tracing::warn!(channel = %reference, delivery = %delivery, error = %failure.error, retry_in = ?wait, "channel attempt failed");
            let row = Row::ChannelFailed(ChannelFailed {
                channel: reference.clone(),
                delivery: delivery.clone(),
                event: ev.kind.to_string(),
                source_seq: ev.seq,
                attempt,
                error: failure.error,
                next_at: crate::instant::rfc3339(&next_at),
            });
            // a failed attempt does not move the cursor: after a restart the event goes again
            self.append(NewRow::now(&ev.call_id, row)).await;
            tokio::time::sleep(wait).await;
        }
    }

    /// What is posted for `ev`: the event itself to a webhook, a message to a chat.
    fn body(&self, ev: &Event) -> Vec<u8> {
        let message = || {
            let d = &ev.data;
            let (id, hash) = (
                d["approval_id"].as_str().unwrap_or(""),
                d["envelope_hash"].as_str().unwrap_or(""),
            );
            let stage = d["stage"].as_u64().unwrap_or(0) as u32;
            let links: Vec<String> = (ev.approvers.iter().enumerate())
                .map(|(slot, who)| self.approvals.link_to(id, stage, slot, who, hash))
                .collect();
            chat::message(ev, &links)
        };
        let payload = match self.channel.kind {
            ChannelKind::Webhook => ev.body(),
            ChannelKind::Slack => slack::payload(&message()),
            ChannelKind::Teams => teams::payload(&message()),
        };
        payload.to_string().into_bytes()
    }

    /// Record that `ev` went through at `attempt`, moving the cursor past it.
    async fn delivered(&self, ev: &Event, delivery: &str, attempt: u32, status: u16) {
        self.status.recovered(&self.channel.reference);
        let row = Row::ChannelDelivered(ChannelDelivered {
            channel: self.channel.reference.clone(),
            delivery: delivery.to_string(),
            event: ev.kind.to_string(),
            source_seq: ev.seq,
            attempt,
            status,
        });
        self.commit(vec![NewRow::now(&ev.call_id, row)], ev.seq)
            .await;
    }

    /// Record that `ev` is given up on after `attempts`, moving the cursor past it.
    async fn gave_up(&self, ev: &Event, delivery: &str, attempts: u32, error: String) {
        tracing::error!(channel = %self.channel.reference, delivery = %delivery, error = %error, "channel event given up on");
        let row = Row::ChannelGaveUp(ChannelGaveUp {
            channel: self.channel.reference.clone(),
            delivery: delivery.to_string(),
            event: ev.kind.to_string(),
            source_seq: ev.seq,
            attempts,
            error,
        });
        self.commit(vec![NewRow::now(&ev.call_id, row)], ev.seq)
            .await;
    }

    /// One POST; a webhook's signed with a fresh timestamp per attempt (receivers refuse stale
    /// ones).
    async fn post(&self, delivery: &str, body: &[u8]) -> Result<u16, Failure> {
        let (http, url, body) = (self.http.clone(), self.channel.url.clone(), body.to_vec());
        let timestamp = crate::instant::now().timestamp();
        let signed = (self.channel.secret.as_ref()).map(|secret| {
            (
                delivery.to_string(),
                timestamp.to_string(),
                secret.sign(delivery, timestamp, &body),
            )
        });
        let sent = tokio::task::spawn_blocking(move || {
            let mut request = http.post(&url).header("content-type", "application/json");
            if let Some((id, at, signature)) = &signed {
                request = request
                    .header("webhook-id", id)
                    .header("webhook-timestamp", at)
                    .header("webhook-signature", signature);
            }
            request
                .send(&body[..])
                .map(|r| r.status().as_u16())
                // never the URL: a chat's URL is a credential
                .map_err(|e| format!("the POST failed: {e}"))
        })
        .await;
        let status = match sent {
            Ok(Ok(status)) => status,
            Ok(Err(error)) => return Err(Failure { error, retry: true }),
            Err(e) => {
                return Err(Failure {
                    error: format!("the attempt stopped: {e}"),
                    retry: true,
                });
            }
        };
        match status {
            200..=299 => Ok(status),
            408 | 429 | 500..=599 => Err(Failure {
                error: format!("answered {status}"),
                retry: true,
            }),
            _ => Err(Failure {
                error: format!("answered {status}, which retrying cannot change"),
                retry: false,
            }),
        }
    }

    /// Commit `rows` with the cursor at `seq`; false if it could not be recorded.
    async fn commit(&self, rows: Vec<NewRow>, seq: u64) -> bool {
        let change = Change {
            rows,
            channel_cursors: vec![(self.channel.name.clone(), seq)],
            ..Change::default()
        };
        match self.ledger.commit(change).await {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(channel = %self.channel.reference, error = %e, "cannot record the channel's delivery; after a restart the event may go again");
                false
            }
        }
    }

    async fn append(&self, row: NewRow) {
        if let Err(e) = self.ledger.append(vec![row]).await {
            tracing::error!(channel = %self.channel.reference, error = %e, "cannot record a failed channel attempt");
        }
    }
}

/// The wait after failed attempt `attempt` (1-based): 1 s, 2 s, 4 s, … up to 5 minutes.
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{backoff, delivery_id};

    #[test]
    fn retries_back_off_to_five_minutes_and_a_delivery_keeps_its_id() {
        let waits: Vec<u64> = (1..=12).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
        let id = delivery_id("webhook:ops", "ab12");
        assert_eq!(id, delivery_id("webhook:ops", "ab12"));
        assert_ne!(id, delivery_id("webhook:other", "ab12"));
        assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
    }
}
