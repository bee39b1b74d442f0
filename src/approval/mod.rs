//! Approvals: calls waiting for a person's approval, one kind of item on the [`crate::desk`].
//!
//! Owns open approvals (a small index entry each in memory, see [`index`]; their states live in
//! the ledger's approvals table and are read on demand), their mail, their deadlines (one timer
//! wheel), the decisions that arrive from the web pages, and the single execution of an
//! approved call. The rules themselves are pure, in [`state`]; links and nonces in [`link`].
//! Every state change is committed (rows + state, one transaction) before the next side effect:
//! mail after the envelope is durable, execution after its intent is durable. It must never run
//! a call twice: an execution intent found on restart becomes `outcome_unknown`, never a re-run.

mod decision;
mod finish;
mod index;
pub mod link;
mod notify;
pub mod quota;
mod recovery;
mod remind;
mod reseal;
mod rows;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as StdMutex};

use serde_json::{Map, Value, json};

pub use index::stored;

use tokio::sync::{Mutex, watch};

use crate::decide::{Decision, Verdict};
use crate::envelope::{self, Proposal};
use crate::forward::Forwarder;
use crate::ledger::row::{self, Row};
use crate::ledger::{Change, Ledger, LedgerError, NewRow};
use crate::live::Live;
use crate::mail::Mailer;
use crate::mcp::downstream::ToolServers;
use index::{Entry, Timers};
use link::LinkKey;
use rows::{closed_row, destroy_sealed, refused_link};
use state::{Approval, Choice, Outcome, Refusal, Status, Step};

/// Why a link or a decision was refused (shown to the person, and logged).
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("this link is not valid")]
    BadLink,
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("the edited arguments were not accepted: {0}")]
    BadModification(String),
    #[error("{0}")]
    Unauthorized(#[from] crate::authority::Refusal),
    #[error("the ledger could not record the decision, so nothing changed: {0}")]
    Ledger(#[from] LedgerError),
    /// Approving would run the call without its redacted values: this gate cannot open them.
    #[error(
        "this gate cannot open the call's redacted values ({0}), so it could not run it; nothing was decided: decide on the gate that sealed them, or give this one that gate's seal key and chain files"
    )]
    Unsealable(String),
}

/// A decision as posted from the approval page.
#[derive(Debug, Clone)]
pub struct DecisionForm {
    pub choice: Choice,
    pub comment: String,
    /// For modify: the edited arguments as JSON text.
    pub arguments: Option<String>,
    /// Hash of the rendered envelope the approver was shown.
    pub seen: String,
}

/// What the page shows for a valid link.
#[derive(Debug, Clone)]
pub struct View {
    pub approval: Approval,
    pub approver: String,
    pub can_escalate: bool,
    /// The arguments with their redacted values put back, when the role may see them (set by
    /// the page, after sign-in); `None`: markers are shown.
    pub revealed: Option<Map<String, Value>>,
}

/// A call the gate hands over for approval.
pub struct Open<'a> {
    /// The setup that decided the call (its policy picks the approvers).
    pub setup: &'a crate::config::Setup,
    pub call_id: &'a str,
    pub proposal: Proposal<'a>,
    /// The proposal and verdict rows, committed together with the envelope.
    pub rows: Vec<NewRow>,
    /// The call's key, stored with the approval so an identical call attaches to it.
    pub retry: Option<crate::retry::Fresh>,
    /// The values `redact` took out of the proposal's arguments, sealed.
    pub sealed: Option<String>,
}

/// Most `link_refused` rows written per approval per minute.
pub const REFUSALS_PER_MINUTE: u32 = 20;

pub struct Approvals {
    /// Open approvals' index entries; their states are in the ledger. Every state change holds
    /// this lock from reading the state to committing the next one.
    open: Mutex<BTreeMap<String, Entry>>,
    timers: Arc<Timers>,
    watchers: StdMutex<HashMap<String, watch::Sender<Status>>>,
    /// Per approval: (window start, rows logged in it, rows left out since the last one logged).
    refusals: quota::RefusalQuota,
    live: Arc<Live>,
    ledger: Arc<Ledger>,
    servers: Arc<ToolServers>,
    forwarder: Forwarder,
    mailer: Mailer,
    key: LinkKey,
    base_url: String,
}

