//! Quarantine: calls held for review, one kind of item on the [`crate::desk`] (which authorizes the
//! reviewer and applies the start rule); the release or rejection a reviewer decides.
//!
//! Owns the held calls (in memory, mirrored durably in the ledger's held table), reading the
//! reviewers' personal links, and the release of a held call ([`release`]: run once, on a reviewer's word). Classifying a tool —
//! writing its manifest — is in [`classify`]. Every state change is committed (rows + state in
//! one transaction) before its side effect. It must never run a held call without a reviewer's
//! release, never run one twice (a release found unfinished after a crash is closed as
//! `outcome_unknown` when the desk's start rule asks), and never decide a call itself: the gate holds what [`crate::decide`]
//! quarantined.

pub mod classify;
pub mod notice;
mod release;
mod reseal;
mod start;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::approval::link::LinkKey;
use crate::authority::Decider;
use crate::desk::Phase;
use crate::desk::lifecycle;

use crate::forward::Forwarder;
use crate::ledger::row;
use crate::ledger::{Change, ItemKind, ItemState, Ledger, LedgerError, NewRow, Row};
use crate::live::Live;
use crate::reviewer::Reviewer;

/// Most calls held per tool; beyond it, further calls are refused without being held.
pub const MAX_HELD_PER_TOOL: usize = 1000;

/// A held call's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HeldStatus {
    /// Waiting for a reviewer.
    Held,
    /// Released; running now.
    Releasing { by: String },
    /// Released and run: the tool's result as the server returned it.
    Released {
        by: String,
        result: Value,
        is_error: bool,
    },
    /// Released, but it could not be run.
    Failed { by: String, error: String },
    /// Rejected: it never runs.
    Rejected { by: String, reason: String },
    /// Released, and Airlock stopped while it ran: whether it ran is unknown; never re-run.
    OutcomeUnknown { by: String },
    /// Released, but not run: the tool's definition changed after the call was held.
    Voided { by: String, reason: String },
}

/// A quarantined call, as held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The call's id in the ledger.
    pub id: String,
    /// The name the agent called.
    pub tool: String,
    pub server: String,
    pub tool_name: String,
    pub arguments: Map<String, Value>,
    pub meta: Option<Map<String, Value>>,
    pub actor: String,
    /// Why it was quarantined, in words, and the reason codes.
    pub reason: String,
    pub codes: Vec<String>,
    pub policy_version: String,
    #[serde(with = "crate::instant::serde_rfc3339")]
    pub held_at: DateTime<Utc>,
    pub status: HeldStatus,
    /// The roles whose authority releasing it needs (a member of each); empty: the policy's
    /// `[review] role`. (Calls held before this field existed read as empty.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The tool's definition (hash) when it was held, if it was held because that definition
    /// changed; a release runs it only on that same definition. `None`: the trusted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    /// The values the manifest's `redact` took out of `arguments`, sealed ([`crate::seal`])
    /// until the held call ends; then gone from the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

impl HeldStatus {
    /// Where this stands in the desk's one lifecycle: held is waiting, a release under way is
    /// executing, every other state is done.
    pub fn phase(&self) -> Phase {
        match self {
            HeldStatus::Held => Phase::Waiting,
            HeldStatus::Releasing { .. } => Phase::Executing,
            HeldStatus::Released { .. }
            | HeldStatus::Failed { .. }
            | HeldStatus::Rejected { .. }
            | HeldStatus::OutcomeUnknown { .. }
            | HeldStatus::Voided { .. } => Phase::Done,
        }
    }
}

impl Held {
    pub fn is_held(&self) -> bool {
        self.status.phase() == Phase::Waiting
    }
}

/// What the reviewer was shown when deciding, recorded with the decision (`seen_sha256`,
/// `seen_of`): `page`, the SHA-256 of the held call's block as the review page rendered it; or
/// `json`, the SHA-256 of the held call's canonical JSON as the CLI fetched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub sha256: String,
    pub of: &'static str,
}

/// The hash of a held call's JSON as the review state serves it (what the CLI hashes as `json`).
pub fn json_sha256(h: &Held) -> String {
    let v = shown_json(h);
    crate::canonical::sha256_hex(crate::canonical::to_string(&v).as_bytes())
}

/// A held call as reviewers fetch it: without its sealed text (ciphertext is no reviewer's,
/// and it changes as the seal's key chain steps, which is no change to what they decide on).
pub fn shown_json(h: &Held) -> Value {
    let mut v = serde_json::to_value(h).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("sealed");
    }
    v
}

