//! Paused autopilot, from the people's side: the mail that tells a role a scope paused, its
//! resume link, and the resume itself.
//!
//! Owns the pause mail (a personal link for each person who may resume it) and the resume
//! transaction (the pause and the scope's counters removed, with an `autopilot_resumed` row, in
//! one commit). It must never resume a scope for anyone the [`crate::authority`] rule has not
//! authorized, and never change a counter outside the [`Meter`]'s lock.

use std::sync::Arc;

use serde_json::json;

use super::Pause;
use super::meter::Meter;
use chrono::{DateTime, Utc};

use crate::approval::link::LinkKey;
use crate::authority::{self, Decider, Matter};
use crate::ledger::Row;
use crate::ledger::row::{self, MailAbout};
use crate::ledger::{Change, Ledger, LedgerError, NewRow};
use crate::live::Live;
use crate::mail::{Mail, Mailer, delivered};
use crate::reviewer::{LINK_LIFETIME, Reviewer};

#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("autopilot is not paused for `{0}` (or was resumed and paused again since you looked)")]
    NotPaused(String),
    #[error("the ledger could not record it, so nothing changed: {0}")]
    Ledger(#[from] LedgerError),
}

pub struct Pauses {
    meter: Arc<Meter>,
    ledger: Arc<Ledger>,
    live: Arc<Live>,
    mailer: Mailer,
    key: LinkKey,
    base_url: String,
}

impl Pauses {
    pub fn new(
        meter: Arc<Meter>,
        ledger: Arc<Ledger>,
        live: Arc<Live>,
        mailer: Mailer,
        key: LinkKey,
        base_url: String,
    ) -> Pauses {
        Pauses {
            meter,
            ledger,
            live,
            mailer,
            key,
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    pub fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }

    /// Every paused scope.
    pub fn list(&self) -> Vec<Pause> {
        self.meter.lock().pauses()
    }

    /// The pause started by call `id`, if it is still in force.
    pub fn find(&self, id: &str) -> Option<Pause> {
        self.list().into_iter().find(|p| p.call_id == id)
    }

    /// The pause call `id` started, and who presents `token` (a personal link of this gate's,
    /// not expired at `now`), or why the page cannot be shown.
    pub fn verify_link(
        &self,
        id: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Pause, Reviewer), String> {
        let r = Reviewer::from_token(&self.key, token, now).map_err(|e| e.to_string())?;
        if r.pause.as_deref().is_some_and(|p| p != id) {
            return Err(
                "this link is for another pause: open the link from that pause's mail".into(),
            );
        }
        let p = self
            .find(id)
            .ok_or("autopilot is not paused for this link's scope any more (it was resumed)")?;
        Ok((p, r))
    }

    /// `email`'s personal link to the page of pause `p`, valid for 24 hours from `now`.
    pub fn link(&self, p: &Pause, email: &str, now: DateTime<Utc>) -> String {
        let token = Reviewer::new(email, "link", None, now, LINK_LIFETIME)
            .for_pause(&p.call_id)
            .token(&self.key);
        format!("{}/p/{}/{token}", self.base_url, p.call_id)
    }

    /// Mail everyone who may resume the pause (the limit's role, else the review role) their
    /// own link, and record each delivery.
    pub async fn notify(&self, p: &Pause) {
        let setup = self.live.setup();
        let matter = Matter::Pause {
            role: p.notify.as_deref(),
            requester: None,
        };
        let to_all = authority::deciders(&matter, &setup.policy, &setup.agent_ids());
        if to_all.is_empty() {
            tracing::warn!(scope = %p.scope, "autopilot paused, and no role may resume it: name a `notify` role on the limit or a [review] role");
        }
        let now = crate::instant::now();
        for to in to_all {
            let link = self.link(p, &to, now);
            let mail = Mail {
                to: to.clone(),
                subject: format!("[Airlock] Autopilot paused for {}", p.scope),
                body: format!(
                    "Airlock paused autopilot for `{}`: the rate limit {} was reached.\n\nUntil someone resumes it, calls in this scope are quarantined (held for review), not run.\nThe call that reached the limit is held as {}.\n\nSee the pause and resume autopilot here (this link is yours alone, for 24 hours; do not forward it):\n\n{link}\n",
                    p.scope, p.limit, p.call_id
                ),
                key: format!("pause-{}-{}", p.call_id, to),
            };
            let sent = self.mailer.send(&mail).await;
            if let Err(e) = &sent {
                tracing::error!(scope = %p.scope, %to, error = %e, "pause notice not sent");
            }
            let about = MailAbout::Pause {
                pause: p.scope.clone(),
            };
            let row = Row::mail(about, &to, delivered(&sent));
            if let Err(e) = self.ledger.append(vec![NewRow::now(&p.call_id, row)]).await {
                tracing::error!(error = %e, "cannot record a pause notice");
            }
        }
    }

    /// Resume autopilot for `scope` (if `expected` names a call, only the pause that call
    /// started): its counters start afresh. The scope stays paused until the resume is durable,
    /// so no call runs on the strength of a resume the ledger does not hold.
    pub async fn resume(
        &self,
        scope: &str,
        expected: Option<&str>,
        by: &Decider,
    ) -> Result<Pause, PauseError> {
        let (pause, pending) = {
            let state = self.meter.lock();
            let (pause, entries) = state
                .resume_entries(scope, expected)
                .ok_or_else(|| PauseError::NotPaused(scope.to_string()))?;
            let pending = self.ledger.submit(Change {
                rows: vec![NewRow::now(
                    &pause.call_id,
                    Row::AutopilotResumed(row::AutopilotResumed {
                        scope: scope.to_string(),
                        pause: json!(pause),
                        by: by.record(),
                    }),
                )],
                drift: entries,
                ..Change::default()
            })?;
            (pause, pending)
        };
        pending.await?;
        self.meter.lock().resumed(scope);
        tracing::info!(%scope, by = %by.who, "autopilot resumed");
        Ok(pause)
    }
}
