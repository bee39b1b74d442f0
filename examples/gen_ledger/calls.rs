//! The rows of one gated call, shaped exactly as `airlock serve` writes them: the gate's
//! `proposal` and `verdict` (the verdict from the real `decide` over the generated setup), the
//! outcome, and for approvals the desk's `envelope`, `mail_sent`, `decision`, `execution_intent`,
//! `outcome` and `approval_closed` rows, with the approval's state for the approvals table.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use airlock::approval::link::LinkKey;
use airlock::approval::state::{Approval, Outcome, Status};
use airlock::canonical;
use airlock::config::Setup;
use airlock::decide::{self, Call, Context, Decision, Verdict};
use airlock::envelope::{self, Proposal};
use airlock::ledger::ItemState;
use airlock::ledger::{NewRow, Row, row};

/// What kind of call to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A call decided without a person (allow or deny): proposal, verdict, outcome.
    Autopilot,
    /// A refund waiting for finance: proposal, verdict, envelope, mail_sent.
    Pending,
    /// A refund approved, run and closed: the pending rows plus decision, execution_intent,
    /// outcome and approval_closed.
    Closed,
}

impl Kind {
    /// Rows the call adds (signature rows, added by the ledger writer, not counted).
    pub fn rows(self) -> u64 {
        match self {
            Kind::Autopilot => 3,
            Kind::Pending => 4,
            Kind::Closed => 8,
        }
    }
}

/// One generated call: its rows and, for approvals, (id, state) for the approvals table.
pub struct Generated {
    pub rows: Vec<NewRow>,
    pub approval: Option<ItemState>,
    /// For a pending approval: the path of its approver's link (`/a/{id}/0/{token}`).
    pub link: Option<String>,
}

/// Generates calls against one setup, on a simulated clock that advances `step` per call.
pub struct Gen<'a> {
    pub setup: &'a Setup,
    pub key: &'a LinkKey,
    /// The outbox directory, as `mail_sent` rows name it.
    pub outbox: String,
    pub clock: DateTime<Utc>,
    pub step: TimeDelta,
    pub rng: u64,
}

const ORDERS: [&str; 5] = ["A-1001", "A-1002", "A-1003", "A-1004", "A-1005"];
const EMAILS: [&str; 4] = [
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "dave@example.net",
];

