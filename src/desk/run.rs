//! The desk's one way to carry out a decision that says "run": the decided call runs once, on the
//! definition it was decided under, and its item ends with one commit of its final state and
//! the rows that explain it ([`close`]), whatever its kind.
//!
//! Owns the check that the tool is still the one the decider was shown (a definition that
//! changed since voids the call, nothing runs), the forwarding of a decided call (never relayed
//! to an agent: people decide long after the request), and the closing commit's retries (a
//! conflict is re-read and decided again; a failing ledger is retried twice). It must never run
//! a call whose decision is not durable (the kinds commit the intent first, `Executing`), never
//! run one twice, and never hide a result that exists: an item whose end cannot be recorded is
//! still reported as it ended, and the next start marks it `outcome_unknown`.

use std::time::Duration;

use serde_json::{Map, Value};

use super::lifecycle::Phase;
use crate::forward::{Forward, Forwarded, Forwarder};
use crate::ledger::row::RunContext;
use crate::ledger::{Change, ItemState, Ledger, LedgerError, NewRow};
use crate::live::Live;

/// A call a person decided to run.
pub struct DecidedCall<'a> {
    pub call_id: &'a str,
    pub server: &'a str,
    pub tool: &'a str,
    pub arguments: Map<String, Value>,
    pub meta: Option<Map<String, Value>>,
    /// What it runs under, for the outcome row (the approval id, who released it).
    pub context: RunContext,
    /// The tool's definition (hash) when the decision was asked, if it was then a changed tool
    /// (a call held because its tool changed); `None`: the trusted definition.
    pub definition: Option<&'a str>,
    /// Redacted values of `arguments`, sealed: opened and put back only to run.
    pub sealed: Option<&'a str>,
}

/// What became of a decided call.
#[derive(Debug, Clone, PartialEq)]
pub enum Ran {
    /// The tool server answered (possibly with a tool-level error): its `CallToolResult` JSON.
    Executed { result: Value, is_error: bool },
    /// It could not be run: why.
    Failed { error: String },
    /// Not run: the tool is no longer the one the decider was shown.
    Voided { reason: String },
}

/// Why a call is voided when its tool changed after the decision was asked.
pub const CHANGED_SINCE: &str =
    "the tool server changed this tool's definition after the decision was asked";

/// Whether the tool is still the one the decision was asked about: its definition now (the
/// changed definition's hash, `None` if trusted) equals the one then. Pure.
pub fn unchanged(then: Option<&str>, now: Option<&str>) -> bool {
    then == now
}

/// Run `call` once (or void it, if its tool changed since the decision was asked). The outcome
/// row to commit with the item's end (none when voided: nothing ran) and what became of it.
pub async fn run_once(
    forwarder: &Forwarder,
    live: &Live,
    call: DecidedCall<'_>,
) -> (Vec<NewRow>, Ran) {
    let changed = live.changed();
    let now = changed
        .get(&(call.server.to_string(), call.tool.to_string()))
        .map(|c| c.now.as_str());
    if !unchanged(call.definition, now) {
        return (
            Vec::new(),
            Ran::Voided {
                reason: CHANGED_SINCE.to_string(),
            },
        );
    }
    // what the agent sent, its redacted values put back; nothing runs if they cannot be
    let arguments = match call
        .sealed
        .map(|s| forwarder.sealer().open(call.call_id, s))
    {
        None => call.arguments,
        Some(Ok(secrets)) => crate::redact::restore(&call.arguments, &secrets).0,
        Some(Err(e)) => {
            return (
                Vec::new(),
                Ran::Failed {
                    error: format!("its redacted values cannot be opened, so it was not run: {e}"),
                },
            );
        }
    };
    let (row, forwarded) = forwarder
        .call(Forward {
            call_id: call.call_id,
            server: call.server,
            tool: call.tool,
            arguments,
            meta: call.meta,
            context: call.context,
            // decided later, maybe long after the agent's request: nothing to relay to, and
            // no agent that may cancel it
            relay: None,
            cancel: None,
        })
        .await;
    let ran = match forwarded {
        Forwarded::Ran(reply) => Ran::Executed {
            result: reply.json,
            is_error: reply.is_error,
        },
        Forwarded::Failed(error) => Ran::Failed { error },
    };
    (vec![row], ran)
}

/// An item as the desk records its end.
pub trait Item {
    /// Where it stands.
    fn phase(&self) -> Phase;
    /// Its state as stored.
    fn stored(&self) -> Result<ItemState, LedgerError>;
}

/// End an item: read it as stored (`load`: its state and stored bytes), let `end` set its final
/// state and return the rows that explain it, and commit those after `rows` (the outcome row)
/// with the state in one transaction, only if the stored bytes are still the ones read. Another
/// replica changed it meanwhile: read again and end it again; it ended there: what it recorded
/// stands, and `rows` (a call that did run) are appended beside it. A failing ledger is tried
/// three times. The item as it ended and whether that is durable; `None` if it cannot be read.
pub async fn close<I: Item>(
    ledger: &Ledger,
    id: &str,
    mut load: impl FnMut() -> Option<(I, Vec<u8>)>,
    mut end: impl FnMut(&mut I) -> Vec<NewRow>,
    rows: Vec<NewRow>,
) -> Option<(I, bool)> {
    let mut failures = 0u64;
    loop {
        let (mut item, prior) = load()?;
        if item.phase() == Phase::Done {
            if !rows.is_empty() {
                if let Err(e) = ledger.append(rows.clone()).await {
                    tracing::error!(item = %id, error = %e, "cannot record the outcome of a call ended elsewhere");
                }
            }
            return Some((item, true));
        }
        let mut all = rows.clone();
        all.extend(end(&mut item));
        let committed = match item.stored() {
            Ok(state) => {
                ledger
                    .commit(Change {
                        rows: all,
                        items: vec![state.replacing(prior)],
                        ..Change::default()
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        match committed {
            Ok(_) => return Some((item, true)),
            Err(LedgerError::Conflict(_)) => continue,
            Err(e) if failures < 2 => {
                tracing::error!(item = %id, attempt = failures, error = %e, "cannot record how a decided item ended");
                failures += 1;
                tokio::time::sleep(Duration::from_millis(200 * failures)).await;
            }
            Err(e) => {
                tracing::error!(item = %id, error = %e, "cannot record how a decided item ended; giving up");
                return Some((item, false));
            }
        }
    }
}
