//! Approvals end to end: a real SMTP server receives the mail, the test follows the link over real
//! HTTP and decides as an approver would, and the waiting agent gets the outcome.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::smtp::{Smtp, approval_id, decide, field, free_port, get, get_with_headers, post};
use crate::support::{Agent, World, is_error, text};

const APPROVE_30M: &str =
    r#"{ path = "approve", role = "finance", timeout = "30m", on_timeout = "deny" }"#;

fn refund(amount: u64) -> Value {
    json!({"order_id": "A-1001", "amount_cents": amount, "reason": "damaged"})
}

/// Call refund_order in the background; the call waits for a decision.
fn call_in_background(
    agent: &Arc<Agent>,
    args: Value,
) -> tokio::task::JoinHandle<rmcp::model::CallToolResult> {
    let a = agent.clone();
    tokio::spawn(async move { a.call("refund_order", args).await })
}

async fn finish(agent: Arc<Agent>) {
    if let Ok(a) = Arc::try_unwrap(agent) {
        a.close().await;
    }
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn approve_runs_the_call_once_and_the_ledger_tells_the_whole_story() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let agent = Arc::new(w.agent().await);
    let waiting = call_in_background(&agent, refund(500));

    let mail = smtp.wait_for("ann@example.com", "refund_order", 1).await;
    assert_eq!(
        mail.subject,
        "[Airlock] Approve? Refund $5.00 on order A-1001 (refund_order)"
    );
    assert_eq!(
        mail.body.lines().next(),
        Some("Refund $5.00 on order A-1001 (refund_order)"),
        "the summary is the first line"
    );
    for line in [
        "Action:    refund_order",
        "Class:     financial",
        "Actor:     agent:test",
        "Target:    payments.refunds",
        "Reversal:  none: refunds cannot be clawed back",
    ] {
        assert!(
            mail.body.contains(line),
            "mail lacks `{line}`:\n{}",
            mail.body
        );
    }
    smtp.wait_for("bob@example.com", "refund_order", 1).await;
    let link = mail.link();

    let (_, headers, _) = get_with_headers(&link);
    assert_eq!(
        headers.get("cache-control").map(String::as_str),
        Some("no-store")
    );
    assert_eq!(
        headers.get("referrer-policy").map(String::as_str),
        Some("no-referrer")
    );
    assert!(
        headers.get("content-security-policy").is_some_and(|c| c
            .contains("frame-ancestors 'none'")
            && c.contains("default-src 'none'")),
        "{headers:?}"
    );

    // Mail scanners: repeated GETs without cookies change nothing.
    for _ in 0..3 {
        let (status, page) = get(&link);
        assert_eq!(status, 200);
        assert!(page.contains("Waiting for a decision (0 of 1"), "{page}");
    }
    assert!(
        w.executed("executed.jsonl").is_empty(),
        "nothing runs on GET"
    );

    let (_, page) = get(&link);
    let form = [
        ("nonce", field(&page, "nonce")),
        ("rendered_at", field(&page, "rendered_at")),
        ("seen", field(&page, "seen")),
        ("action", "approve".into()),
        ("comment", "customer sent photos".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = post(&link, &form);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Approved"), "{page}");
    let result = waiting.await.expect("agent task");
    assert!(!is_error(&result), "{}", text(&result));
    assert_eq!(text(&result), "refunded 500 cents on A-1001");

    // A replayed POST is refused and runs nothing; the page no longer offers a form.
    let (status, _) = post(&link, &form);
    assert_eq!(status, 403, "a used link cannot decide again");
    assert!(get(&link).1.contains("Approved and executed"));
    finish(agent).await;
    assert_eq!(
        w.executed("executed.jsonl"),
        ["refund_order"],
        "executed exactly once"
    );

    let rows = w.ledger_rows().await;
    let kinds: Vec<&str> = rows
        .iter()
        .filter(|r| {
            r["call_id"] == rows.iter().find(|r| r["kind"] == "envelope").unwrap()["call_id"]
        })
        .map(|r| r["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        &kinds[..3],
        ["proposal", "verdict", "envelope"],
        "the envelope is durable with the proposal: {kinds:?}"
    );
    for kind in [
        "mail_sent",
        "decision",
        "execution_intent",
        "outcome",
        "approval_closed",
    ] {
        assert!(kinds.contains(&kind), "missing {kind} in {kinds:?}");
    }
    let envelope = rows
        .iter()
        .find(|r| r["kind"] == "envelope")
        .expect("envelope row");
    assert_eq!(envelope["body"]["envelope"]["role"], "finance");
    assert_eq!(
        envelope["body"]["envelope"]["policy_version"],
        "test-approvals"
    );
    assert_eq!(envelope["body"]["envelope"]["on_timeout"], "deny");
    let decision = rows
        .iter()
        .find(|r| r["kind"] == "decision")
        .expect("decision row");
    assert_eq!(decision["body"]["approver"], "ann@example.com");
    assert_eq!(decision["body"]["choice"], "approve");
    assert_eq!(decision["body"]["comment"], "customer sent photos");
    assert_eq!(
        decision["body"]["seen_sha256"].as_str().map(str::len),
        Some(64),
        "hash of the page the approver saw"
    );
    let outcome = rows
        .iter()
        .find(|r| r["kind"] == "outcome" && r["body"]["approval_id"].is_string())
        .expect("outcome row");
    assert_eq!(
        outcome["body"]["arguments_sha256"],
        envelope["body"]["envelope"]["arguments_sha256"]
    );
    assert!(
        rows.iter().any(|r| r["kind"] == "link_refused"),
        "the replay is logged"
    );
    let verify = w.airlock(&["ledger", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn deny_tells_the_agent_the_reason_and_nothing_runs() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let agent = Arc::new(w.agent().await);
    let waiting = call_in_background(&agent, refund(500));
    let link = smtp
        .wait_for("bob@example.com", "refund_order", 1)
        .await
        .link();
    let (status, page) = decide(
        &link,
        "deny",
        &[("comment", "refund already issued by phone")],
    );
    assert_eq!(status, 200, "{page}");
    let result = waiting.await.expect("agent task");
    assert!(is_error(&result));
    assert!(
        text(&result).contains("Denied by bob@example.com: refund already issued by phone"),
        "{}",
        text(&result)
    );
    finish(agent).await;
    assert!(w.executed("executed.jsonl").is_empty());
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn modify_runs_exactly_the_edited_arguments_and_bad_edits_are_refused() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let agent = Arc::new(w.agent().await);
    let waiting = call_in_background(&agent, refund(5000));
    let link = smtp
        .wait_for("ann@example.com", "refund_order", 1)
        .await
        .link();

    let (status, page) = decide(
        &link,
        "modify",
        &[(
            "arguments",
            r#"{"order_id": "A-1001", "amount_cents": "lots", "reason": "x"}"#,
        )],
    );
    assert_eq!(status, 422, "schema violation refused: {page}");
    assert!(page.contains("input schema"), "{page}");
    let (status, _) = decide(&link, "modify", &[("arguments", "[1, 2]")]);
    assert_eq!(status, 422);

    let edited = r#"{"order_id": "A-1001", "amount_cents": 1500, "reason": "partial refund"}"#;
    let (status, page) = decide(
        &link,
        "modify",
        &[("arguments", edited), ("comment", "only the broken item")],
    );
    assert_eq!(status, 200, "{page}");
    let result = waiting.await.expect("agent task");
    assert_eq!(text(&result), "refunded 1500 cents on A-1001");
    finish(agent).await;

    let executed = std::fs::read_to_string(w.path("executed.jsonl")).expect("log");
    let ran: Value =
        serde_json::from_str(executed.lines().next().expect("one line")).expect("json");
    assert_eq!(ran["arguments"]["amount_cents"], 1500);
    let rows = w.ledger_rows().await;
    let decision = rows
        .iter()
        .find(|r| r["kind"] == "decision" && r["body"]["choice"] == "modify")
        .expect("modify row");
    assert_eq!(
        decision["body"]["diff"][0],
        json!({"op": "replace", "path": "/amount_cents", "before": 5000, "after": 1500})
    );
    let new_hash = decision["body"]["new_envelope_hash"]
        .as_str()
        .expect("new hash");
    assert_ne!(decision["body"]["envelope_hash"].as_str(), Some(new_hash));
    assert_eq!(
        rows.iter()
            .filter(|r| r["kind"] == "link_refused" && r["body"]["attempt"] == "modify")
            .count(),
        2
    );
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn escalate_asks_the_senior_role_by_mail() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let agent = Arc::new(w.agent().await);
    let waiting = call_in_background(&agent, refund(900));
    let link = smtp
        .wait_for("ann@example.com", "refund_order", 1)
        .await
        .link();
    let (status, page) = decide(&link, "escalate", &[("comment", "above my limit")]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Escalated"), "{page}");
    // ann's and bob's links are void now
    let bob = smtp
        .wait_for("bob@example.com", "refund_order", 1)
        .await
        .link();
    assert_eq!(get(&bob).0, 404);
    let cfo = smtp.wait_for("cfo@example.com", "refund_order", 1).await;
    assert!(cfo.body.contains("decision from role cfo"), "{}", cfo.body);
    let (status, _) = decide(&cfo.link(), "approve", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        text(&waiting.await.expect("agent")),
        "refunded 900 cents on A-1001"
    );
    finish(agent).await;
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn forged_cross_and_incomplete_requests_are_refused() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let agent = Arc::new(w.agent().await);
    let first = call_in_background(&agent, refund(100));
    let ann = smtp
        .wait_for("ann@example.com", "refund_order", 1)
        .await
        .link();
    let second = call_in_background(&agent, refund(200));
    let ann2 = smtp
        .wait_for_new("ann@example.com", "refund_order", &[&ann])
        .await
        .link();
    let bob = smtp
        .wait_for_approval("bob@example.com", &approval_id(&ann))
        .await
        .link();

    let parts = |l: &str| l.rsplitn(4, '/').map(str::to_string).collect::<Vec<_>>(); // token, slot, id, prefix
    let (a, a2, b) = (parts(&ann), parts(&ann2), parts(&bob));
    let forged = format!("{}/{}/{}/{}", a[3], a[2], a[1], "00".repeat(32));
    let cross_approver = format!("{}/{}/{}/{}", b[3], b[2], b[1], a[0]); // ann's token in bob's slot
    let cross_envelope = format!("{}/{}/{}/{}", a2[3], a[2], a2[1], a2[0]); // second approval's token on the first
    for bad in [&forged, &cross_approver, &cross_envelope] {
        assert_eq!(get(bad).0, 404, "{bad}");
        assert_eq!(post(bad, &[("action", "approve")]).0, 404, "{bad}");
    }
    // a POST that did not come from the rendered page (no nonce) is refused
    let (status, _) = post(&ann, &[("action", "approve")]);
    assert_eq!(status, 403);
    let (_, page) = get(&ann);
    let (status, _) = post(
        &ann,
        &[
            ("action", "approve"),
            ("nonce", &field(&page, "nonce")),
            ("rendered_at", "1"),
            ("seen", &field(&page, "seen")),
        ],
    );
    assert_eq!(status, 403, "nonce bound to its render time");
    assert!(w.executed("executed.jsonl").is_empty());

    // the real links still work
    assert_eq!(decide(&ann, "deny", &[]).0, 200);
    assert_eq!(decide(&ann2, "deny", &[]).0, 200);
    assert!(is_error(&first.await.expect("agent")));
    assert!(is_error(&second.await.expect("agent")));
    finish(agent).await;
    let rows = w.ledger_rows().await;
    assert!(
        rows.iter().filter(|r| r["kind"] == "link_refused").count() >= 6,
        "refused uses are logged"
    );
    assert!(rows.iter().all(|r| r["kind"] != "execution_intent"));
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn two_approvers_are_needed_and_a_duplicate_click_counts_once() {
    let smtp = Smtp::start();
    let w = World::approvals(
        smtp.port,
        r#"{ path = "approve", role = "finance", timeout = "30m", min_approvals = 2 }"#,
    );
    let agent = Arc::new(w.agent().await);
    let waiting = call_in_background(&agent, refund(700));
    let ann = smtp
        .wait_for("ann@example.com", "refund_order", 1)
        .await
        .link();
    let bob = smtp
        .wait_for("bob@example.com", "refund_order", 1)
        .await
        .link();
    let (status, page) = decide(&ann, "approve", &[]);
    assert_eq!(status, 200);
    assert!(page.contains("More approvals are needed"), "{page}");
    assert!(
        get(&ann)
            .1
            .contains("Your decision on this request is recorded")
    );
    let (_, page) = get(&bob);
    assert!(page.contains("1 of 2 approvals"), "{page}");
    assert!(
        w.executed("executed.jsonl").is_empty(),
        "one approval is not enough"
    );
    assert_eq!(decide(&bob, "approve", &[]).0, 200);
    assert_eq!(
        text(&waiting.await.expect("agent")),
        "refunded 700 cents on A-1001"
    );
    finish(agent).await;
    assert_eq!(w.executed("executed.jsonl"), ["refund_order"]);
}

async fn timed_out(policy: &str) -> (World, Smtp, rmcp::model::CallToolResult, Vec<Value>) {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, policy);
    let agent = Arc::new(w.agent().await);
    let result = agent.call("refund_order", refund(300)).await;
    if let Ok(a) = Arc::try_unwrap(agent) {
        a.close().await;
    }
    let rows = w.ledger_rows().await;
    (w, smtp, result, rows)
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn timeouts_deny_expire_or_escalate_and_each_is_a_ledger_row() {
    crate::support::require(crate::support::Peer::Smtp);
    let (w, _smtp, r, rows) =
        timed_out(r#"{ path = "approve", role = "finance", timeout = "1s", on_timeout = "deny" }"#)
            .await;
    assert!(
        is_error(&r) && text(&r).contains("No decision before the approval expired"),
        "{}",
        text(&r)
    );
    assert_eq!(rows.iter().filter(|r| r["kind"] == "timeout").count(), 1);
    assert!(w.executed("executed.jsonl").is_empty());

    let (w, _smtp, r, rows) = timed_out(
        r#"{ path = "approve", role = "finance", timeout = "1s", on_timeout = "expire" }"#,
    )
    .await;
    assert!(
        is_error(&r) && text(&r).contains("expired without a decision"),
        "{}",
        text(&r)
    );
    let closed = rows
        .iter()
        .find(|r| r["kind"] == "approval_closed")
        .expect("closed row");
    assert_eq!(closed["body"]["outcome"]["outcome"], "expired");
    assert!(w.executed("executed.jsonl").is_empty());

    // escalate: finance times out → cfo is mailed with a fresh clock → cfo times out → deny
    let (_w, smtp, r, rows) = timed_out(
        r#"{ path = "approve", role = "finance", timeout = "1s", on_timeout = "escalate" }"#,
    )
    .await;
    assert!(
        is_error(&r) && text(&r).contains("No decision"),
        "{}",
        text(&r)
    );
    smtp.wait_for("cfo@example.com", "refund_order", 1).await;
    let timeouts: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "timeout").collect();
    assert_eq!(timeouts.len(), 2, "one per stage");
    assert_eq!(timeouts[0]["body"]["role"], "finance");
    assert_eq!(timeouts[1]["body"]["role"], "cfo");
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn kill_9_with_approvals_pending_loses_nothing_and_runs_nothing_twice() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let (agent, mut child) = w.killable_agent().await;
    let agent = Arc::new(agent);
    let calls: Vec<_> = [101, 102, 103]
        .into_iter()
        .map(|n| {
            let a = agent.clone();
            tokio::spawn(async move { a.try_call("refund_order", refund(n)).await })
        })
        .collect();
    let mut links: Vec<String> = Vec::new();
    for _ in 1..=3 {
        let seen: Vec<&str> = links.iter().map(String::as_str).collect();
        let next = smtp
            .wait_for_new("ann@example.com", "refund_order", &seen)
            .await
            .link();
        links.push(next);
    }
    child.kill().await.expect("kill -9");
    for c in calls {
        let ended = c.await.expect("agent task");
        assert!(
            ended.is_err(),
            "the connection died with the gate: {ended:?}"
        );
    }
    drop(agent);

    // restart on the same ledger and key: everything is still pending and decidable
    let (agent2, _child2) = w.killable_agent().await;
    for l in &links {
        let (status, page) = get(l);
        assert_eq!(status, 200, "link survives the restart");
        assert!(page.contains("Waiting for a decision"), "{page}");
    }
    assert_eq!(decide(&links[0], "approve", &[]).0, 200);
    let id = approval_id(&links[0]);
    let mut result = None;
    for _ in 0..200 {
        let r = agent2
            .call("airlock_status", json!({"approval_id": id}))
            .await;
        if !text(&r).contains("has not finished") {
            result = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let result = result.expect("approved call finished");
    assert!(
        text(&result).starts_with("refunded 10"),
        "{}",
        text(&result)
    );
    let pending = agent2
        .call(
            "airlock_status",
            json!({"approval_id": approval_id(&links[1])}),
        )
        .await;
    assert!(
        text(&pending).contains("is waiting for approval"),
        "{}",
        text(&pending)
    );
    agent2.close().await;

    assert_eq!(
        w.executed("executed.jsonl"),
        ["refund_order"],
        "one approved, one run"
    );
    let rows = w.ledger_rows().await;
    assert_eq!(
        rows.iter().filter(|r| r["kind"] == "envelope").count(),
        3,
        "no envelope lost"
    );
    assert_eq!(
        rows.iter().filter(|r| r["kind"] == "gate_started").count(),
        2
    );
    let verify = w.airlock(&["ledger", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn a_crash_while_an_approved_call_runs_is_never_retried() {
    let smtp = Smtp::start();
    let w = World::approvals_with(smtp.port, APPROVE_30M, &["--refund-delay-ms", "60000"]);
    let (agent, mut child) = w.killable_agent().await;
    let agent = Arc::new(agent);
    let call = {
        let a = agent.clone();
        tokio::spawn(async move { a.try_call("refund_order", refund(4200)).await })
    };
    let link = smtp
        .wait_for("ann@example.com", "refund_order", 1)
        .await
        .link();
    assert_eq!(decide(&link, "approve", &[]).0, 200);
    // the tool server has started the refund (it logs before its slow part) ...
    assert_eq!(w.wait_executed("executed.jsonl").await, ["refund_order"]);
    // ... and the gate dies before the reply.
    child.kill().await.expect("kill -9");
    assert!(call.await.expect("agent task").is_err());
    drop(agent);

    let (agent2, _child2) = w.killable_agent().await;
    let status = agent2
        .call("airlock_status", json!({"approval_id": approval_id(&link)}))
        .await;
    assert!(is_error(&status));
    assert!(
        text(&status).contains("outcome is unknown and it will not be run again"),
        "{}",
        text(&status)
    );
    // the approvers are told
    smtp.wait_for("ann@example.com", "Outcome unknown", 1).await;
    agent2.close().await;
    assert_eq!(
        w.executed("executed.jsonl"),
        ["refund_order"],
        "never run a second time"
    );
    let rows = w.ledger_rows().await;
    let closed = rows
        .iter()
        .find(|r| r["kind"] == "approval_closed")
        .expect("closed row");
    assert_eq!(closed["body"]["outcome"]["outcome"], "outcome_unknown");
}

/// An agent that declares the MCP Tasks extension.
#[derive(Clone, Default)]
struct TaskAgent;

impl rmcp::ClientHandler for TaskAgent {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        let mut info = rmcp::model::ClientConfig::default();
        info.capabilities = rmcp::model::ClientCapabilities::builder()
            .enable_tasks()
            .build();
        info
    }
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn a_tasks_client_gets_a_task_that_survives_a_gate_restart() {
    use rmcp::model::{
        CallToolRequestParams, CallToolResponse, GetTaskParams, TaskPayload, TaskStatus,
    };
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let (client, mut child) = w.client(TaskAgent).await;
    let mut p = CallToolRequestParams::new("refund_order");
    p.arguments = refund(800).as_object().cloned();
    let task_id = match client.call_tool_once(p).await.expect("tools/call") {
        CallToolResponse::Task(t) => t.task.task_id,
        other => panic!("expected a task, got {other:?}"),
    };
    let link = smtp
        .wait_for("ann@example.com", "refund_order", 1)
        .await
        .link();
    assert_eq!(approval_id(&link), task_id, "the task is the approval");
    let t = client
        .get_task(GetTaskParams::new(task_id.clone()))
        .await
        .expect("tasks/get");
    assert_eq!(t.task.status(), TaskStatus::Working);

    // the gate restarts; the task lives in the ledger
    child.kill().await.expect("kill -9");
    drop(client);
    let (client, _child) = w.client(TaskAgent).await;
    assert_eq!(decide(&link, "approve", &[]).0, 200);
    let mut done = None;
    for _ in 0..200 {
        let t = client
            .get_task(GetTaskParams::new(task_id.clone()))
            .await
            .expect("tasks/get");
        if t.task.status() == TaskStatus::Completed {
            done = Some(t);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let done = done.expect("task completed");
    let TaskPayload::Completed { result } = done.task.payload else {
        panic!("no result")
    };
    assert_eq!(result["content"][0]["text"], "refunded 800 cents on A-1001");
    let _ = client.cancel().await;
    assert_eq!(w.executed("executed.jsonl"), ["refund_order"]);
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn a_late_post_after_expiry_is_refused_and_logged() {
    let smtp = Smtp::start();
    let w = World::approvals(
        smtp.port,
        r#"{ path = "approve", role = "finance", timeout = "2s", on_timeout = "deny" }"#,
    );
    let agent = Arc::new(w.agent().await);
    let waiting = call_in_background(&agent, refund(10));
    let link = smtp
        .wait_for("ann@example.com", "refund_order", 1)
        .await
        .link();
    let (_, page) = get(&link);
    let form = [
        ("nonce", field(&page, "nonce")),
        ("rendered_at", field(&page, "rendered_at")),
        ("seen", field(&page, "seen")),
        ("action", "approve".to_string()),
    ];
    let result = waiting.await.expect("agent");
    assert!(
        text(&result).contains("No decision before the approval expired"),
        "{}",
        text(&result)
    );
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = post(&link, &form);
    assert_eq!(status, 403, "{body}");
    let (status, page) = get(&link);
    assert_eq!(
        status, 200,
        "the link still shows what became of the request"
    );
    assert!(
        page.contains("Denied (timeout)") && !page.contains("<form"),
        "{page}"
    );
    finish(agent).await;
    assert!(w.executed("executed.jsonl").is_empty());
    let rows = w.ledger_rows().await;
    assert!(
        rows.iter().any(|r| r["kind"] == "link_refused"
            && r["body"]["reason"]
                .as_str()
                .is_some_and(|m| m.contains("no longer pending"))),
        "late use logged"
    );
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn approve_and_deny_at_the_same_moment_end_in_exactly_one_outcome() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let agent = Arc::new(w.agent().await);
    let waiting = call_in_background(&agent, refund(66));
    let ann = smtp
        .wait_for("ann@example.com", "refund_order", 1)
        .await
        .link();
    let bob = smtp
        .wait_for("bob@example.com", "refund_order", 1)
        .await
        .link();
    let forms: Vec<(String, Vec<(String, String)>)> = [(&ann, "approve"), (&bob, "deny")]
        .into_iter()
        .map(|(l, action)| {
            let (_, page) = get(l);
            (
                l.clone(),
                vec![
                    ("nonce".into(), field(&page, "nonce")),
                    ("rendered_at".into(), field(&page, "rendered_at")),
                    ("seen".into(), field(&page, "seen")),
                    ("action".into(), action.into()),
                ],
            )
        })
        .collect();
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = forms
        .into_iter()
        .map(|(link, form)| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                let form: Vec<(&str, &str)> =
                    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                b.wait();
                post(&link, &form).0
            })
        })
        .collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "one decision wins, the other is refused: {statuses:?}"
    );
    let result = waiting.await.expect("agent");
    finish(agent).await;
    let rows = w.ledger_rows().await;
    assert_eq!(
        rows.iter()
            .filter(|r| r["kind"] == "approval_closed")
            .count(),
        1
    );
    let executed = w.executed("executed.jsonl");
    if is_error(&result) {
        assert!(
            executed.is_empty() && rows.iter().all(|r| r["kind"] != "execution_intent"),
            "denied: nothing ran"
        );
    } else {
        assert_eq!(executed, ["refund_order"]);
        assert_eq!(
            rows.iter()
                .filter(|r| r["kind"] == "execution_intent")
                .count(),
            1
        );
    }
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn after_a_restart_unsent_mail_is_sent_and_expired_timers_fire() {
    crate::support::require(crate::support::Peer::Smtp);
    // The SMTP server is down when the approval is opened: the mail cannot go out.
    let port = free_port();
    let w = World::approvals(port, APPROVE_30M);
    let (agent, mut child) = w.killable_agent().await;
    let agent = Arc::new(agent);
    let call = {
        let a = agent.clone();
        tokio::spawn(async move { a.try_call("refund_order", refund(55)).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    child.kill().await.expect("kill -9");
    assert!(call.await.expect("agent task").is_err());
    drop(agent);
    // The server comes back; so does the gate, which sends what it owes.
    let smtp = Smtp::start_on(port);
    let (agent2, _child2) = w.killable_agent().await;
    let mail = smtp.wait_for("ann@example.com", "refund_order", 1).await;
    smtp.wait_for("bob@example.com", "refund_order", 1).await;
    assert_eq!(
        decide(&mail.link(), "deny", &[]).0,
        200,
        "the link mailed after the restart works"
    );
    agent2.close().await;
    let rows = w.ledger_rows().await;
    assert!(
        rows.iter().any(|r| r["kind"] == "mail_failed"),
        "the first attempt is on record"
    );
    assert_eq!(rows.iter().filter(|r| r["kind"] == "mail_sent").count(), 2);

    // A clock that ran out while the gate was down fires at the next start.
    let smtp = Smtp::start();
    let w = World::approvals(
        smtp.port,
        r#"{ path = "approve", role = "finance", timeout = "2s", on_timeout = "deny" }"#,
    );
    let link = killed_while_pending(&w, &smtp, refund(56)).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    expires_after_restart(&w, &link).await;
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn modify_with_two_approvers_mails_the_other_and_runs_the_edit_once_both_agree() {
    let smtp = Smtp::start();
    let w = World::approvals(
        smtp.port,
        r#"{ path = "approve", role = "finance", timeout = "30m", min_approvals = 2 }"#,
    );
    let agent = Arc::new(w.agent().await);
    let waiting = call_in_background(&agent, refund(3000));
    let ann = smtp
        .wait_for("ann@example.com", "refund_order", 1)
        .await
        .link();
    let bob_old = smtp
        .wait_for("bob@example.com", "refund_order", 1)
        .await
        .link();
    let edited = r#"{"order_id": "A-1001", "amount_cents": 1000, "reason": "partial"}"#;
    let (status, page) = decide(&ann, "modify", &[("arguments", edited)]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Modified"), "{page}");
    assert_eq!(
        get(&bob_old).0,
        404,
        "bob's old link approved other arguments"
    );
    let bob_new = smtp
        .wait_for_new("bob@example.com", "refund_order", &[&bob_old])
        .await;
    assert!(
        bob_new.body.contains("\n| amount_cents: 1000\n"),
        "{}",
        bob_new.body
    );
    assert!(
        w.executed("executed.jsonl").is_empty(),
        "one approval of the edit is not enough"
    );
    assert_eq!(decide(&bob_new.link(), "approve", &[]).0, 200);
    assert_eq!(
        text(&waiting.await.expect("agent")),
        "refunded 1000 cents on A-1001"
    );
    finish(agent).await;
}

/// An agent that counts the progress notifications it receives.
#[derive(Clone, Default)]
struct ProgressAgent(Arc<std::sync::Mutex<Vec<String>>>);

impl rmcp::ClientHandler for ProgressAgent {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(params.message.unwrap_or_default());
    }
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn a_waiting_agent_gets_progress_then_a_pending_answer_it_can_follow_up() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let config = std::fs::read_to_string(w.config())
        .expect("config")
        .replace("max_wait = \"2m\"", "max_wait = \"3s\"");
    w.write_config(&config);
    let seen = ProgressAgent::default();
    let (client, _child) = w.client(seen.clone()).await;
    let mut p = rmcp::model::CallToolRequestParams::new("refund_order");
    p.arguments = refund(123).as_object().cloned();
    p.meta = json!({"progressToken": "refund-1"})
        .as_object()
        .cloned()
        .map(|m| rmcp::model::RequestMetaObject(rmcp::model::MetaObject(m)));
    let r = client.call_tool(p).await.expect("tools/call");
    assert!(!is_error(&r), "pending is not an error: {}", text(&r));
    assert!(text(&r).contains("airlock_status"), "{}", text(&r));
    let notes = seen.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(notes.len() >= 2, "progress while waiting: {notes:?}");
    assert!(
        notes[0].contains("waiting for approval by role `finance`"),
        "{notes:?}"
    );

    // the decision comes later; the agent asks for it
    let link = smtp
        .wait_for("ann@example.com", "refund_order", 1)
        .await
        .link();
    assert_eq!(decide(&link, "approve", &[]).0, 200);
    let mut answer = String::new();
    for _ in 0..100 {
        let mut q = rmcp::model::CallToolRequestParams::new("airlock_status");
        q.arguments = json!({"approval_id": approval_id(&link)})
            .as_object()
            .cloned();
        answer = text(&client.call_tool(q).await.expect("status"));
        if answer.starts_with("refunded") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(answer, "refunded 123 cents on A-1001");
    let _ = client.cancel().await;
}

/// Open an approval for a refund (`ann@example.com` is asked), then `kill -9` the gate while it
/// waits. Returns the approver's link.
pub(crate) async fn killed_while_pending(w: &World, smtp: &Smtp, args: Value) -> String {
    let (agent, mut child) = w.killable_agent().await;
    let agent = Arc::new(agent);
    let call = {
        let a = agent.clone();
        tokio::spawn(async move { a.try_call("refund_order", args).await })
    };
    let link = smtp
        .wait_for("ann@example.com", "refund_order", 1)
        .await
        .link();
    child.kill().await.expect("kill -9");
    assert!(call.await.expect("agent task").is_err());
    link
}

/// Start the gate again: an approval whose clock ran out meanwhile is timed out at once, with
/// exactly one `timeout` row.
pub(crate) async fn expires_after_restart(w: &World, link: &str) {
    let (agent, _child) = w.killable_agent().await;
    let outcome = agent
        .status_until(
            &approval_id(link),
            "No decision before the approval expired",
        )
        .await;
    assert!(
        outcome.contains("No decision before the approval expired"),
        "{outcome}"
    );
    agent.close().await;
    let rows = w.ledger_rows().await;
    assert_eq!(rows.iter().filter(|r| r["kind"] == "timeout").count(), 1);
}
