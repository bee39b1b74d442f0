//! A decision posted from the approval page: verify the link, apply the pure rule, commit the
//! decision with its consequences (and how its decider was authenticated), then act. Refusals
//! are logged and change nothing.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{Approvals, DecisionForm, DeskError, stored};
use crate::approval::state::{Approval, Choice, NextRole, Step};
use crate::auth::Facts;
use crate::authority::{Matter, Refusal};
use crate::decide::{self, Verdict};
use crate::envelope::{self, Envelope, RedactedEdit};
use crate::ledger::{Change, LedgerError, NewRow, Row, row};

/// The authority rule the desk applies to a decider, as approvals ask it: the roles it grants,
/// or why not.
pub(crate) type AuthorityRule<'a> =
    &'a (dyn Fn(&Matter<'_>, &str) -> Result<Vec<String>, Refusal> + Sync);

impl Approvals {
    /// Apply a decision posted from the page by a decider authenticated as `auth` says (the
    /// caller checked it, [`crate::auth::Deciders::may_decide`]) and authorized by `authorize` (the
    /// desk's authority rule, asked here under the lock about the stage asked now). If another
    /// replica changed the approval between reading and committing, the decision is applied
    /// again to what it recorded (refused if that was a decision, recorded if it was only
    /// bookkeeping).
    pub(crate) async fn decide(
        self: &Arc<Self>,
        id: &str,
        slot: usize,
        token: &str,
        form: DecisionForm,
        auth: &Facts,
        authorize: AuthorityRule<'_>,
    ) -> Result<Step, DeskError> {
        let mut tries = 0;
        loop {
            match self
                .decide_once(id, slot, token, form.clone(), auth, authorize)
                .await
            {
                Err(DeskError::Ledger(LedgerError::Conflict(_))) if tries < 10 => tries += 1,
                other => return other,
            }
        }
    }

    async fn decide_once(
        self: &Arc<Self>,
        id: &str,
        slot: usize,
        token: &str,
        form: DecisionForm,
        auth: &Facts,
        authorize: AuthorityRule<'_>,
    ) -> Result<Step, DeskError> {
        let mut guard = self.open.lock().await;
        let Some((a, prior)) = self.load_raw(id) else {
            return Err(DeskError::BadLink);
        };
        let approver = match self.verify_link(&a, slot, token) {
            Ok(x) => x.to_string(),
            Err(e) => {
                drop(guard);
                self.log_refusal(&a, slot, "decide", &e).await;
                return Err(e);
            }
        };
        // the desk's one authority rule: no agent, not the requester, a member of the stage's
        // role now
        let matter = Matter::Approval {
            role: &a.envelope.role,
            requester: &a.envelope.actor,
        };
        let roles = match authorize(&matter, &approver) {
            Ok(roles) => roles,
            Err(r) => {
                drop(guard);
                let e = DeskError::Unauthorized(r);
                self.log_refusal(&a, slot, "decide", &e).await;
                return Err(e);
            }
        };
        // an approval that could not run here is not taken here (a modify opens them itself)
        if form.choice == Choice::Approve {
            let sealer = self.forwarder.sealer();
            if let Some(Err(e)) = a.sealed.as_ref().map(|s| sealer.open(&a.call_id, s)) {
                drop(guard);
                let err = DeskError::Unsealable(e.to_string());
                self.log_refusal(&a, slot, "decide", &err).await;
                return Err(err);
            }
        }
        let now = crate::instant::now();
        let mut next = a.clone();
        // a modification: what changed, the new envelope's hash, its redacted fields
        let (mut diff, mut new_envelope_hash, mut redacted) = (None, None, None);
        let result = match form.choice {
            Choice::Approve => next.vote(&approver, true, now),
            Choice::Deny => next.vote(&approver, false, now),
            Choice::Escalate => {
                let up = self.next_role(&next);
                next.escalate(
                    &approver,
                    up.as_ref().map(|(n, e)| NextRole { name: n, emails: e }),
                    now,
                )
            }
            Choice::Modify => {
                let edited = match self.modified(&next, form.arguments.as_deref().unwrap_or("")) {
                    Ok(e) => e,
                    Err(msg) => {
                        let err = DeskError::BadModification(msg);
                        drop(guard);
                        self.log_refusal(&a, slot, "modify", &err).await;
                        return Err(err);
                    }
                };
                diff = Some(envelope::diff(
                    &next.envelope.arguments,
                    &edited.envelope.arguments,
                ));
                new_envelope_hash = Some(edited.envelope.hash());
                redacted = edited.envelope.redacted.as_ref().map(|r| json!(r));
                next.sealed = edited.sealed;
                next.modify(&approver, edited.envelope, now)
            }
        };
        let step = match result {
            Ok(s) => s,
            Err(r) => {
                drop(guard);
                let e = DeskError::Refused(r);
                self.log_refusal(&a, slot, "decide", &e).await;
                return Err(e);
            }
        };
        let body = row::Decision {
            approval_id: a.id.clone(),
            stage: a.envelope.stage,
            approver: approver.clone(),
            choice: form.choice,
            comment: form.comment.clone(),
            seen_sha256: form.seen.clone(),
            envelope_hash: a.envelope_hash.clone(),
            policy_version: a.envelope.policy_version.clone(),
            roles: Some(roles),
            auth: Some(json!(auth)),
            diff,
            new_envelope_hash,
            redacted,
        };
        let mut rows = vec![NewRow::now(&a.call_id, Row::Decision(body))];
        if form.choice == Choice::Modify && step != Step::NewStage {
            // the edited envelope is what runs: record it whole (a new stage records its own)
            rows.push(self.envelope_row(&next));
        }
        self.apply_step(&mut next, &step, &approver, &form.comment, &mut rows);
        self.ledger
            .commit(Change {
                rows,
                items: vec![stored(&next)?.replacing(prior)],
                ..Change::default()
            })
            .await?;
        Approvals::index(&mut guard, &next);
        drop(guard);
        if matches!(step, Step::Approved | Step::Denied) {
            let waited = now - a.envelope.requested_at;
            crate::metrics::global().decided(waited.as_seconds_f64().max(0.0));
        }
        self.publish(&next);
        self.after(step.clone(), &next).await;
        Ok(step)
    }

