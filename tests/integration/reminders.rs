//! Reminders: at the class's `remind_at` share of a stage's timeout, the approvers who have not
//! decided get their link again (once per stage), the `reminder` row records it, and the role's
//! channels hear of it. Real SMTP (aiosmtpd) and the webhook receiver.

use std::sync::Arc;

use serde_json::json;

use crate::channels::{SECRET, VAR, finance_rule_with, received};
use crate::smtp::{Smtp, decide};
use crate::support::{Receiver, is_error, text};

const REMIND_AT_HALF: &str = r#"{ path = "approve", role = "finance", timeout = "20s", on_timeout = "deny", min_approvals = 2, remind_at = "50%" }"#;

#[ignore = "needs aiosmtpd and standardwebhooks; scripts/test runs it"]
#[tokio::test]
async fn the_approver_who_has_not_decided_is_reminded_once_and_the_channel_hears_of_it() {
    let receiver = Receiver::start(SECRET);
    let smtp = Smtp::start();
    let channel = format!(
        "[[channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = {:?}\nsecret_env = \"{VAR}\"\n",
        receiver.url("/hooks/ops")
    );
    let w = finance_rule_with(smtp.port, REMIND_AT_HALF, r#"["webhook:ops"]"#, &channel);
    let agent = Arc::new(w.agent_with_env(&[(VAR, SECRET)]).await);
    let a = agent.clone();
    let args = json!({"order_id": "A-1001", "amount_cents": 500, "reason": "damaged"});
    let waiting = tokio::spawn(async move { a.call("refund_order", args).await });
    let ann = smtp.wait_for("ann@example.com", "refund_order", 1).await;
    let bob = smtp.wait_for("bob@example.com", "refund_order", 1).await;
    let (status, page) = decide(&ann.link(), "approve", &[]);
    assert_eq!(status, 200, "{page}");

    // half of the 20 s timeout on: bob, who has not decided, gets his link again
    let reminder = smtp.wait_for("bob@example.com", "Reminder", 1).await;
    assert_eq!(
        reminder.subject,
        "[Airlock] Reminder: approve? Refund $5.00 on order A-1001 (refund_order)"
    );
    assert_eq!(reminder.link(), bob.link(), "his own link, as first mailed");
    let (status, page) = decide(&reminder.link(), "approve", &[]);
    assert_eq!(status, 200, "{page}");
    let result = waiting.await.expect("the call");
    assert!(!is_error(&result), "{}", text(&result));

    let reminders: Vec<String> = smtp
        .all()
        .iter()
        .filter(|m| m.subject.contains("Reminder"))
        .map(|m| m.to.clone())
        .collect();
    assert_eq!(reminders.len(), 1, "one reminder, to bob alone: {reminders:?}");
    // in ledger order: opened, ann's decision, the reminder
    let events = received(&receiver, 3).await;
    let reminded: Vec<_> = events
        .iter()
        .filter(|e| e["body"]["type"] == "approval.reminder")
        .collect();
    assert_eq!(reminded.len(), 1, "{events:#?}");
    assert_eq!(reminded[0]["body"]["data"]["waiting_on"], json!(["bob@example.com"]));
    assert_eq!(reminded[0]["verified"], true);
    if let Ok(a) = Arc::try_unwrap(agent) {
        a.close().await;
    }
    let rows = w.ledger_rows().await;
    let rows: Vec<_> = rows.iter().filter(|r| r["kind"] == "reminder").collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["body"]["to"], json!(["bob@example.com"]));
    assert_eq!(rows[0]["body"]["role"], "finance");
}
