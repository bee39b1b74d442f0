//! Outcome rows of autopilot calls. The agent is answered once the outcome row is queued; the
//! row joins the next group commit. A call the gate forwarded but whose outcome it never
//! recorded (it died first) gets an `unknown` outcome row at the next start, and a clean stop
//! commits every queued row.

use std::sync::Arc;

use serde_json::json;

use crate::smtp::free_port;
use crate::support::{World, is_error, rows_for};

fn refund() -> serde_json::Value {
    json!({"order_id": "A-1001", "amount_cents": 900, "reason": "damaged"})
}

#[tokio::test]
async fn a_call_cut_off_by_a_crash_gets_an_unknown_outcome_at_the_next_start() {
    // refunds are autopilot here, and the shop takes a minute over each
    let w = World::approvals_with(
        free_port(),
        r#"{ path = "allow" }"#,
        &["--refund-delay-ms", "60000"],
    );
    let (agent, mut child) = w.killable_agent().await;
    let agent = Arc::new(agent);
    let call = {
        let a = agent.clone();
        tokio::spawn(async move { a.try_call("refund_order", refund()).await })
    };
    // the shop has started the refund (it logs before its slow part) when the gate dies
    assert_eq!(w.wait_executed("executed.jsonl").await, ["refund_order"]);
    child.kill().await.expect("kill -9");
    assert!(call.await.expect("agent task").is_err());
    drop(agent);

    // the next start records what it cannot know, once
    let (agent2, _child2) = w.killable_agent().await;
    let echo = agent2.call("echo", json!({"text": "after"})).await;
    assert!(!is_error(&echo));
    agent2.close().await;
    let rows = w.ledger_rows().await;
    let refund_id = rows
        .iter()
        .find(|r| r["kind"] == "proposal" && r["body"]["tool"] == "refund_order")
        .and_then(|r| r["call_id"].as_str())
        .expect("the refund's proposal")
        .to_string();
    let outcomes = rows_for(&rows, "outcome", &refund_id);
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0]["body"]["status"], "unknown");
    assert_eq!(outcomes[0]["body"]["tool"], "refund_order");
    assert_eq!(
        w.executed("executed.jsonl"),
        ["refund_order", "echo"],
        "never run a second time"
    );

    // a third start finds nothing left to settle
    let (agent3, _child3) = w.killable_agent().await;
    agent3.close().await;
    let again = w.ledger_rows().await;
    assert_eq!(rows_for(&again, "outcome", &refund_id).len(), 1);
}

#[tokio::test]
async fn every_call_answered_has_its_outcome_after_a_clean_stop_either_way() {
    for wait in [false, true] {
        let w = World::demo();
        if wait {
            let cfg = std::fs::read_to_string(w.config()).expect("config");
            w.write_config(&cfg.replace("[gate]\n", "[gate]\noutcome_before_reply = true\n"));
        }
        let agent = Arc::new(w.agent().await);
        let calls: Vec<_> = (0..40)
            .map(|i| {
                let a = agent.clone();
                tokio::spawn(async move { a.call("echo", json!({"text": format!("n{i}")})).await })
            })
            .collect();
        for c in calls {
            assert!(!is_error(&c.await.expect("call")));
        }
        Arc::into_inner(agent).expect("one owner").close().await;
        let rows = w.ledger_rows().await;
        let proposals: Vec<&str> = rows
            .iter()
            .filter(|r| r["kind"] == "proposal")
            .filter_map(|r| r["call_id"].as_str())
            .collect();
        assert_eq!(proposals.len(), 40);
        for id in proposals {
            let outcomes = rows_for(&rows, "outcome", id);
            assert_eq!(
                outcomes.len(),
                1,
                "call {id} (outcome_before_reply = {wait})"
            );
            assert_eq!(outcomes[0]["body"]["status"], "ok");
        }
    }
}
