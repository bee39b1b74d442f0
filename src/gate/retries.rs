//! The gate's side of retries: whether a call repeats one the agent already made
//! ([`crate::retry`]), looked up before it is decided and applied once its decision asks for the
//! same kind of item. A repeat attaches to the approval or held call still open, or gets the
//! settled outcome replayed; either way it is recorded (its `proposal`, `verdict` and a `retry`
//! row) and nothing new runs, is asked or is mailed. A new call carries its key on to be stored
//! with the approval or held call it opens. It must never let a repeat run a tool or open an
//! item, nor answer a repeat before its rows are durable.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Gate, GateCall, Reply};
use crate::config::Setup;
use crate::desk::Phase;
use crate::ledger::{NewRow, Row, row};
use crate::mcp::downstream::ToolReply;
use crate::policy::RETRY_WINDOW_DEFAULT;
use crate::retry::{self, Asked, Asks, Entry, Fresh, Item, Retry, Stands};

/// A call about to be decided, as retries see it.
pub(super) struct Retrying<'a> {
    pub setup: &'a Setup,
    pub call: &'a GateCall,
    pub route: Option<&'a (String, String)>,
    /// Its class, if a manifest describes its tool (the class's `retry_window` applies).
    pub class: Option<&'a str>,
    pub actor: &'a str,
    pub call_id: &'a str,
    pub arguments_sha256: &'a str,
    pub proposal: &'a row::Proposal,
    pub now: DateTime<Utc>,
}

impl<'a> Retrying<'a> {
    /// A call as it came in, as retries see it.
    pub fn of(
        setup: &'a Setup,
        inc: &'a super::plan::Incoming<'a>,
        recorded: &'a super::recorded::Recorded,
    ) -> Retrying<'a> {
        Retrying {
            setup,
            call: inc.call,
            route: inc.route.as_ref(),
            class: inc.manifest.map(|m| m.class.as_str()),
            actor: inc.actor,
            call_id: inc.call_id,
            arguments_sha256: &recorded.arguments_sha256,
            proposal: &recorded.proposal,
            now: inc.now,
        }
    }
}

/// What retries make of a call before it is decided: its key, to store with what it opens, and
/// the earlier call's item it would repeat, if any.
pub(super) struct Retried {
    pub fresh: Option<Fresh>,
    found: Option<(Entry, Retry)>,
}

/// The earlier call a repeat is answered by.
#[derive(Debug)]
pub(super) struct Repeat {
    item: Item,
    /// An autopilot call's recorded result.
    result: Option<Value>,
}

impl Retried {
    /// What retries found, as a test states it.
    #[cfg(test)]
    pub fn found(fresh: Option<Fresh>, found: Option<(Entry, Retry)>) -> Retried {
        Retried { fresh, found }
    }

    /// The item this call repeats, given what its own decision asks for, and the `retry` row
    /// that records it; `None`: a call of its own.
    pub fn repeat(
        &self,
        asks: Asks,
        call_id: &str,
        now: DateTime<Utc>,
    ) -> Option<(Repeat, NewRow)> {
        let (entry, retry) = self.found.as_ref()?;
        let (action, item) = match retry.clone().given(asks) {
            Retry::Attach(item) => (row::RetryAction::Attach, item),
            Retry::Replay(item) => (row::RetryAction::Replay, item),
            _ => return None,
        };
        let row = NewRow::at(
            call_id,
            now,
            Row::Retry(row::Retry {
                action,
                of: Some(json!(item)),
                of_call_id: Some(entry.call_id.clone()),
                reason: None,
            }),
        );
        let result = entry.result.clone();
        Some((Repeat { item, result }, row))
    }
}

