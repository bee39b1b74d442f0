//! Telling reviewers that a call is held: a mail to each person who may release it (the roles
//! the call names, else the policy's `[review] role`), with their own review link, and a
//! `mail_sent` / `mail_failed` row for each.
//!
//! At most one notice per tool per [`QUIET`]: an agent calling an unknown tool in a loop must
//! not flood the reviewers' mailboxes (the review page lists every held call). It must never
//! put anything but a personal, expiring link in a mail, and never decide anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

use super::Held;
use crate::approval::link::LinkKey;
use crate::authority::{self, Matter};
use crate::ledger::Row;
use crate::ledger::row::MailAbout;
use crate::ledger::{Ledger, NewRow};
use crate::live::Live;
use crate::mail::{Mail, Mailer, delivered};
use crate::reviewer::{LINK_LIFETIME, Reviewer};

/// The quiet time between two notices about calls of one tool.
pub const QUIET: TimeDelta = TimeDelta::minutes(10);

/// What sends held-call notices.
pub struct Notices {
    live: Arc<Live>,
    ledger: Arc<Ledger>,
    mailer: Mailer,
    key: LinkKey,
    base_url: String,
    /// (server, tool) → when the last notice went out.
    last: Mutex<HashMap<(String, String), DateTime<Utc>>>,
}

impl Notices {
    pub fn new(
        live: Arc<Live>,
        ledger: Arc<Ledger>,
        mailer: Mailer,
        key: LinkKey,
        base_url: String,
    ) -> Notices {
        Notices {
            live,
            ledger,
            mailer,
            key,
            base_url: base_url.trim_end_matches('/').to_string(),
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a notice about `h`'s tool is due at `now` (and, if so, marks it sent).
    pub(super) fn due(&self, h: &Held, now: DateTime<Utc>) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let key = (h.server.clone(), h.tool_name.clone());
        match last.get(&key) {
            Some(t) if now - *t < QUIET => false,
            _ => {
                last.insert(key, now);
                true
            }
        }
    }

    /// Mail everyone who may release `h` their own review link (when [`Notices::due`] said so).
    pub async fn held(&self, h: &Held, now: DateTime<Utc>) {
        let setup = self.live.setup();
        let matter = Matter::Held {
            roles: &h.roles,
            requester: &h.actor,
        };
        let to_all = authority::deciders(&matter, &setup.policy, &setup.agent_ids());
        if to_all.is_empty() {
            tracing::warn!(call_id = %h.id, "a call is held, and no person may release it: check the roles it names and [review] role");
        }
        for to in to_all {
            let token = Reviewer::new(&to, "link", None, now, LINK_LIFETIME).token(&self.key);
            let mail = Mail {
                to: to.clone(),
                subject: format!(
                    "[Airlock] Held for review: {} by {}",
                    h.tool,
                    crate::shown::break_links(&crate::shown::line(&h.actor))
                ),
                body: body(h, &format!("{}/review/{token}", self.base_url)),
                key: format!("held-{}-{}", h.id, to),
            };
            let sent = self.mailer.send(&mail).await;
            if let Err(e) = &sent {
                tracing::error!(call_id = %h.id, %to, error = %e, "held-call notice not sent");
            }
            let about = MailAbout::Held { held: h.id.clone() };
            let row = Row::mail(about, &to, delivered(&sent));
            if let Err(e) = self.ledger.append(vec![NewRow::now(&h.id, row)]).await {
                tracing::error!(error = %e, "cannot record a held-call notice");
            }
        }
    }
}

/// The notice: Airlock's lines, then what the agent wrote (the reason quotes its values) marked as
/// the agent's, escaped and with links broken, one line each behind `| `, then the link.
fn body(h: &Held, link: &str) -> String {
    let mut flags = crate::shown::request::text_flags("the reason", &h.reason);
    flags.extend(crate::shown::request::argument_flags(
        &serde_json::Value::Object(h.arguments.clone()),
    ));
    let warning = crate::shown::warning(&flags)
        .map(|w| format!("WARNING: {w}\n\n"))
        .unwrap_or_default();
    let agent = |s: &str| {
        crate::shown::cut_for_mail(
            crate::shown::break_links(&crate::shown::line(s)),
            "the review page",
        )
    };
    let args: Vec<String> = h
        .arguments
        .iter()
        .map(|(k, v)| {
            let v = crate::redact::for_people(v);
            format!("| {}: {}", agent(k), agent(&v.to_string()))
        })
        .collect();
    format!(
        "{warning}Airlock held a call of `{}` (server `{}`) by {}; it has not run ({}).\n\nWritten by the agent ({}), not by Airlock:\n| reason: {}\n{}\nEnd of the agent's text.\n\nRelease it (it then runs once) or reject it on the review page; further calls of this tool held in the next {} minutes are listed there without another mail. This link is yours alone, for 24 hours; do not forward it:\n\n{link}\n",
        h.tool,
        h.server,
        agent(&h.actor),
        h.codes.join(", "),
        agent(&h.actor),
        agent(&h.reason),
        args.join("\n"),
        QUIET.num_minutes(),
    )
}

#[cfg(test)]
mod tests {
    use super::{Held, body};
    use crate::quarantine::HeldStatus;

    #[test]
    fn an_actor_that_looks_like_a_link_is_shown_as_the_agents_words_with_the_link_broken() {
        let h = Held {
            id: "c-1".into(),
            tool: "echo".into(),
            server: "shop".into(),
            tool_name: "echo".into(),
            arguments: serde_json::Map::new(),
            meta: None,
            actor: "oauth:https://evil.example/approve-all".into(),
            reason: "no manifest".into(),
            codes: vec!["unknown_tool".into()],
            policy_version: "v1".into(),
            held_at: chrono::DateTime::UNIX_EPOCH,
            status: HeldStatus::Held,
            roles: vec![],
            definition: None,
            sealed: None,
        };
        let text = body(&h, "http://127.0.0.1:1/review/t");
        assert!(!text.contains("https://evil"), "{text}");
        assert!(
            text.contains("oauth:https[:]//evil.example/approve-all"),
            "{text}"
        );
    }
}