impl Gen<'_> {
    /// SplitMix64: deterministic, no dependency.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        let i = usize::try_from(self.below(from.len() as u64)).unwrap_or(0);
        from.get(i).copied().unwrap_or("")
    }

    /// Advance the clock by `n` steps and return the new time.
    fn tick(&mut self, n: i32) -> DateTime<Utc> {
        self.clock += self.step * n;
        self.clock
    }

    /// An autopilot tool and its arguments, in a plausible mix (mostly reads).
    fn autopilot_call(&mut self) -> (&'static str, Value) {
        let order = self.pick(&ORDERS);
        match self.below(100) {
            0..55 => ("search_orders", json!({"query": order})),
            55..60 => (
                "echo",
                json!({"text": format!("ping {}", self.below(1_000_000))}),
            ),
            60..75 => ("tag_order", json!({"order_id": order, "tag": "checked"})),
            75..80 => ("untag_order", json!({"order_id": order, "tag": "checked"})),
            80..97 => {
                let to = self.pick(&EMAILS);
                (
                    "send_customer_email",
                    json!({"to": to, "subject": "Your order", "body": format!("Your order {order} has shipped."), "order_id": order}),
                )
            }
            _ => ("delete_customer", json!({"email": self.pick(&EMAILS)})),
        }
    }

    /// Decide a call with the real `decide` and write the gate's proposal and verdict rows.
    fn gate_rows(
        &self,
        call_id: &str,
        tool: &str,
        args: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(Decision, Vec<NewRow>), String> {
        let setup = self.setup;
        let (server, manifest) = setup
            .resolve_static(tool)
            .ok_or_else(|| format!("no manifest for `{tool}` in the generated setup"))?;
        let canonical_args = canonical::to_string(&Value::Object(args.clone()));
        let actor = setup.config.actor.as_str();
        let decision = decide::decide(
            &Call {
                tool,
                arguments: args,
                meta: None,
                canonical_len: canonical_args.len(),
                changed: None,
                reversal_served: true,
            },
            Some(manifest),
            &setup.policy,
            &Context {
                actor,
                now,
                usage: &airlock::drift::NoUsage,
            },
        );
        let proposal = row::Proposal {
            tool: tool.to_string(),
            server: Some(server.name.clone()),
            tool_name: Some(manifest.name.clone()),
            arguments: Value::Object(args.clone()),
            arguments_sha256: canonical::sha256_hex(canonical_args.as_bytes()),
            meta: None,
            actor: actor.to_string(),
            redacted: None,
            arguments_preview: None,
            arguments_cut: None,
            arguments_bytes: None,
        };
        let verdict = airlock::gate::verdict_body(
            &decision,
            setup.policy.is_signed(decision.class.as_deref()),
        );
        let rows = vec![
            NewRow::at(call_id, now, Row::Proposal(proposal)),
            NewRow::at(call_id, now, Row::Verdict(verdict)),
        ];
        Ok((decision, rows))
    }

    /// One call of `kind`.
    pub fn call(&mut self, kind: Kind) -> Result<Generated, String> {
        match kind {
            Kind::Autopilot => self.autopilot(),
            Kind::Pending | Kind::Closed => self.refund(kind == Kind::Closed),
        }
    }

    fn autopilot(&mut self) -> Result<Generated, String> {
        let call_id = uuid::Uuid::new_v4().to_string();
        let (tool, args) = self.autopilot_call();
        let args = args.as_object().cloned().unwrap_or_default();
        let now = self.tick(1);
        let (decision, mut rows) = self.gate_rows(&call_id, tool, &args, now)?;
        let outcome = match decision.verdict {
            Verdict::Allow => {
                let result = json!({"content": [{"type": "text", "text": format!("{tool} done {}", self.below(1_000_000))}], "isError": false});
                row::Outcome {
                    result_sha256: Some(canonical::sha256_hex(
                        canonical::to_string(&result).as_bytes(),
                    )),
                    duration_us: Some(150 + self.below(5_000)),
                    ..row::Outcome::of(row::OutcomeStatus::Ok)
                }
            }
            _ => row::Outcome::of(row::OutcomeStatus::NotRun),
        };
        rows.push(NewRow::at(&call_id, now, Row::Outcome(outcome)));
        Ok(Generated {
            rows,
            approval: None,
            link: None,
        })
    }

    /// A refund: opened for approval (and mailed); when `closed`, approved, run and closed.
    fn refund(&mut self, closed: bool) -> Result<Generated, String> {
        let call_id = uuid::Uuid::new_v4().to_string();
        let order = self.pick(&ORDERS);
        let cents = 100 + self.below(20_000);
        let args =
            json!({"order_id": order, "amount_cents": cents, "reason": "damaged in transit"});
        let args = args.as_object().cloned().unwrap_or_default();
        let now = self.tick(1);
        let (decision, mut rows) = self.gate_rows(&call_id, "refund_order", &args, now)?;
        let Verdict::Approve {
            role,
            timeout,
            on_timeout,
            expires_at,
        } = &decision.verdict
        else {
            return Err(format!(
                "refund_order was decided `{}`, not approve: the generated policy is wrong",
                decision.verdict.name()
            ));
        };
        let setup = self.setup;
        let (_, manifest) = setup
            .resolve_static("refund_order")
            .ok_or("no manifest for refund_order")?;
        let emails = setup
            .policy
            .roles
            .get(role)
            .map(|r| r.emails.clone())
            .unwrap_or_default();
        let approver = emails
            .first()
            .cloned()
            .ok_or("the finance role has no email")?;
        let actor = setup.config.actor.clone();
        let proposal = Proposal {
            tool: "refund_order",
            server: "shop",
            arguments: &args,
            meta: None,
            actor: &actor,
            manifest,
            decision: &decision,
        };
        let envelope = envelope::build(&proposal, role, 1, *on_timeout, now, *expires_at);
        let mut a = Approval {
            id: uuid::Uuid::new_v4().to_string(),
            call_id: call_id.clone(),
            envelope_hash: envelope.hash(),
            envelope,
            meta: None,
            timeout_secs: timeout.as_secs(),
            approvers: emails.clone(),
            approved_by: vec![],
            sealed: None,
            remind_pct: None,
            reminded: None,
            used: vec![],
            unsent: vec![],
            status: Status::Pending,
        };
        let id = a.id.clone();
        rows.push(NewRow::at(
            &call_id,
            now,
            Row::Envelope(row::Envelope {
                approval_id: id.clone(),
                stage: 0,
                envelope: json!(a.envelope),
                envelope_hash: a.envelope_hash.clone(),
                approvers: a.approvers.clone(),
            }),
        ));
        let mailed = self.tick(1);
        let about = row::MailAbout::Approval {
            approval_id: id.clone(),
            stage: 0,
        };
        let via = format!("{}/{id}-s0-0.eml", self.outbox);
        rows.push(NewRow::at(
            &call_id,
            mailed,
            Row::mail(about, &approver, Ok(via)),
        ));
        let mut link = None;
        if closed {
            self.close(&mut a, &approver, &mut rows)?;
        } else {
            let token = self.key.token(&id, 0, &approver, &a.envelope_hash);
            link = Some(format!("/a/{id}/0/{token}"));
        }
        let state = airlock::approval::stored(&a).map_err(|e| e.to_string())?;
        Ok(Generated {
            rows,
            approval: Some(state),
            link,
        })
    }

    /// Approve, run and close an opened approval, as the desk does.
    fn close(
        &mut self,
        a: &mut Approval,
        approver: &str,
        rows: &mut Vec<NewRow>,
    ) -> Result<(), String> {
        let (id, call_id) = (a.id.clone(), a.call_id.clone());
        let e = &a.envelope;
        let decided = self.tick(2);
        rows.push(NewRow::at(
            &call_id,
            decided,
            Row::Decision(row::Decision {
                approval_id: id.clone(),
                stage: 0,
                approver: approver.to_string(),
                choice: row::Choice::Approve,
                comment: "checked the photos".to_string(),
                seen_sha256: canonical::sha256_hex(id.as_bytes()),
                envelope_hash: a.envelope_hash.clone(),
                policy_version: e.policy_version.clone(),
                roles: None,
                auth: None,
                diff: None,
                new_envelope_hash: None,
                redacted: None,
            }),
        ));
        let key = uuid::Uuid::new_v4().to_string();
        rows.push(NewRow::at(
            &call_id,
            decided,
            Row::ExecutionIntent(row::ExecutionIntent {
                approval_id: id.clone(),
                idempotency_key: key.clone(),
                arguments_sha256: e.arguments_sha256.clone(),
                envelope_hash: a.envelope_hash.clone(),
            }),
        ));
        let text = format!(
            "refunded {} cents on {}",
            e.arguments["amount_cents"], e.arguments["order_id"]
        );
        let result = json!({"content": [{"type": "text", "text": text}], "isError": false});
        let result_sha = canonical::sha256_hex(canonical::to_string(&result).as_bytes());
        let done = self.tick(1);
        rows.push(NewRow::at(
            &call_id,
            done,
            Row::Outcome(row::Outcome {
                result_sha256: Some(result_sha.clone()),
                duration_us: Some(900 + self.below(9_000)),
                context: row::RunContext {
                    approval_id: Some(id.clone()),
                    idempotency_key: Some(key),
                    arguments_sha256: Some(e.arguments_sha256.clone()),
                    released_by: None,
                },
                ..row::Outcome::of(row::OutcomeStatus::Ok)
            }),
        ));
        rows.push(NewRow::at(
            &call_id,
            done,
            Row::ApprovalClosed(row::ApprovalClosed {
                approval_id: id,
                outcome: json!({"outcome": "executed", "is_error": false, "result_sha256": result_sha}),
            }),
        ));
        a.approved_by = vec![approver.to_string()];
        a.used = vec![approver.to_string()];
        a.status = Status::Done(Outcome::Executed {
            result,
            is_error: false,
        });
        Ok(())
    }
}