impl Gate {
    /// What retries make of this call: refused here (an idempotency key that is malformed or
    /// names another call, recorded), or its key and the earlier item it may repeat.
    pub(super) fn retried(&self, r: Retrying<'_>) -> Result<Retried, Box<Reply>> {
        let key = retry::idempotency_key(r.call.meta.as_ref())
            .map_err(|e| Box::new(self.refuse_retry(&r, None, e.to_string())))?;
        let Some((server, tool)) = r.route else {
            return Ok(Retried {
                fresh: None,
                found: None,
            });
        };
        let asked = Asked {
            actor: r.actor,
            server,
            tool,
            arguments_sha256: r.arguments_sha256,
            idempotency_key: key,
        };
        let stored = self
            .ledger
            .call_key(&asked.key())
            .map_err(|e| Box::new(self.refuse_retry(&r, None, ledger_message(&e))))?;
        let entry = stored
            .as_deref()
            .and_then(|b| serde_json::from_slice::<Entry>(b).ok());
        let window = r
            .class
            .and_then(|c| r.setup.policy.classes.get(c))
            .map_or(RETRY_WINDOW_DEFAULT, |rule| rule.retry_window);
        let stands = match &entry {
            Some(e) => self.stands(e),
            None => Stands::Gone,
        };
        let mut fresh = Fresh::of(&asked, stored);
        if let Some(plain) = Fresh::plain_key(&asked) {
            let unused = self
                .ledger
                .call_key(&plain)
                .map_err(|e| Box::new(self.refuse_retry(&r, None, ledger_message(&e))))?
                .is_none();
            if unused {
                fresh = fresh.plain_unused(plain);
            }
        }
        let fresh = Some(fresh);
        match retry::rule(&asked, entry.as_ref(), stands, r.now, window) {
            Retry::Refuse(why) => Err(Box::new(self.refuse_retry(&r, entry.as_ref(), why))),
            Retry::New => Ok(Retried { fresh, found: None }),
            repeat => Ok(Retried {
                fresh,
                found: entry.map(|e| (e, repeat)),
            }),
        }
    }

    /// Where the item an entry names stands now, as the desk has it (an autopilot call: as its
    /// entry says — without a result it is running, or it was when Airlock stopped: open until a
    /// result, or "unknown" at the next start, is kept under its key, whatever the window).
    fn stands(&self, entry: &Entry) -> Stands {
        use crate::approval::state::{Outcome, Status};
        use crate::quarantine::HeldStatus;
        match &entry.item {
            Item::Call(_) => match &entry.result {
                Some(_) => Stands::Settled { replay: true },
                None => Stands::Open,
            },
            Item::Approval(id) => match self.approvals.load(id).map(|a| a.status) {
                None => Stands::Gone,
                Some(Status::Done(Outcome::Expired | Outcome::Voided { .. })) => {
                    Stands::Settled { replay: false }
                }
                Some(s) if s.phase() == Phase::Done => Stands::Settled { replay: true },
                Some(_) => Stands::Open,
            },
            Item::Held(id) => match self.quarantine.get(id).map(|h| h.status) {
                None => Stands::Gone,
                Some(HeldStatus::Voided { .. }) => Stands::Settled { replay: false },
                Some(s) if s.phase() == Phase::Done => Stands::Settled { replay: true },
                Some(_) => Stands::Open,
            },
        }
    }

    /// Record a repeat (its proposal, verdict and `retry` row) and answer it with the earlier
    /// item's own answer: nothing runs, nobody is asked or mailed.
    pub(super) async fn answer_repeat(
        &self,
        call_id: &str,
        rows: Vec<NewRow>,
        repeat: Repeat,
    ) -> Reply {
        let refuse = |message: String| not_run(call_id, message);
        if let Err(e) = self.ledger.append(rows).await {
            return refuse(ledger_message(&e));
        }
        match repeat.item {
            Item::Call(id) => match repeat.result.and_then(ToolReply::recorded) {
                Some(reply) => Reply::Forwarded(reply),
                None => refuse(format!(
                    "call {id} with this idempotency key is running, or its outcome is unknown (Airlock stopped while it ran); it is not run again. Ask again shortly for its result, or send a new key for a new call."
                )),
            },
            Item::Approval(id) => {
                let role = self.approvals.get(&id).await.map(|a| a.envelope.role);
                match (self.approvals.subscribe(&id).await, role) {
                    (Some(status), Some(role)) => Reply::Suspended {
                        approval_id: id,
                        role,
                        status,
                    },
                    _ => refuse(format!("approval {id} can no longer be read; ask again")),
                }
            }
            Item::Held(id) => match self.quarantine.get(&id) {
                Some(h) => Reply::Held(Box::new(h)),
                None => refuse(format!("held call {id} can no longer be read; ask again")),
            },
        }
    }

