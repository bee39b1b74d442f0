//! Retries through the real binary: an agent that asks again attaches to the call it already
//! made (one approval, one set of mails, one held call), gets its settled outcome replayed (the
//! tool ran once), and an idempotency key names a separate call (reused with other arguments:
//! refused).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::smtp::{Smtp, decide};
use crate::support::{World, is_error, text};

const APPROVE_30M: &str =
    r#"{ path = "approve", role = "finance", timeout = "30m", on_timeout = "deny" }"#;

fn refund() -> Value {
    json!({"order_id": "A-1001", "amount_cents": 500, "reason": "damaged"})
}

fn approval_meta(r: &rmcp::model::CallToolResult) -> Value {
    serde_json::to_value(r).expect("json")["_meta"]["airlock/approval"].clone()
}

fn retry_rows<'a>(rows: &'a [Value], action: &str) -> Vec<&'a Value> {
    rows.iter()
        .filter(|r| r["kind"] == "retry" && r["body"]["action"] == action)
        .collect()
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn three_identical_calls_make_one_approval_and_a_retry_after_it_ran_gets_the_same_result() {
    crate::support::require(crate::support::Peer::Smtp);
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let agent = Arc::new(w.agent().await);
    let first = {
        let a = agent.clone();
        tokio::spawn(async move { a.call("refund_order", refund()).await })
    };
    let mail = smtp.wait_for("ann@example.com", "refund_order", 1).await;
    // both approvers are mailed before anyone decides (a decided approval mails nobody else)
    smtp.wait_for("bob@example.com", "refund_order", 1).await;
    // two retries while it waits: they attach to the same approval (no new envelope, no mail)
    let retries: Vec<_> = (0..2)
        .map(|_| {
            let a = agent.clone();
            tokio::spawn(async move { a.call("refund_order", refund()).await })
        })
        .collect();
    let (status, page) = decide(&mail.link(), "approve", &[]);
    assert_eq!(status, 200, "{page}");
    let mut results = vec![first.await.expect("first")];
    for r in retries {
        results.push(r.await.expect("retry"));
    }
    for r in &results {
        assert!(!is_error(r), "{}", text(r));
        assert!(text(r).contains("A-1001"), "{}", text(r));
    }
    // a retry after it ran: the same result, replayed, and the tool ran once
    let again = agent.call("refund_order", refund()).await;
    assert_eq!(text(&again), text(&results[0]));
    assert_eq!(w.executed("executed.jsonl"), ["refund_order"]);
    // one approval, one mail to each approver
    let all = smtp.all();
    for to in ["ann@example.com", "bob@example.com"] {
        let asked = all
            .iter()
            .filter(|m| m.to.contains(to) && m.subject.contains("Approve?"))
            .count();
        assert_eq!(asked, 1, "approval mails to {to}");
    }
    if let Ok(a) = Arc::try_unwrap(agent) {
        a.close().await;
    }
    w.wait_for_ledger().await;
    let rows = w.ledger_rows().await;
    assert_eq!(rows.iter().filter(|r| r["kind"] == "envelope").count(), 1);
    // the two retries attached (or, if they reached the gate after the decision, were replayed);
    // the last call was replayed: each names the one approval
    let (attached, replayed) = (retry_rows(&rows, "attach"), retry_rows(&rows, "replay"));
    assert_eq!(attached.len() + replayed.len(), 3, "{attached:?} {replayed:?}");
    assert!(!replayed.is_empty());
    let of: std::collections::BTreeSet<String> = attached
        .iter()
        .chain(&replayed)
        .map(|r| r["body"]["of"].to_string())
        .collect();
    assert_eq!(of.len(), 1, "{of:?}");
    assert_eq!(
        rows.iter().filter(|r| r["kind"] == "proposal").count(),
        4,
        "every call is recorded"
    );
}

#[tokio::test]
async fn a_held_call_is_attached_to_replayed_once_released_and_an_idempotency_key_names_another_call()
 {
    let w = crate::review::world();
    let agent = w.agent().await;
    let text_x = json!({"text": "x"});
    let first = agent.call("echo", text_x.clone()).await;
    let held = crate::review::held_id(&first);
    let again = agent.call("echo", text_x.clone()).await;
    assert_eq!(approval_meta(&again)["held_id"], held.as_str(), "{}", text(&again));
    assert!(text(&again).contains("held in quarantine"), "{}", text(&again));
    assert!(is_error(&again), "not run, as the first call was told");

    // with an idempotency key it is a call of its own; the same key with other arguments is refused
    let key = |k: &str| json!({"io.airlock/idempotency-key": k});
    let keyed = agent.call_with_meta("echo", text_x.clone(), key("k1")).await;
    let keyed_id = crate::review::held_id(&keyed);
    assert_ne!(keyed_id, held);
    // (long: a refused retry keeps its arguments only up to the cap, as any refused call)
    let long = "y".repeat(200 * 1024);
    let other = agent
        .call_with_meta("echo", json!({"text": long}), key("k1"))
        .await;
    assert!(is_error(&other));
    assert!(
        text(&other).contains("idempotency key `k1` already names another call"),
        "{}",
        text(&other)
    );
    let bad = agent.call_with_meta("echo", text_x.clone(), json!({"io.airlock/idempotency-key": 7})).await;
    assert!(is_error(&bad) && text(&bad).contains("must be a string"), "{}", text(&bad));

    // released, it runs once; asking again replays its result
    let out = w.airlock(&["quarantine", "release", &held, "--as", crate::review::REVIEWER]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replay = agent.call("echo", text_x).await;
    assert!(!is_error(&replay), "{}", text(&replay));
    assert_eq!(text(&replay), "x");
    assert_eq!(w.executed("executed.jsonl"), ["echo"]);
    agent.close().await;
    w.wait_for_ledger().await;
    let rows = w.ledger_rows().await;
    assert_eq!(rows.iter().filter(|r| r["kind"] == "held").count(), 2, "two held calls");
    assert_eq!(retry_rows(&rows, "attach").len(), 1);
    assert_eq!(retry_rows(&rows, "replay").len(), 1);
    let refused = retry_rows(&rows, "refused");
    assert_eq!(refused.len(), 2);
    let cut: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["kind"] == "proposal" && r["body"]["arguments_cut"] == true)
        .collect();
    assert_eq!(cut.len(), 1, "the long refused retry's proposal is cut");
    assert!(refused.iter().any(|r| r["call_id"] == cut[0]["call_id"]));
    assert_eq!(cut[0]["body"]["arguments"], serde_json::Value::Null);
    assert!(cut[0]["body"]["arguments_bytes"].as_u64().unwrap_or(0) > 200 * 1024);
}