#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("no held call `{0}`")]
    NotFound(String),
    #[error("call `{id}` is no longer held (it is {state})")]
    NotHeld { id: String, state: String },
    #[error("the ledger could not record it, so nothing changed: {0}")]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Classify(String),
    /// Releasing would run the call without its redacted values: this gate cannot open them.
    #[error(
        "this gate cannot open the call's redacted values ({0}), so it could not run it; nothing was decided: release it on the gate that sealed them, or give this one that gate's seal key and chain files"
    )]
    Unsealable(String),
}

/// A held call's state, in words.
pub fn state_name(s: &HeldStatus) -> &'static str {
    match s {
        HeldStatus::Held => "held",
        HeldStatus::Releasing { .. } => "being released",
        HeldStatus::Released { .. } => "released",
        HeldStatus::Failed { .. } => "released but failed",
        HeldStatus::Rejected { .. } => "rejected",
        HeldStatus::OutcomeUnknown { .. } => "released with an unknown outcome",
        HeldStatus::Voided { .. } => "released but not run (its tool changed)",
    }
}

/// The held state as stored beside its rows (JSON, keys in order), unconditional until
/// [`ItemState::replacing`] says otherwise.
pub fn entry(h: &Held) -> Result<ItemState, LedgerError> {
    let encode = |e: serde_json::Error| LedgerError::Encode {
        what: format!("held call {}", h.id),
        message: e.to_string(),
    };
    // an ended held call keeps no sealed values, whichever path ended it
    let mut h = h.clone();
    if h.status.phase() == Phase::Done {
        h.sealed = None;
    }
    let v = serde_json::to_value(&h).map_err(encode)?;
    let bytes = serde_json::to_vec(&v).map_err(encode)?;
    Ok(ItemState::of(ItemKind::Held, &h.id, bytes, None))
}

/// [`entry`], committed only if the stored state is still `prior` (when one was read).
fn entry_replacing(h: &Held, prior: Option<Vec<u8>>) -> Result<ItemState, LedgerError> {
    let e = entry(h)?;
    Ok(match prior {
        Some(bytes) => e.replacing(bytes),
        None => e,
    })
}

/// A held call as stored, with its bytes when a change must be conditional on them.
pub(crate) type StoredHeld = (Value, Option<Vec<u8>>);

pub struct Quarantine {
    held: Mutex<BTreeMap<String, Held>>,
    /// Releases running now, so shutdown can let them finish and record their outcome.
    running: std::sync::atomic::AtomicUsize,
    ledger: Arc<Ledger>,
    forwarder: Forwarder,
    /// The tools as served now (a release runs only on the definition it was held under).
    live: Arc<Live>,
    key: LinkKey,
    /// Who is told when a call is held (set by `serve`; none in tests that mail nobody).
    notices: std::sync::OnceLock<Arc<notice::Notices>>,
    /// Refusal rows per reviewer (the quota also used for approvals).
    refusals: crate::approval::quota::RefusalQuota,
}

impl Quarantine {
    pub fn new(
        ledger: Arc<Ledger>,
        forwarder: Forwarder,
        live: Arc<Live>,
        key: LinkKey,
    ) -> Quarantine {
        Quarantine {
            held: Mutex::new(BTreeMap::new()),
            running: std::sync::atomic::AtomicUsize::new(0),
            ledger,
            forwarder,
            live,
            key,
            notices: std::sync::OnceLock::new(),
            refusals: crate::approval::quota::RefusalQuota::default(),
        }
    }

    /// Whether a refused decision by `who` is recorded now (the reviewer's refusal quota).
    pub fn refusal_quota(&self, who: &str, now: DateTime<Utc>) -> Option<u32> {
        self.refusals.tally(who, now)
    }

    /// Tell reviewers about held calls through `notices` from now on.
    pub fn tell_with(&self, notices: notice::Notices) {
        let _ = self.notices.set(Arc::new(notices));
    }