    /// An autopilot call with an idempotency key ran (or could not): keep what the agent got
    /// under its key, durably before the agent gets it, so a repeat is given it again. If it
    /// cannot be kept, a repeat is refused as running or unknown (never run again).
    pub(super) async fn keep_result(
        &self,
        fresh: &Fresh,
        call_id: &str,
        at: DateTime<Utc>,
        reply: &Reply,
    ) {
        let result = match reply {
            Reply::Forwarded(r) => kept(&r.json),
            Reply::Refused { message, .. } => error_result(message),
            _ => return,
        };
        let kept = match fresh.with_result(call_id, at, result) {
            Ok(state) => {
                self.ledger
                    .commit(crate::ledger::Change {
                        items: vec![state],
                        ..Default::default()
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = kept {
            tracing::error!(%call_id, error = %e, "cannot keep the result of a call with an idempotency key; a repeat is refused, not run");
        }
    }

    /// Forget the call keys whose window has passed (the longest `retry_window` of the policy in
    /// force) and whose item is not open: their entries, and any result kept, go. How many.
    pub async fn forget_expired(
        &self,
        now: DateTime<Utc>,
    ) -> Result<usize, crate::ledger::LedgerError> {
        let setup = self.live.setup();
        let window = setup
            .policy
            .classes
            .values()
            .map(|c| c.retry_window)
            .max()
            .unwrap_or(RETRY_WINDOW_DEFAULT)
            .max(RETRY_WINDOW_DEFAULT);
        let forget: Vec<String> = self
            .ledger
            .call_keys()?
            .into_iter()
            .filter(|(_, bytes)| {
                serde_json::from_slice::<Entry>(bytes)
                    .is_ok_and(|e| retry::forgettable(&e, self.stands(&e), now, window))
            })
            .map(|(key, _)| key)
            .collect();
        let n = forget.len();
        if n > 0 {
            self.ledger
                .commit(crate::ledger::Change {
                    forget_keys: forget,
                    ..Default::default()
                })
                .await?;
        }
        Ok(n)
    }

    /// [`Gate::forget_expired`] now and every `every`, until aborted.
    pub async fn forget_every(self: std::sync::Arc<Self>, every: std::time::Duration) {
        loop {
            match self.forget_expired(crate::instant::now()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(forgotten = n, "call keys past their retry window forgotten")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot forget call keys past their retry window; trying again later")
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    /// At a start on a ledger of its own: every autopilot call with an idempotency key that has
    /// no result kept was running when Airlock stopped. Keep "unknown" as its result, so a
    /// repeat is told so (never run again) and the key can be forgotten after its window. A
    /// gate sharing its ledger leaves them (another replica may be running them). How many.
    pub async fn record_unknown_key_results(&self) -> Result<usize, crate::ledger::LedgerError> {
        let mut states = Vec::new();
        for (key, bytes) in self.ledger.call_keys()? {
            let Ok(mut e) = serde_json::from_slice::<Entry>(&bytes) else {
                continue;
            };
            if !matches!(e.item, Item::Call(_)) || e.result.is_some() {
                continue;
            }
            e.result = Some(error_result(UNKNOWN));
            let state = e.stored(&key)?;
            states.push(state.replacing(bytes));
        }
        let n = states.len();
        if n > 0 {
            self.ledger
                .commit(crate::ledger::Change {
                    items: states,
                    ..Default::default()
                })
                .await?;
        }
        Ok(n)
    }

    /// Refuse a call as a retry: recorded if the ledger can, and never run.
    fn refuse_retry(&self, r: &Retrying<'_>, entry: Option<&Entry>, why: String) -> Reply {
        let mut rows = rows(r, entry, why.clone());
        // what is refused keeps its arguments only up to the cap, as any refused call
        super::reply::cap_refused(&mut rows);
        // past the agent's refused_per_minute, only counted, as any refused call
        let limit = r.setup.policy.refused_per_minute;
        if !self.budget(r.actor, &r.call.tool, limit, r.now, false, &mut rows) {
            return not_run(r.call_id, why);
        }
        // queued, not awaited: the refusal stands whether or not its rows commit
        if let Err(e) = self.ledger.submit_lazy(crate::ledger::Change {
            rows,
            ..Default::default()
        }) {
            tracing::error!(call_id = %r.call_id, error = %e, "cannot record a refused retry");
        }
        not_run(r.call_id, why)
    }
}

/// The rows of a refused retry: its proposal, and a `retry` row naming what it would repeat.
fn rows(r: &Retrying<'_>, entry: Option<&Entry>, why: String) -> Vec<NewRow> {
    vec![
        NewRow::at(r.call_id, r.now, Row::Proposal(r.proposal.clone())),
        NewRow::at(
            r.call_id,
            r.now,
            Row::Retry(row::Retry {
                action: row::RetryAction::Refused,
                of: entry.map(|e| json!(e.item)),
                of_call_id: entry.map(|e| e.call_id.clone()),
                reason: Some(why),
            }),
        ),
    ]
}

/// Largest result kept under a key for repeats (its canonical JSON); a larger one is kept as its
/// size and hash, and a repeat is told so.
pub const MAX_KEPT_BYTES: usize = 64 * 1024;

/// What is kept under a key for a result: the result, or, above [`MAX_KEPT_BYTES`], a note with
/// its size and hash (the outcome row in the chain has the same hash).
fn kept(result: &Value) -> Value {
    let text = crate::canonical::to_string(result);
    if text.len() <= MAX_KEPT_BYTES {
        return result.clone();
    }
    let said = format!(
        "This call ran once already (its idempotency key names it), but its result ({} bytes, SHA-256 {}) is larger than the {} KiB Airlock keeps for repeats. It is not run again; send a new key for a new call.",
        text.len(),
        crate::canonical::sha256_hex(text.as_bytes()),
        MAX_KEPT_BYTES / 1024
    );
    error_result(&said)
}

/// The answer to a call that was not run, with why.
fn not_run(call_id: &str, message: String) -> Reply {
    Reply::Refused {
        message,
        details: json!({"call_id": call_id, "verdict": "not_run"}),
    }
}

/// A tool result that is an error saying `text` (kept under a key for repeats).
fn error_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

/// What a repeat of a keyed call cut off by a stop is told.
const UNKNOWN: &str = "Airlock stopped while this call ran: its outcome is unknown, and it is not run again. Check the tool server; send a new idempotency key for a new call.";

fn ledger_message(e: &dyn std::fmt::Display) -> String {
    format!(
        "Airlock could not read or record this call in its ledger, so it was not run (fail closed): {e}"
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{MAX_KEPT_BYTES, kept};

    #[test]
    fn a_result_is_kept_whole_up_to_the_cap_and_as_its_size_and_hash_above_it() {
        let small = json!({"content": [{"type": "text", "text": "ok"}]});
        assert_eq!(kept(&small), small);
        let big = json!({"content": [{"type": "text", "text": "x".repeat(MAX_KEPT_BYTES)}]});
        let note = kept(&big);
        assert_eq!(note["isError"], true);
        let said = note["content"][0]["text"].as_str().unwrap_or("");
        assert!(
            said.contains("SHA-256") && said.contains("not run again"),
            "{said}"
        );
        assert!(said.len() < 1024);
    }
}
