//! Several `airlock serve --http` replicas on one PostgreSQL ledger (the `integration_pg` suite
//! only): an approval asked on one replica and decided on another, a replica killed with
//! approvals pending (and its deadline), decisions and a timeout raced across replicas, and many
//! agents at once. The backend's own behaviour is in `store.rs`.

use std::collections::HashMap;
use std::process::Child;

use axum::http::{HeaderName, HeaderValue};
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService, ServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::agents::{self, Serving, token};
use crate::smtp::{Received, Smtp, approval_id, decide, free_port, get};
use crate::support::{self, World, rows_for};

/// Two replicas of one world, each serving MCP over HTTP and the approval pages.
struct Pair {
    w: World,
    token: String,
    a: Serving,
    b: Serving,
}

/// Replicas A and B of a world whose `financial` class is `financial`, mailing to `smtp_port`.
fn pair(smtp_port: u16, financial: &str) -> Pair {
    let w = World::approvals(smtp_port, financial);
    let (token, entry) = token("agent:a");
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!("{config}\n{entry}"));
    let a = replica(&w);
    let b = replica(&w);
    Pair { w, token, a, b }
}

pub(crate) fn replica(w: &World) -> Serving {
    replica_of(&w.config())
}

/// A replica of the world whose config is `config`, on a free port.
fn replica_of(config: &std::path::Path) -> Serving {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    agents::serve_config(config, &["--http", &bind], &format!("http://{bind}"))
}

/// A scripted agent (the official Python SDK) making `calls` through a replica.
fn agent(on: &Serving, token: &str, calls: Value) -> Child {
    support::python_agent(
        ["--url", &format!("{}/mcp", on.base), "--token", token],
        &calls,
    )
}