    /// Mail the people who may release `h` (in the background; rows record each mail).
    pub fn notify(&self, h: &Held) {
        let now = crate::instant::now();
        // throttled here, so a loop of held calls spawns nothing but the notices that go out
        if let Some(n) = self.notices.get().filter(|n| n.due(h, now)).cloned() {
            let h = h.clone();
            tokio::spawn(async move { n.held(&h, now).await });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls of one tool still waiting for review.
    pub fn waiting(&self, server: &str, tool: &str) -> usize {
        self.lock()
            .values()
            .filter(|h| h.is_held() && h.server == server && h.tool_name == tool)
            .count()
    }

    /// Remember (in memory) a held call whose state is durable.
    pub fn remember(&self, mut h: Held) {
        // an ended held call keeps no sealed values, in memory either
        if h.status.phase() == Phase::Done {
            h.sealed = None;
        }
        self.lock().insert(h.id.clone(), h);
    }

    /// A held call as stored; on a ledger shared by replicas it may have been held, released
    /// or rejected on another, so the ledger is read rather than this process's memory.
    pub fn get(&self, id: &str) -> Option<Held> {
        if self.ledger.is_shared() {
            if let Ok(Some(b)) = self.ledger.held_state(id) {
                return serde_json::from_slice(&b).ok();
            }
        }
        self.lock().get(id).cloned()
    }

    /// Every held call, oldest first (on a shared ledger, every replica's).
    pub fn list(&self) -> Vec<Held> {
        let stored = self
            .ledger
            .is_shared()
            .then(|| self.ledger.held().ok())
            .flatten()
            .map(|all| {
                all.into_iter()
                    .filter_map(|v| serde_json::from_value::<Held>(v).ok())
                    .collect::<Vec<_>>()
            });
        let mut all: Vec<Held> = stored.unwrap_or_else(|| self.lock().values().cloned().collect());
        all.sort_by(|a, b| a.held_at.cmp(&b.held_at).then(a.id.cmp(&b.id)));
        all
    }

    /// Who presents a personal review link's token (`/review/{token}`), if it is valid now.
    pub fn reviewer(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Reviewer, crate::reviewer::TokenError> {
        Reviewer::from_token(&self.key, token, now)
    }

    /// Move a held call to `next`, recording `row` with it: one transaction, checked under the
    /// lock so two reviewers cannot both release it, and committed only if the stored state is
    /// still the one read here (another replica sharing the ledger may have moved it).
    async fn transition(
        &self,
        id: &str,
        row: Row,
        next: HeldStatus,
    ) -> Result<Held, QuarantineError> {
        let stored = self.ledger.held_state(id)?;
        let (h, pending) = {
            let mut map = self.lock();
            // the stored state is the truth (a call held by another replica is found too)
            if let Some(s) = stored
                .as_deref()
                .and_then(|b| serde_json::from_slice::<Held>(b).ok())
            {
                map.insert(id.to_string(), s);
            }
            let h = map
                .get_mut(id)
                .ok_or_else(|| QuarantineError::NotFound(id.to_string()))?;
            // the one lifecycle: only a waiting item is decided (and one decision at a time)
            if lifecycle::open_to_decide(h.status.phase()).is_err() {
                return Err(QuarantineError::NotHeld {
                    id: id.to_string(),
                    state: state_name(&h.status).to_string(),
                });
            }
            let mut next_h = h.clone();
            next_h.status = next;
            let kind = row.kind();
            let mut rows = vec![NewRow::now(id, row)];
            if next_h.status.phase() == Phase::Done {
                rows.extend(destroy_sealed(&mut next_h, kind));
            }
            let pending = self.ledger.submit(Change {
                rows,
                items: vec![entry_replacing(&next_h, stored)?],
                ..Change::default()
            })?;
            // Provisionally moved, so a second reviewer is refused; undone if the commit fails.
            *h = next_h.clone();
            (next_h, pending)
        };
        if let Err(e) = pending.await {
            let now = self.ledger.held_state(id).ok().flatten();
            let now = now.and_then(|b| serde_json::from_slice::<Held>(&b).ok());
            let mut map = self.lock();
            match now {
                // what is stored (moved by another replica, or as it was)
                Some(s) => {
                    map.insert(id.to_string(), s);
                }
                None => {
                    if let Some(h) = map.get_mut(id) {
                        h.status = HeldStatus::Held;
                    }
                }
            }
            return Err(e.into());
        }
        Ok(h)
    }

    /// Reject a held call: it never runs.
    pub async fn reject(
        &self,
        id: &str,
        by: &Decider,
        reason: &str,
        seen: &Seen,
    ) -> Result<Held, QuarantineError> {
        self.transition(
            id,
            Row::HeldRejected(row::HeldRejected {
                reason: reason.to_string(),
                by: by.record(),
                seen_sha256: seen.sha256.clone(),
                seen_of: seen.of.to_string(),
            }),
            HeldStatus::Rejected {
                by: by.who.clone(),
                reason: reason.to_string(),
            },
        )
        .await
    }

    /// Wait (up to `limit`) for running releases to finish and record their outcome.
    pub async fn drain(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.running.load(std::sync::atomic::Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// An ending held call's sealed values, gone from its state: the row that says so (none when it
/// had none).
fn destroy_sealed(h: &mut Held, why: &str) -> Option<NewRow> {
    h.sealed.take().map(|_| {
        NewRow::now(
            &h.id,
            Row::SealedDestroyed(row::SealedDestroyed {
                approval_id: None,
                why: why.to_string(),
            }),
        )
    })
}
