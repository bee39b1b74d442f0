//! Retries: an agent that asks again gets the call it already made, not a second one.
//!
//! Owns a call's key (who asked, which tool, which canonical arguments — or who asked and the
//! agent's idempotency key), the [`Entry`] stored under it (the approval or held call it opened,
//! with the arguments' hash and when), and the pure [`rule`] that says what a new call with
//! that key gets: a new call, attached to the item still open, the settled outcome replayed, or
//! refused (an idempotency key reused for another call) — attached or replayed only when the
//! call is decided the same way as the first ([`Retry::given`]); and the key's entry as the ledger
//! stores it ([`Fresh::state`], committed with the item the call opens). It must never do I/O or
//! read a clock: the gate looks the entry and the item up and passes the time in.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::ledger::{ItemKind, ItemState, LedgerError};

/// Where an agent names a call as its own, separate one: `_meta` key of `tools/call`.
pub const IDEMPOTENCY_META: &str = "io.airlock/idempotency-key";

/// Longest idempotency key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 200;

/// The desk item a call opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Item {
    Approval(String),
    Held(String),
    /// A call allowed on autopilot with an idempotency key (its call id).
    Call(String),
}

/// What is stored under a call's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub item: Item,
    /// The call that opened it.
    pub call_id: String,
    pub server: String,
    pub tool: String,
    pub arguments_sha256: String,
    #[serde(with = "crate::instant::serde_rfc3339")]
    pub at: DateTime<Utc>,
    /// For an autopilot call ([`Item::Call`]): its result as the agent got it (MCP
    /// `CallToolResult` JSON), once it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// A call as a retry is recognised by.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub actor: &'a str,
    pub server: &'a str,
    pub tool: &'a str,
    pub arguments_sha256: &'a str,
    /// The agent's idempotency key, if it gave one.
    pub idempotency_key: Option<&'a str>,
}

/// Why an idempotency key is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadKey {
    #[error("`_meta.{IDEMPOTENCY_META}` must be a string; send a string, or leave it out")]
    NotText,
    #[error(
        "`_meta.{IDEMPOTENCY_META}` must be 1 to {MAX_KEY_LEN} bytes; send a shorter key (a UUID will do)"
    )]
    Length,
}

/// The idempotency key a call's `_meta` carries, if any.
pub fn idempotency_key(meta: Option<&Map<String, Value>>) -> Result<Option<&str>, BadKey> {
    match meta.and_then(|m| m.get(IDEMPOTENCY_META)) {
        None => Ok(None),
        Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_KEY_LEN => Ok(Some(k)),
        Some(Value::String(_)) => Err(BadKey::Length),
        Some(_) => Err(BadKey::NotText),
    }
}

impl Asked<'_> {
    /// The key its entry is stored under: the SHA-256 of who asked and either the idempotency
    /// key or the tool and arguments (so different calls never share a key).
    pub fn key(&self) -> String {
        let named = match self.idempotency_key {
            Some(k) => json!({"actor": self.actor, "idempotency_key": k}),
            None => json!({
                "actor": self.actor,
                "server": self.server,
                "tool": self.tool,
                "arguments_sha256": self.arguments_sha256,
            }),
        };
        crate::canonical::sha256_hex(crate::canonical::to_string(&named).as_bytes())
    }

    /// The entry to store when this call opens `item`.
    pub fn entry(&self, item: Item, call_id: &str, at: DateTime<Utc>) -> Entry {
        Entry {
            item,
            call_id: call_id.to_string(),
            server: self.server.to_string(),
            tool: self.tool.to_string(),
            arguments_sha256: self.arguments_sha256.to_string(),
            at,
            result: None,
        }
    }
}

/// A new call's key, kept until the call opens an item, then stored with it.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub key: String,
    /// The entry stored under the key now (an older call's, past its window), which the new
    /// one replaces only if it is still the one read; `None`: the key must still be unused.
    pub prior: Option<Vec<u8>>,
    pub server: String,
    pub tool: String,
    pub arguments_sha256: String,
    /// Whether the agent gave an idempotency key (only then is an autopilot call kept).
    pub keyed: bool,
    /// With a key: the key the same call has without one, under which an approval or held call
    /// is named too (if nothing is named there yet), so a repeat that lost its key (a retry layer
    /// dropping `_meta`) attaches. Set by [`Fresh::plain_unused`].
    pub plain: Option<String>,
}

impl Fresh {
    pub fn of(asked: &Asked<'_>, prior: Option<Vec<u8>>) -> Fresh {
        Fresh {
            key: asked.key(),
            prior,
            server: asked.server.to_string(),
            tool: asked.tool.to_string(),
            arguments_sha256: asked.arguments_sha256.to_string(),
            keyed: asked.idempotency_key.is_some(),
            plain: None,
        }
    }

    /// The key the same call has without its idempotency key, if it has one.
    pub fn plain_key(asked: &Asked<'_>) -> Option<String> {
        asked.idempotency_key.map(|_| {
            Asked {
                idempotency_key: None,
                ..*asked
            }
            .key()
        })
    }

    /// Name what this call opens under `plain` too (nothing is named there yet).
    pub fn plain_unused(mut self, plain: String) -> Fresh {
        self.plain = Some(plain);
        self
    }