impl Approvals {
    pub fn new(
        live: Arc<Live>,
        ledger: Arc<Ledger>,
        servers: Arc<ToolServers>,
        forwarder: Forwarder,
        mailer: Mailer,
        key: LinkKey,
        base_url: String,
    ) -> Arc<Approvals> {
        Arc::new(Approvals {
            open: Mutex::new(BTreeMap::new()),
            timers: Arc::default(),
            watchers: StdMutex::new(HashMap::new()),
            refusals: quota::RefusalQuota::default(),
            live,
            ledger,
            servers,
            forwarder,
            mailer,
            key,
            base_url: base_url.trim_end_matches('/').to_string(),
        })
    }

    /// Suspend a call: commit its rows and envelope durably, then mail the role and arm the timer.
    pub async fn open(
        self: &Arc<Self>,
        open: Open<'_>,
    ) -> Result<(String, watch::Receiver<Status>), LedgerError> {
        let d: &Decision = open.proposal.decision;
        let Verdict::Approve {
            role,
            timeout,
            on_timeout,
            expires_at,
        } = &d.verdict
        else {
            unreachable!("the gate opens approvals only for approve verdicts")
        };
        let now = crate::instant::now();
        let setup = open.setup;
        let rule = setup.policy.classes.get(&open.proposal.manifest.class);
        let emails = setup
            .policy
            .roles
            .get(role)
            .map(|r| r.emails.clone())
            .unwrap_or_default();
        let min = rule
            .map_or(1, |r| r.min_approvals)
            .min(u32::try_from(emails.len()).unwrap_or(1))
            .max(1);
        let envelope = envelope::build(&open.proposal, role, min, *on_timeout, now, *expires_at);
        let approval = Approval {
            id: uuid::Uuid::new_v4().to_string(),
            call_id: open.call_id.to_string(),
            envelope_hash: envelope.hash(),
            envelope,
            meta: open.proposal.meta.cloned(),
            timeout_secs: timeout.as_secs(),
            approvers: emails.clone(),
            approved_by: vec![],
            used: vec![],
            unsent: emails,
            status: Status::Pending,
            sealed: open.sealed,
            remind_pct: rule.and_then(|r| r.remind_at),
            reminded: None,
        };
        let mut rows = open.rows;
        rows.push(self.envelope_row(&approval));
        let mut items = vec![stored(&approval)?.new_one()];
        if let Some(fresh) = &open.retry {
            let item = crate::retry::Item::Approval(approval.id.clone());
            items.extend(fresh.states(item, open.call_id, now)?);
        }
        self.ledger
            .commit(Change {
                rows,
                items,
                ..Change::default()
            })
            .await?;
        let id = approval.id.clone();
        let rx = self.watch(&approval);
        Approvals::index(&mut *self.open.lock().await, &approval);
        self.after_new_stage(&id).await;
        Ok((id, rx))
    }

    fn envelope_row(&self, a: &Approval) -> NewRow {
        NewRow::now(
            &a.call_id,
            Row::Envelope(row::Envelope {
                approval_id: a.id.clone(),
                stage: a.envelope.stage,
                envelope: json!(a.envelope),
                envelope_hash: a.envelope_hash.clone(),
                approvers: a.approvers.clone(),
            }),
        )
    }

    fn watch(&self, a: &Approval) -> watch::Receiver<Status> {
        let mut w = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        w.entry(a.id.clone())
            .or_insert_with(|| watch::channel(a.status.clone()).0)
            .subscribe()
    }

    fn publish(&self, a: &Approval) {
        let w = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = w.get(&a.id) {
            tx.send_replace(a.status.clone());
        }
    }

    /// Follow an approval's status (for a waiting agent or `airlock_status`).
    pub async fn subscribe(&self, id: &str) -> Option<watch::Receiver<Status>> {
        let a = self.get(id).await?;
        Some(self.watch(&a))
    }