#[tokio::test]
async fn an_autopilot_call_with_an_idempotency_key_runs_at_most_once_and_without_one_runs_each_time()
 {
    let w = crate::review::world();
    let agent = w.agent().await;
    let query = json!({"query": "A-1001"});
    let key = |k: &str| json!({"io.airlock/idempotency-key": k});
    let first = agent
        .call_with_meta("search_orders", query.clone(), key("s1"))
        .await;
    assert!(!is_error(&first), "{}", text(&first));
    let again = agent
        .call_with_meta("search_orders", query.clone(), key("s1"))
        .await;
    assert_eq!(text(&again), text(&first), "the recorded result, replayed");
    let other = agent
        .call_with_meta("search_orders", json!({"query": "A-1002"}), key("s1"))
        .await;
    assert!(is_error(&other) && text(&other).contains("already names another call"));
    assert_eq!(w.executed("executed.jsonl"), ["search_orders"], "ran once");
    // without a key, a read asked twice runs twice; another key is another call
    agent.call("search_orders", query.clone()).await;
    agent.call("search_orders", query.clone()).await;
    agent
        .call_with_meta("search_orders", query, key("s2"))
        .await;
    assert_eq!(w.executed("executed.jsonl").len(), 4);
    agent.close().await;
    let rows = w.ledger_rows().await;
    let replayed = retry_rows(&rows, "replay");
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0]["body"]["of"]["kind"], "call");
}

#[ignore = "needs the MCP Python SDK (the slow tool server); scripts/test runs it"]
#[tokio::test]
async fn a_keyed_call_still_running_or_cut_off_by_a_crash_is_never_run_again_even_past_its_window()
 {
    crate::support::require(crate::support::Peer::PythonSdk);
    let w = World::empty();
    let record = w.path("record");
    // the slow tool's class keeps repeats answered for only 1 s
    w.write(
        "p/policy.toml",
        "version = \"t\"\n[classes]\nread_only = { path = \"allow\", retry_window = \"1s\" }\n",
    );
    w.write(
        "m/slow.toml",
        "[[tool]]\nserver = \"slow\"\nname = \"slow\"\nclass = \"read_only\"\ntarget = \"nothing\"\nimpact = \"Waits, then says done\"\nreversal = \"none: it changes nothing\"\n",
    );
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = \"p\"\nledger = \"ledger.redb\"\nactor = \"agent:test\"\n\n[web]\nbind = \"127.0.0.1:0\"\n\n{}",
        crate::support::slow_server(&record),
    ));
    let key = || json!({"io.airlock/idempotency-key": "slow-1"});
    let long = || json!({"seconds": 120});
    let (agent, mut gate) = w.killable_agent().await;
    let agent = Arc::new(agent);
    let running = {
        let a = agent.clone();
        tokio::spawn(async move { a.try_call_with_meta("slow__slow", long(), key()).await })
    };
    assert_eq!(crate::support::record_after(&record, 0).await, ["started"]);
    // past the window, while it still runs: refused, not run
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let again = agent.call_with_meta("slow__slow", long(), key()).await;
    assert!(
        is_error(&again) && text(&again).contains("is running"),
        "{}",
        text(&again)
    );
    // Airlock is killed while it runs; after a restart a repeat is told the outcome is unknown
    gate.kill().await.expect("kill -9");
    let _ = running.await;
    let agent = w.agent().await;
    let after = agent.call_with_meta("slow__slow", long(), key()).await;
    assert!(
        is_error(&after) && text(&after).contains("outcome is unknown"),
        "{}",
        text(&after)
    );
    let started = std::fs::read_to_string(&record).unwrap_or_default();
    assert_eq!(
        started.lines().filter(|l| *l == "started").count(),
        1,
        "it ran once: {started}"
    );
    agent.close().await;
}

#[tokio::test]
async fn a_repeat_that_lost_its_idempotency_key_attaches_to_the_call_it_repeats() {
    let w = crate::review::world();
    let agent = w.agent().await;
    let args = json!({"text": "z"});
    let keyed = agent
        .call_with_meta("echo", args.clone(), json!({"io.airlock/idempotency-key": "k9"}))
        .await;
    let held = crate::review::held_id(&keyed);
    // a retry layer that drops `_meta` sends the same call without its key
    let plain = agent.call("echo", args).await;
    assert_eq!(approval_meta(&plain)["held_id"], held.as_str(), "{}", text(&plain));
    agent.close().await;
    let rows = w.ledger_rows().await;
    assert_eq!(rows.iter().filter(|r| r["kind"] == "held").count(), 1, "one held call");
}