/// An agent session over streamable HTTP (rmcp's client), for many agents at once.
pub(crate) async fn session(on: &Serving, token: &str) -> RunningService<RoleClient, ()> {
    let mut headers = HashMap::new();
    headers.insert(
        HeaderName::from_static("authorization"),
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", on.base))
        .custom_headers(headers);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP session over HTTP")
}

fn refund(cents: u64) -> Value {
    json!([{"name": "refund_order", "arguments": {"order_id": "A-1001", "amount_cents": cents, "reason": "replicas"}}])
}

/// The same link, on another replica.
fn via(link: &str, from: &Serving, to: &Serving) -> String {
    assert!(
        link.starts_with(&from.base),
        "{link} is not {}'s",
        from.base
    );
    link.replacen(&from.base, &to.base, 1)
}

/// [`decide`], unless the page no longer offers a form (the timeout won): then `(0, page)`.
fn try_decide(link: &str, action: &str) -> (u16, String) {
    let (status, page) = get(link);
    if status != 200 || !page.contains("name=\"nonce\"") {
        return (0, page);
    }
    // the form of the page just read: fetched again, it may have timed out in between
    crate::smtp::decide_on(link, &page, action, &[("comment", "raced")])
}

pub(crate) fn verify(w: &World) -> Value {
    let out = w.airlock(&["ledger", "verify", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("verify --json");
    assert!(out.status.success(), "{report}");
    report
}

pub(crate) async fn rows(w: &World) -> Vec<Value> {
    let out = w.airlock(&["ledger", "export"]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("row"))
        .collect()
}

#[tokio::test]
async fn an_approval_asked_on_one_replica_is_decided_on_another_and_the_agent_gets_the_result() {
    let smtp = Smtp::start();
    let p = pair(
        smtp.port,
        r#"{ path = "approve", role = "finance", timeout = "30m", on_timeout = "deny" }"#,
    );
    let waiting = agent(&p.a, &p.token, refund(500));
    let mail = smtp
        .wait_for("ann@example.com", "[Airlock] Approve", 1)
        .await;
    // the approver's click reaches replica B (a load balancer's choice)
    let on_b = via(&mail.link(), &p.a, &p.b);
    let (status, page) = decide(&on_b, "approve", &[]);
    assert_eq!(status, 200, "{page}");
    // the agent, still connected to A, gets the tool's result: pushed from B through the database
    let answer = support::python_agent_answer(waiting);
    assert_eq!(answer["results"][0]["isError"], false, "{answer}");
    assert!(
        answer["results"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("refund")),
        "{answer}"
    );
    assert_eq!(p.w.executed("executed.jsonl"), vec!["refund_order"]);
    let report = verify(&p.w);
    let rows = rows(&p.w).await;
    assert_eq!(report["rows"], json!(rows.len()));
    let id = approval_id(&mail.link());
    let call = rows
        .iter()
        .find(|r| r["kind"] == "envelope" && r["body"]["approval_id"] == json!(id))
        .and_then(|r| r["call_id"].as_str())
        .expect("the envelope row")
        .to_string();
    assert_eq!(rows_for(&rows, "execution_intent", &call).len(), 1);
    assert_eq!(rows_for(&rows, "approval_closed", &call).len(), 1);
}

#[tokio::test]
async fn a_replica_killed_with_approvals_pending_leaves_them_to_the_others() {
    // no SMTP server yet: A commits the approval but cannot mail it, then dies
    let port = free_port();
    let p = pair(
        port,
        r#"{ path = "approve", role = "finance", timeout = "30m", on_timeout = "deny" }"#,
    );
    let Pair { w, token, mut a, b } = p;
    let mut waiting = agent(&a, &token, refund(700));
    let mut id = String::new();
    for _ in 0..200 {
        let rows = rows(&w).await;
        if let Some(r) = rows.iter().find(|r| r["kind"] == "mail_failed") {
            id = r["body"]["approval_id"].as_str().unwrap_or_default().into();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        !id.is_empty(),
        "A recorded the approval and its failed mail"
    );
    a.child.kill().expect("kill -9 A");
    let _ = a.child.wait();
    let _ = waiting.kill();
    let _ = waiting.wait();
    let smtp = Smtp::start_on(port);
    // B adopts A's approval once A has been silent long enough, and mails it, once
    let mail = smtp.wait_for_approval("ann@example.com", &id).await;
    assert!(
        mail.link().starts_with(&b.base),
        "B sent it: {}",
        mail.link()
    );
    let (status, page) = decide(&mail.link(), "approve", &[]);
    assert_eq!(status, 200, "{page}");
    // the agent reconnects to B and asks for the outcome
    let asked = support::python_agent_answer(agent(
        &b,
        &token,
        json!([{"name": "airlock_status", "arguments": {"approval_id": id}}]),
    ));
    let mut text = asked["results"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for _ in 0..100 {
        if text.contains("refunded 700") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let again = support::python_agent_answer(agent(
            &b,
            &token,
            json!([{"name": "airlock_status", "arguments": {"approval_id": id}}]),
        ));
        text = again["results"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    assert!(text.contains("refunded 700"), "{text}");
    assert_eq!(
        w.executed("executed.jsonl"),
        vec!["refund_order"],
        "ran once, on B"
    );
    let sent: Vec<Received> = smtp
        .all()
        .into_iter()
        .filter(|m| m.to.contains("ann@example.com") && m.body.contains(&id))
        .collect();
    assert_eq!(sent.len(), 1, "the adopted mail went out once");
    verify(&w);
}

#[tokio::test]
async fn approve_on_one_replica_deny_on_another_and_the_timeout_race_to_one_verdict() {
    let smtp = Smtp::start();
    let p = pair(
        smtp.port,
        r#"{ path = "approve", role = "finance", timeout = "2s", on_timeout = "deny" }"#,
    );
    let waiting = agent(&p.a, &p.token, refund(900));
    let mail = smtp
        .wait_for("ann@example.com", "[Airlock] Approve", 1)
        .await;
    let link = mail.link();
    // both pages open before the deadline; both forms posted together near it
    let on_a = link.clone();
    let on_b = via(&link, &p.a, &p.b);
    assert_eq!(get(&on_a).0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let approve = std::thread::spawn(move || try_decide(&on_a, "approve"));
    let deny = std::thread::spawn(move || try_decide(&on_b, "deny"));
    let approved = approve.join().expect("approve");
    let denied = deny.join().expect("deny");
    let answer = support::python_agent_answer(waiting);
    let rows = rows(&p.w).await;
    let id = approval_id(&link);
    let about = |kind: &str| {
        rows.iter()
            .filter(|r| r["kind"] == kind && r["body"]["approval_id"] == json!(id))
            .count()
    };
    assert_eq!(
        about("approval_closed"),
        1,
        "one terminal verdict: {rows:?}"
    );
    assert!(about("timeout") <= 1, "the timer fired at most once");
    let ran = p.w.executed("executed.jsonl");
    assert!(ran.len() <= 1, "at most one execution: {ran:?}");
    assert_eq!(about("execution_intent"), ran.len());
    // whoever lost was told, and nothing they sent was recorded
    let decisions = about("decision");
    let accepted = [approved.0, denied.0].iter().filter(|s| **s == 200).count();
    assert!(
        decisions <= 1 && accepted == decisions,
        "{approved:?} {denied:?} {decisions}"
    );
    assert!(answer["results"][0]["text"].is_string(), "{answer}");
    verify(&p.w);
}

#[tokio::test]
async fn two_replicas_with_32_agents_each_keep_one_gapless_chain() {
    let smtp = Smtp::start();
    let p = pair(
        smtp.port,
        r#"{ path = "approve", role = "finance", timeout = "30m" }"#,
    );
    let before = rows(&p.w).await.len();
    const PER_AGENT: usize = 4;
    let mut sessions = Vec::new();
    for i in 0..64 {
        let on = if i % 2 == 0 { &p.a } else { &p.b };
        sessions.push(session(on, &p.token).await);
    }
    let runs = sessions.into_iter().enumerate().map(|(i, s)| {
        tokio::spawn(async move {
            for n in 0..PER_AGENT {
                let mut call = CallToolRequestParams::new("search_orders");
                call.arguments = json!({"query": format!("agent {i} call {n}")})
                    .as_object()
                    .cloned();
                let r = s.call_tool(call).await.expect("tools/call answered");
                assert_ne!(r.is_error, Some(true), "{r:?}");
            }
            let _ = s.cancel().await;
        })
    });
    let runs: Vec<_> = runs.collect();
    // a third replica starts while the two commit: its head check must not take their commits
    // for a rewrite
    let third = tokio::task::spawn_blocking({
        let config = p.w.config();
        move || replica_of(&config)
    });
    for run in runs {
        run.await.expect("agent");
    }
    drop(third.await.expect("a third replica started under load"));
    // stopped as an operator does: every answered call's outcome row is committed first (a
    // killed replica's last outcomes would be recorded as unknown at the next start)
    p.a.stop();
    p.b.stop();
    let report = verify(&p.w);
    let rows = rows(&p.w).await;
    let seqs: Vec<u64> = rows.iter().filter_map(|r| r["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=rows.len() as u64).collect::<Vec<_>>(), "no gap");
    assert_eq!(report["rows"], json!(rows.len()));
    let proposals = rows[before..]
        .iter()
        .filter(|r| r["kind"] == "proposal")
        .count();
    let outcomes = rows[before..]
        .iter()
        .filter(|r| r["kind"] == "outcome")
        .count();
    assert_eq!(
        (proposals, outcomes),
        (64 * PER_AGENT, 64 * PER_AGENT),
        "every call made, and only those"
    );
}

#[tokio::test]
async fn the_deadline_of_an_approval_whose_replica_died_fires_once_on_another() {
    let smtp = Smtp::start();
    let p = pair(
        smtp.port,
        r#"{ path = "approve", role = "finance", timeout = "3s", on_timeout = "deny" }"#,
    );
    let Pair { w, token, mut a, b } = p;
    let mut waiting = agent(&a, &token, refund(300));
    let mail = smtp
        .wait_for("ann@example.com", "[Airlock] Approve", 1)
        .await;
    let id = approval_id(&mail.link());
    a.child.kill().expect("kill -9 A");
    let _ = a.child.wait();
    let _ = waiting.kill();
    let _ = waiting.wait();
    // B armed the deadline when A announced the approval; it fires there, once
    let mut closed = Vec::new();
    for _ in 0..100 {
        closed = rows(&w)
            .await
            .into_iter()
            .filter(|r| r["body"]["approval_id"] == json!(id))
            .filter(|r| r["kind"] == "approval_closed" || r["kind"] == "timeout")
            .collect();
        if closed.iter().any(|r| r["kind"] == "approval_closed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // a little longer: a second firing would show now
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let all = rows(&w).await;
    let count = |kind: &str| {
        all.iter()
            .filter(|r| r["kind"] == kind && r["body"]["approval_id"] == json!(id))
            .count()
    };
    assert_eq!(
        (count("timeout"), count("approval_closed")),
        (1, 1),
        "{closed:?}"
    );
    assert!(
        w.executed("executed.jsonl").is_empty(),
        "denied on timeout, never run"
    );
    drop(b);
    verify(&w);
}