    /// An approval's last committed state (open or finished), read from the ledger.
    pub async fn get(&self, id: &str) -> Option<Approval> {
        self.load(id)
    }

    /// An approval as stored now (what [`Approvals::get`] answers, without waiting).
    pub fn load(&self, id: &str) -> Option<Approval> {
        self.load_raw(id).map(|(a, _)| a)
    }

    /// An approval's state with its stored bytes: a change made from it commits only if those
    /// bytes are still the stored ones (no other replica changed it meanwhile).
    fn load_raw(&self, id: &str) -> Option<(Approval, Vec<u8>)> {
        match self.ledger.approval(id) {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(a) => Some((a, bytes)),
                Err(e) => {
                    tracing::error!(approval = %id, error = %e, "unreadable approval state");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::error!(approval = %id, error = %e, "cannot read an approval");
                None
            }
        }
    }

    /// Follow a change committed elsewhere (another replica, or a race this one lost): mirror it
    /// in the index, arm its deadline, and tell whoever waits on it here.
    pub async fn refresh(self: &Arc<Self>, id: &str) {
        let Some(a) = self.load(id) else { return };
        let due = {
            let mut open = self.open.lock().await;
            Approvals::index(&mut open, &a);
            open.get(id).filter(|e| !e.executing).map(|e| e.expires_at)
        };
        if let Some(at) = due {
            self.timers.arm(self, at, id);
        }
        self.publish(&a);
    }

    /// Mirror a committed state in the in-memory index: open approvals only.
    fn index(open: &mut BTreeMap<String, Entry>, a: &Approval) {
        match Entry::of(a) {
            Some(entry) => {
                open.insert(a.id.clone(), entry);
            }
            None => {
                open.remove(&a.id);
            }
        }
    }

    /// Approvals waiting for a decision, by the role asked now.
    pub async fn pending_by_role(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in self.open.lock().await.values().filter(|e| !e.executing) {
            *out.entry(e.role.clone()).or_default() += 1;
        }
        out
    }

    /// How many approvals are open, and how many deadlines are armed.
    pub async fn open_count(&self) -> (usize, usize) {
        (self.open.lock().await.len(), self.timers.len())
    }

    /// The link of approver `slot` at the approval's current stage.
    pub fn link(&self, a: &Approval, slot: usize) -> String {
        let approver = a.approvers.get(slot).map_or("", String::as_str);
        self.link_to(&a.id, a.envelope.stage, slot, approver, &a.envelope_hash)
    }

    /// The link of `approver`, in `slot` of approval `id`'s `stage` asking about the envelope
    /// with `envelope_hash` (a chat channel's button, minted as it is sent, never stored).
    pub fn link_to(
        &self,
        id: &str,
        stage: u32,
        slot: usize,
        approver: &str,
        envelope_hash: &str,
    ) -> String {
        let token = self.key.token(id, stage, approver, envelope_hash);
        format!("{}/a/{id}/{slot}/{token}", self.base_url)
    }

    pub fn key(&self) -> &LinkKey {
        &self.key
    }

    /// Mail the current stage's unsent approvers and arm its timer.
    async fn after_new_stage(self: &Arc<Self>, id: &str) {
        let me = self.clone();
        let id2 = id.to_string();
        tokio::spawn(async move { me.send_unsent(&id2).await });
        self.arm_timer(id).await;
    }

    async fn arm_timer(self: &Arc<Self>, id: &str) {
        let Some(expires_at) = self.open.lock().await.get(id).map(|e| e.expires_at) else {
            return;
        };
        self.timers.arm(self, expires_at, id);
        self.arm_reminder(id).await;
    }

