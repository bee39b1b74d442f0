//! The agent's walk: one call down each path of the gate — autopilot, conditional, deny, a held
//! call and an approval — each told as it happens, with what it was in the end. It only calls
//! tools through the gate and reads the answers; every verdict is the gate's.

use std::time::Duration;

use airlock::mcp::client::StdioClient;
use anyhow::{Context, anyhow};
use serde_json::{Value, json};

use super::files::{DemoDir, HELD_TOOL};
use super::person::{Person, ReviewPage, link_in, outbox_files};
use super::progress::while_waiting;

/// How often a waiting agent asks `airlock_status` again.
const POLL: Duration = Duration::from_secs(1);

/// What became of one call.
pub(super) struct Outcome {
    pub(super) path: &'static str,
    pub(super) tool: &'static str,
    pub(super) became: String,
}

pub(super) struct Walk<'a> {
    agent: &'a StdioClient,
    dir: &'a DemoDir,
    person: Person,
    /// Names this run's calls as new ones: a demo run again in the same directory asks again
    /// instead of getting the first run's outcomes replayed (see README, "Asking again").
    run: String,
}

impl<'a> Walk<'a> {
    pub(super) fn new(agent: &'a StdioClient, dir: &'a DemoDir, person: Person) -> Walk<'a> {
        Walk {
            agent,
            dir,
            person,
            run: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Every path in turn; the outcomes, also printed as a summary.
    pub(super) async fn run(&self) -> anyhow::Result<Vec<Outcome>> {
        let outcomes = vec![
            self.plain(
                "autopilot",
                "1. autopilot: a read, which the policy lets run unasked (and records)",
                "search_orders",
                json!({"query": "A-1001"}),
            )
            .await?,
            self.plain(
                "conditional",
                "2. conditional: an email to a customer runs on autopilot only with its evidence (the order it is about)",
                "send_customer_email",
                json!({"to": "bob@example.com", "subject": "Your order", "body": "It has shipped.", "order_id": "A-1002"}),
            )
            .await?,
            self.plain(
                "deny",
                "3. deny: deleting a customer is never allowed from an agent",
                "delete_customer",
                json!({"email": "alice@example.com"}),
            )
            .await?,
            self.held().await?,
            self.approval().await?,
        ];
        println!("What became of each call:");
        for o in &outcomes {
            println!("  {:<12} {:<20} {}", o.path, o.tool, o.became);
        }
        println!();
        Ok(outcomes)
    }

    async fn call(&self, tool: &str, args: &Value) -> anyhow::Result<Value> {
        let key = format!("demo-{}-{tool}", self.run);
        let meta = serde_json::json!({ airlock::retry::IDEMPOTENCY_META: key });
        self.agent
            .call_with_meta(tool, args, meta.as_object().cloned())
            .await
            .with_context(|| format!("calling {tool} through the gate"))
    }

    /// A call the gate answers at once: it ran, or the policy refused it.
    async fn plain(
        &self,
        path: &'static str,
        what: &str,
        tool: &'static str,
        args: Value,
    ) -> anyhow::Result<Outcome> {
        println!("{what}\n  {tool} {args}");
        let r = while_waiting("waiting for the gate", self.call(tool, &args)).await?;
        let became = if !is_error(&r) {
            "ran".to_string()
        } else if verdict(&r) == "deny" {
            let rule = &r["_meta"]["airlock/decision"]["rule"];
            format!(
                "denied by the policy (rule {})",
                rule.as_str().unwrap_or("?")
            )
        } else {
            format!("refused: {}", text(&r))
        };
        println!("  → {became}: {}\n", text(&r));
        Ok(Outcome { path, tool, became })
    }

    /// A tool the shop serves but no manifest describes: held until a reviewer releases or
    /// rejects it on the review page.
    async fn held(&self) -> anyhow::Result<Outcome> {
        let args = json!({"text": "hello from the agent"});
        println!(
            "4. held: the shop serves `{HELD_TOOL}`, but no manifest describes it, and unknown never means allowed\n  {HELD_TOOL} {args}"
        );
        let r = while_waiting("waiting for the gate", self.call(HELD_TOOL, &args)).await?;
        let Some(id) = held_id(&r) else {
            let became = format!("not held: {}", text(&r));
            println!("  → {became}\n");
            return Ok(Outcome {
                path: "held",
                tool: HELD_TOOL,
                became,
            });
        };
        println!("  → held for review as {id}; it has not run.");
        let config = airlock::config::load_config(&self.dir.config).map_err(|d| anyhow!("{d}"))?;
        let page = ReviewPage::of(&config)?;
        println!("  Review page (it lists the held call): {}", page.url);
        match self.person {
            Person::InTheBrowser => println!(
                "  Open it, say who you are, and Release the call (it then runs once) or Reject it."
            ),
            p => {
                let verb = if p == Person::Approves {
                    "releasing"
                } else {
                    "rejecting"
                };
                println!("  {verb} it on the review page, as a reviewer would…");
                let id = id.clone();
                tokio::task::spawn_blocking(move || p.review(&page, &id)).await??;
            }
        }
        let r = while_waiting("waiting for the review", self.await_decision(&id)).await?;
        let became = if is_error(&r) {
            lowercase_first(
                text(&r)
                    .trim_end_matches(" The call was not run.")
                    .trim_end_matches('.'),
            )
        } else {
            "released in review, then ran".to_string()
        };
        finish("held", HELD_TOOL, became, &r)
    }

    /// A refund: it needs a person with role `finance`, who decides on the mailed link.
    async fn approval(&self) -> anyhow::Result<Outcome> {
        let tool = "refund_order";
        // a card number the shop's manifest redacts: the tool gets it, no record or page does
        let args = json!({"order_id": "A-1001", "amount_cents": 4599, "reason": "damaged in transit", "card_number": "4111111111111111"});
        println!(
            "5. approval: a refund moves money, so a person with role `finance` must decide\n  {tool} {args}"
        );
        let before = outbox_files(&self.dir.outbox);
        let call = self.call(tool, &args);
        tokio::pin!(call);
        let mail = tokio::select! {
            r = &mut call => return self.approved_or_not(r?, false).await,
            mail = while_waiting("waiting for the approval mail", self.new_mail(&before)) => mail,
        };
        println!(
            "  → needs approval: the gate mailed the finance approvers ({}), and the call waits.",
            mail.0.display()
        );
        println!("  The approver's link: {}", mail.1);
        match self.person {
            Person::InTheBrowser => println!(
                "  Open it, look at the request, and decide (Approve, Deny, Modify or Escalate)."
            ),
            p => {
                let verb = if p == Person::Approves {
                    "Approve"
                } else {
                    "Deny"
                };
                println!("  pressing {verb} on that page, as the approver would…");
                let link = mail.1.clone();
                tokio::task::spawn_blocking(move || p.decide(&link)).await??;
            }
        }
        let r = while_waiting("waiting for the decision", &mut call).await?;
        self.approved_or_not(r, true).await
    }

    /// The refund's outcome (asking `airlock_status` while it is still pending).
    async fn approved_or_not(&self, first: Value, asked: bool) -> anyhow::Result<Outcome> {
        let r = match first["_meta"]["airlock/approval"]["approval_id"].as_str() {
            Some(id) if pending(&first) => {
                let id = id.to_string();
                while_waiting("waiting for the decision", self.await_decision(&id)).await?
            }
            _ => first,
        };
        let became = match (is_error(&r), asked) {
            (false, true) => "approved, then ran".to_string(),
            (false, false) => "ran without approval".to_string(),
            (true, _) => lowercase_first(
                text(&r)
                    .trim_end_matches(" The call was not run.")
                    .trim_end_matches('.'),
            ),
        };
        finish("approval", "refund_order", became, &r)
    }

    /// The answer for approval or held call `id` once it is decided (and ran, if it runs).
    async fn await_decision(&self, id: &str) -> anyhow::Result<Value> {
        loop {
            let r = self
                .call(
                    airlock::mcp::upstream::STATUS_TOOL,
                    &json!({"approval_id": id}),
                )
                .await?;
            if !pending(&r) {
                return Ok(r);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The first new approval mail in the outbox, and its link.
    async fn new_mail(
        &self,
        before: &std::collections::BTreeSet<std::path::PathBuf>,
    ) -> (std::path::PathBuf, String) {
        loop {
            let now = outbox_files(&self.dir.outbox);
            if let Some(found) = now
                .difference(before)
                .find_map(|p| link_in(p).map(|l| (p.clone(), l)))
            {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Say what became of the call (with the tool's answer when it ran) and keep it for the summary.
fn finish(
    path: &'static str,
    tool: &'static str,
    became: String,
    r: &Value,
) -> anyhow::Result<Outcome> {
    if is_error(r) {
        println!("  → {became}\n");
    } else {
        println!("  → {became}: {}\n", text(r));
    }
    Ok(Outcome { path, tool, became })
}

fn is_error(r: &Value) -> bool {
    r["isError"] == true
}

fn verdict(r: &Value) -> &str {
    r["_meta"]["airlock/decision"]["verdict"]
        .as_str()
        .unwrap_or("")
}

/// Still waiting: held, pending or running.
fn pending(r: &Value) -> bool {
    matches!(
        r["_meta"]["airlock/approval"]["state"].as_str(),
        Some("held" | "pending" | "executing")
    )
}

/// The id a held call is reviewed under (the gate says it in its answer).
fn held_id(r: &Value) -> Option<String> {
    if verdict(r) != "quarantine" {
        return None;
    }
    let t = text(r);
    let rest = &t[t.find("held for review as `")? + "held for review as `".len()..];
    rest.split('`').next().map(str::to_string)
}

fn text(r: &Value) -> String {
    r["content"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["text"].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}