    /// The entries to store with an approval or held call this call opens: under its key
    /// ([`Fresh::state`]) and, with an idempotency key, under the same call's key without one
    /// when nothing was named there (still unused when committed).
    pub fn states(
        &self,
        item: Item,
        call_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<ItemState>, LedgerError> {
        let mut out = vec![self.state(item.clone(), call_id, at)?];
        if let Some(plain) = &self.plain {
            let mut e = self.stored(item, call_id, at, None)?;
            e.id = plain.clone();
            out.push(e.new_one());
        }
        Ok(out)
    }

    /// The entry naming `item`, opened by `call_id` at `at`, as stored under the key: committed
    /// only if the key is still as read (a second identical call racing this one is refused
    /// and told to ask again, which attaches it).
    pub fn state(
        &self,
        item: Item,
        call_id: &str,
        at: DateTime<Utc>,
    ) -> Result<ItemState, LedgerError> {
        let state = self.stored(item, call_id, at, None)?;
        Ok(match &self.prior {
            Some(prior) => state.replacing(prior.clone()),
            None => state.new_one(),
        })
    }

    /// An autopilot call's entry again, now with its result, committed only if the key still
    /// holds the entry [`Fresh::state`] took it with (nothing else took the key meanwhile).
    pub fn with_result(
        &self,
        call_id: &str,
        at: DateTime<Utc>,
        result: Value,
    ) -> Result<ItemState, LedgerError> {
        let item = || Item::Call(call_id.to_string());
        let taken = self.stored(item(), call_id, at, None)?.state;
        Ok(self
            .stored(item(), call_id, at, Some(result))?
            .replacing(taken))
    }

    fn stored(
        &self,
        item: Item,
        call_id: &str,
        at: DateTime<Utc>,
        result: Option<Value>,
    ) -> Result<ItemState, LedgerError> {
        let entry = Entry {
            item,
            call_id: call_id.to_string(),
            server: self.server.clone(),
            tool: self.tool.clone(),
            arguments_sha256: self.arguments_sha256.clone(),
            at,
            result,
        };
        entry.stored(&self.key)
    }
}

impl Entry {
    /// This entry as stored under `key` (unconditional until the caller says otherwise).
    pub fn stored(&self, key: &str) -> Result<ItemState, LedgerError> {
        let bytes = serde_json::to_vec(self).map_err(|e| LedgerError::Encode {
            what: format!("call key of {}", self.call_id),
            message: e.to_string(),
        })?;
        Ok(ItemState::of(ItemKind::CallKey, key, bytes, None))
    }
}

/// Where the item an entry names stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stands {
    /// Waiting for a person, or running.
    Open,
    /// Ended; `replay`: its outcome is the answer to a retry (it ran, failed, was denied or
    /// rejected, or its outcome is unknown). An approval nobody decided in time (expired) or one
    /// withdrawn because its tool changed is not: the call may be asked again.
    Settled { replay: bool },
    /// Not found (pruned, or another ledger's).
    Gone,
}

/// What a call gets, given what its key already names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// A call of its own.
    New,
    /// The item is still open: wait on it (same approval, no new envelope, no new mail).
    Attach(Item),
    /// The item settled within the window: its outcome is the answer; nothing runs.
    Replay(Item),
    /// Refused: the reason, for the agent.
    Refuse(String),
}

/// What the call's own decision asks for, now: a repeat is answered by the earlier item only if
/// the call is decided the same way — an approval for an approval, a hold for a held call. A call
/// decided otherwise now (the policy changed, the tool was classified or pinned since) is a new
/// call; the earlier item stays for its deciders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asks {
    Approval,
    Review,
    /// Allowed on autopilot, and the agent gave an idempotency key.
    Autopilot,
    Nothing,
}

impl Retry {
    /// This answer, given what the call's decision now asks for.
    pub fn given(self, asks: Asks) -> Retry {
        let same = |item: &Item| {
            matches!(
                (item, asks),
                (Item::Approval(_), Asks::Approval)
                    | (Item::Held(_), Asks::Review)
                    | (Item::Call(_), Asks::Autopilot)
            )
        };
        match self {
            Retry::Attach(item) | Retry::Replay(item) if !same(&item) => Retry::New,
            other => other,
        }
    }
}

/// What `asked` gets when its key names `entry` (if any), whose item `stands`, at `now`, with
/// settled outcomes replayed for `window` after the first call — or, for a call with an
/// idempotency key, for as long as the entry is kept.
pub fn rule(
    asked: &Asked<'_>,
    entry: Option<&Entry>,
    stands: Stands,
    now: DateTime<Utc>,
    window: std::time::Duration,
) -> Retry {
    let Some(e) = entry else {
        return Retry::New;
    };
    if let Some(k) = asked.idempotency_key {
        let same = e.server == asked.server
            && e.tool == asked.tool
            && e.arguments_sha256 == asked.arguments_sha256;
        if !same {
            return Retry::Refuse(format!(
                "idempotency key `{k}` already names another call (call {}: `{}` with other arguments); it was not run. Send a new key for a new call, or the same arguments to get that call's outcome.",
                e.call_id, e.tool
            ));
        }
    }
    // with an idempotency key the agent asked for at most once: the key holds for as long as it
    // is kept (forgotten only after the policy's longest window, at least 24 h); without one,
    // an identical call is a repeat only within its class's window
    let within = asked.idempotency_key.is_some()
        || now - e.at < TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX);
    match stands {
        Stands::Open => Retry::Attach(e.item.clone()),
        Stands::Settled { replay: true } if within => Retry::Replay(e.item.clone()),
        Stands::Settled { .. } | Stands::Gone => Retry::New,
    }
}

/// Whether an entry may be forgotten at `now` (its result with it): its window — the longest
/// any class has — has passed, and nothing can attach to it any more (its item is not open).
pub fn forgettable(
    entry: &Entry,
    stands: Stands,
    now: DateTime<Utc>,
    window: std::time::Duration,
) -> bool {
    now - entry.at >= TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX)
        && stands != Stands::Open
}

#[cfg(test)]
mod tests;