    /// Check a link: the approval exists, the slot is an approver of the current stage, the token
    /// is theirs for exactly this envelope.
    fn verify_link<'a>(
        &self,
        a: &'a Approval,
        slot: usize,
        token: &str,
    ) -> Result<&'a str, DeskError> {
        let approver = a.approvers.get(slot).ok_or(DeskError::BadLink)?;
        if self
            .key
            .verify_token(token, &a.id, a.envelope.stage, approver, &a.envelope_hash)
        {
            Ok(approver)
        } else {
            Err(DeskError::BadLink)
        }
    }

    fn next_role(&self, a: &Approval) -> Option<(String, Vec<String>)> {
        let setup = self.live.setup();
        let roles = &setup.policy.roles;
        let up = roles.get(&a.envelope.role)?.escalate_to.as_ref()?;
        roles.get(up).map(|r| (up.clone(), r.emails.clone()))
    }

    /// What the page shows. A GET never changes state; a bad link is logged.
    pub async fn view(&self, id: &str, slot: usize, token: &str) -> Result<View, DeskError> {
        let a = self.get(id).await.ok_or(DeskError::BadLink)?;
        match self.verify_link(&a, slot, token) {
            Ok(approver) => Ok(View {
                approver: approver.to_string(),
                can_escalate: self.next_role(&a).is_some(),
                approval: a,
                revealed: None,
            }),
            Err(e) => {
                self.log_refusal(&a, slot, "view", &e).await;
                Err(e)
            }
        }
    }

    /// Record a refused form submission on a valid link (bad or stale nonce).
    pub async fn log_form_refusal(&self, a: &Approval, slot: usize, reason: &str) {
        self.record_refusal(
            a,
            refused_link(a, Some(slot), None, "form", reason.to_string()),
        )
        .await;
    }

    async fn log_refusal(&self, a: &Approval, slot: usize, what: &str, e: &DeskError) {
        self.record_refusal(a, refused_link(a, Some(slot), None, what, e.to_string()))
            .await;
    }

    /// A `link_refused` row, at most [`REFUSALS_PER_MINUTE`] per approval per minute: anyone who
    /// knows an approval id can make refusals, and each row costs an fsync. The next row logged
    /// says how many were left out.
    async fn record_refusal(&self, a: &Approval, mut body: row::LinkRefused) {
        let Some(suppressed) = self.refusals.tally(&a.id, crate::instant::now()) else {
            return;
        };
        if suppressed > 0 {
            body.suppressed_before = Some(u64::from(suppressed));
        }
        if let Err(err) = self
            .ledger
            .append(vec![NewRow::now(&a.call_id, Row::LinkRefused(body))])
            .await
        {
            tracing::error!(error = %err, "cannot record a refused link use");
        }
    }

    /// Fold a step's consequences into the new state and its rows (still uncommitted).
    fn apply_step(
        &self,
        next: &mut Approval,
        step: &Step,
        by: &str,
        reason: &str,
        rows: &mut Vec<NewRow>,
    ) {
        match step {
            Step::Counted { .. } => {}
            Step::Approved => {
                let key = uuid::Uuid::new_v4().to_string();
                rows.push(NewRow::now(
                    &next.call_id,
                    Row::ExecutionIntent(row::ExecutionIntent {
                        approval_id: next.id.clone(),
                        idempotency_key: key.clone(),
                        arguments_sha256: next.envelope.arguments_sha256.clone(),
                        envelope_hash: next.envelope_hash.clone(),
                    }),
                ));
                next.status = Status::Executing {
                    idempotency_key: key,
                };
            }
            Step::Denied => {
                next.status = Status::Done(Outcome::Denied {
                    by: by.to_string(),
                    reason: reason.to_string(),
                });
                rows.push(closed_row(next));
                rows.extend(destroy_sealed(next, "denied"));
            }
            Step::Expired => {
                next.status = Status::Done(Outcome::Expired);
                rows.push(closed_row(next));
                rows.extend(destroy_sealed(next, "expired"));
            }
            Step::NewStage => rows.push(self.envelope_row(next)),
        }
    }

    /// Side effects after a committed step.
    async fn after(self: &Arc<Self>, step: Step, a: &Approval) {
        match step {
            Step::Approved => {
                let me = self.clone();
                let id = a.id.clone();
                tokio::spawn(async move { me.execute(&id).await });
            }
            Step::NewStage => self.after_new_stage(&a.id).await,
            Step::Counted { .. } | Step::Denied | Step::Expired => {}
        }
    }
}