    /// Record a decider refused by sign-in or second factor (`attempt` `sign_in` or
    /// `second_factor`) on decision `id`, as a `link_refused` row (rate-limited like the others).
    pub async fn log_auth_refusal(&self, id: &str, approver: &str, attempt: &str, reason: &str) {
        let Some(a) = self.load(id) else { return };
        let body = super::rows::refused_link(&a, None, Some(approver), attempt, reason.to_string());
        self.record_refusal(&a, body).await;
    }

    /// The edited arguments, validated against the tool's input schema and re-decided.
    fn modified(&self, a: &Approval, text: &str) -> Result<Modified, String> {
        let (setup, changed) = self.live.snapshot();
        if changed.contains_key(&(a.envelope.server.clone(), a.envelope.tool_name.clone())) {
            return Err("the tool's definition changed since this request was made".into());
        }
        let args = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(o)) => o,
            Ok(_) => return Err("the arguments must be a JSON object".into()),
            Err(e) => return Err(format!("not valid JSON: {e}")),
        };
        let e = &a.envelope;
        // a redacted value kept as its marker is put back; one the approver typed anew is new
        let (args, redacted) = self.unsealed(a, args)?;
        // Edited arguments are only accepted against the tool's own input schema.
        let def = self.servers.route_of(&e.server, &e.tool_name);
        let schema = def
            .as_ref()
            .and_then(|d| d.definition.get("inputSchema"))
            .ok_or("the tool server is not running, so the edit cannot be checked against the tool's input schema; approve or deny as is, or try later")?;
        let validator = jsonschema::validator_for(schema)
            .map_err(|err| format!("the tool's input schema is unusable: {err}"))?;
        // with redacted values in them, an error names where and what, never the value
        let secret = a.sealed.is_some();
        let problems: Vec<String> = validator
            .iter_errors(&Value::Object(args.clone()))
            .map(|err| match secret {
                true => format!("{} at `{}`", err.masked(), err.instance_path()),
                false => format!("{} at `{}`", err, err.instance_path()),
            })
            .collect();
        if !problems.is_empty() {
            return Err(format!(
                "they do not match the tool's input schema: {}",
                problems.join("; ")
            ));
        }
        let manifest = setup
            .manifests
            .get(&e.server, &e.tool_name)
            .ok_or("the tool's manifest is gone")?;
        let canonical_len = crate::canonical::to_string(&Value::Object(args.clone())).len();
        let d = decide::decide(
            &decide::Call {
                tool: &e.tool,
                arguments: &args,
                meta: a.meta.as_ref(),
                canonical_len,
                changed: None,
                reversal_served: true,
            },
            Some(manifest),
            &setup.policy,
            &decide::Context {
                actor: &e.actor,
                now: crate::instant::now(),
                // an approved call is not autopilot: rate limits do not count it
                usage: &crate::drift::NoUsage,
            },
        )
        .hiding(&manifest.redact);
        if matches!(d.verdict, Verdict::Deny | Verdict::Quarantine) {
            return Err(format!(
                "the edited call would be refused: {}",
                d.explanation()
            ));
        }
        // An edit may not move the call to another role's decision (a condition naming a
        // different role): that role, not this one, would have to approve it.
        if let Verdict::Approve { role, .. } = &d.verdict {
            if *role != e.role {
                return Err(format!(
                    "the edited call would need approval by role `{role}`, not `{}`: deny it and let the agent ask again",
                    e.role
                ));
            }
        }
        // what is recorded and shown: the manifest's fields taken out again, and sealed
        let keys = self.forwarder.sealer().keys();
        // the manifest's fields now, and every field sealed before (a reload may have dropped one)
        let mut pointers = manifest.redact.clone();
        for p in redacted
            .iter()
            .flat_map(|r| r.kept.iter().chain(&r.replaced))
        {
            if !pointers.contains(p) {
                pointers.push(p.clone());
            }
        }
        let r = crate::redact::redact(&args, &pointers, keys, &a.call_id);
        let sealed = match r.secrets.is_empty() {
            true => None,
            false => Some(
                self.forwarder
                    .sealer()
                    .seal(&a.call_id, &r.secrets)
                    .map_err(|err| format!("the redacted values cannot be sealed: {err}"))?,
            ),
        };
        let summary = crate::envelope::summarize(manifest, &e.tool, &r.arguments, a.meta.as_ref());
        Ok(Modified {
            envelope: e.with_arguments(r.arguments, summary, redacted),
            sealed,
        })
    }

    /// Edited arguments with each redacted value kept as its marker put back (a marker may
    /// only stay where it was), and which were kept and which replaced.
    fn unsealed(
        &self,
        a: &Approval,
        edited: Map<String, Value>,
    ) -> Result<(Map<String, Value>, Option<RedactedEdit>), String> {
        let Some(sealed) = &a.sealed else {
            return Ok((edited, None));
        };
        let secrets = self
            .forwarder
            .sealer()
            .open(&a.call_id, sealed)
            .map_err(|err| format!("the redacted values cannot be opened: {err}"))?;
        let before = Value::Object(
            a.envelope
                .arguments
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let now = Value::Object(edited.clone());
        let mut kept = Vec::new();
        for p in secrets.keys() {
            match (now.pointer(p), before.pointer(p)) {
                (Some(n), Some(b)) if crate::redact::digest_of(n).is_some() => {
                    if n != b {
                        return Err(format!(
                            "`{p}` holds a redacted marker that is not its own: keep its marker or type a new value"
                        ));
                    }
                    kept.push(p.clone());
                }
                _ => {}
            }
        }
        let (args, replaced) = crate::redact::restore(&edited, &secrets);
        Ok((args, Some(RedactedEdit { kept, replaced })))
    }
}

/// A modify's result: the new envelope (which says which redacted values the approver kept
/// or replaced) and its sealed values.
struct Modified {
    envelope: Envelope,
    sealed: Option<String>,
}
