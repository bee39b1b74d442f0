//! Several `airlock serve --http` replicas on one PostgreSQL ledger (the `integration_pg` suite
//! only): an approval asked on one replica and decided on another, a replica killed with
//! approvals pending, decisions and a timeout raced across replicas, and many agents at once.

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
use crate::support::{self, World, on_postgres, rows_for};

/// Two replicas of one world, each serving MCP over HTTP and the approval pages.
struct Pair {
    w: World,
    token: String,
    a: Serving,
    b: Serving,
}

fn skip() -> bool {
    if on_postgres() {
        return false;
    }
    eprintln!("SKIP: replicas share a PostgreSQL ledger; they run in the integration_pg suite");
    true
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

fn replica(w: &World) -> Serving {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    agents::serve(w, &["--http", &bind], &format!("http://{bind}"))
}

/// A scripted agent (the official Python SDK) making `calls` through a replica.
fn agent(on: &Serving, token: &str, calls: Value) -> Child {
    support::python_agent(
        ["--url", &format!("{}/mcp", on.base), "--token", token],
        &calls,
    )
}

/// An agent session over streamable HTTP (rmcp's client), for many agents at once.
async fn session(on: &Serving, token: &str) -> RunningService<RoleClient, ()> {
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
    decide(link, action, &[("comment", "raced")])
}

fn verify(w: &World) -> Value {
    let out = w.airlock(&["ledger", "verify", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("verify --json");
    assert!(out.status.success(), "{report}");
    report
}

async fn rows(w: &World) -> Vec<Value> {
    let out = w.airlock(&["ledger", "export"]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("row"))
        .collect()
}

#[tokio::test]
async fn an_approval_asked_on_one_replica_is_decided_on_another_and_the_agent_gets_the_result() {
    if skip() {
        return;
    }
    let Some(smtp) = Smtp::start() else { return };
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
    if skip() {
        return;
    }
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
    let Some(smtp) = Smtp::start_on(port) else {
        return;
    };
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
    if skip() {
        return;
    }
    let Some(smtp) = Smtp::start() else { return };
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
    if skip() {
        return;
    }
    let Some(smtp) = Smtp::start() else { return };
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
    for run in runs.collect::<Vec<_>>() {
        run.await.expect("agent");
    }
    drop(p.a);
    drop(p.b);
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
async fn a_ledger_copied_to_postgres_and_back_keeps_every_row_and_its_head() {
    if skip() {
        return;
    }
    // a redb ledger with some history (this world's config without its [store])
    let w = World::demo();
    let config = std::fs::read_to_string(w.config()).expect("config");
    let (redb_config, _) = config.split_once("\n[store]").expect("a [store] section");
    w.write("airlock.toml", redb_config);
    let agent = w.agent().await;
    agent.call("echo", json!({"text": "copied"})).await;
    agent
        .call("search_orders", json!({"query": "A-1001"}))
        .await;
    agent.close().await;
    let original = w.ledger_rows().await;
    assert!(original.len() >= 5);
    let export = |w: &World| {
        let out = w.airlock(&["ledger", "export"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = export(&w);
    // redb -> PostgreSQL
    let url = support::new_database();
    let out = w.airlock(&["ledger", "copy", "--to", &url]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("the same in both") && said.contains("copy OK"),
        "{said}"
    );
    // into a database that already holds a ledger: refused, nothing touched
    let again = w.airlock(&["ledger", "copy", "--to", &url]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a ledger"));
    // the copy, served: the same rows, then it grows on PostgreSQL
    w.write(
        "airlock.toml",
        &format!("{redb_config}\n[store]\nurl = {url:?}\n"),
    );
    assert_eq!(export(&w), before, "every row, byte for byte");
    let agent = w.agent().await;
    agent.call("echo", json!({"text": "on postgres"})).await;
    agent.close().await;
    let grown = w.ledger_rows().await;
    assert!(grown.len() > original.len());
    let on_pg = export(&w);
    // and back: PostgreSQL -> a new redb file
    let back = w.path("back.redb");
    let out = w.airlock(&[
        "ledger",
        "copy",
        "--to",
        back.to_str().expect("path"),
        "--json",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{report}");
    assert_eq!(report["same_head"], true);
    assert_eq!(report["rows"], json!(grown.len()));
    w.write(
        "airlock.toml",
        &redb_config.replace("ledger = \"ledger.redb\"", "ledger = \"back.redb\""),
    );
    assert_eq!(export(&w), on_pg);
    verify(&w);
}

/// A PostgreSQL server of the test's own (it is stopped and started again), on a free port.
struct OwnServer {
    port: String,
    dir: tempfile::TempDir,
}

impl OwnServer {
    fn run(&self, what: &str) -> String {
        let out = std::process::Command::new(format!("{}/.ci/postgres", support::REPO))
            .arg(what)
            .env("AIRLOCK_PG_PORT", &self.port)
            .env("AIRLOCK_PG_DIR", self.dir.path().join("pg"))
            .output()
            .expect(".ci/postgres");
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.run("stop");
    }
}

#[tokio::test]
async fn calls_fail_closed_while_the_database_is_down_and_serving_resumes_when_it_is_back() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // the postgres user must reach the cluster's directory
    #[cfg(unix)]
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let server = OwnServer {
        port: free_port().to_string(),
        dir,
    };
    let url = server.run("start");
    let w = World::demo();
    let config = std::fs::read_to_string(w.config()).expect("config");
    let (head, _) = config.split_once("\n[store]").expect("a [store] section");
    let (token, entry) = token("agent:a");
    w.write(
        "airlock.toml",
        &format!("{head}\n[store]\nurl = {url:?}\n\n{entry}"),
    );
    let gate = replica(&w);
    let agent = session(&gate, &token).await;
    let echo = |text: &str| {
        let mut call = CallToolRequestParams::new("echo");
        call.arguments = json!({"text": text}).as_object().cloned();
        call
    };
    let first = agent.call_tool(echo("before")).await.expect("answered");
    assert_ne!(first.is_error, Some(true), "{first:?}");
    assert_eq!(get(&format!("{}/readyz", gate.base)).0, 200);

    server.run("halt");
    let refused = agent.call_tool(echo("during")).await.expect("answered");
    assert_eq!(refused.is_error, Some(true), "fails closed: {refused:?}");
    let said = serde_json::to_string(&refused.content).expect("content");
    assert!(
        said.contains("ledger"),
        "a reason the agent can act on: {said}"
    );
    let (status, body) = get(&format!("{}/readyz", gate.base));
    assert_eq!(status, 503, "{body}");

    server.run("start");
    let mut back = None;
    for _ in 0..100 {
        let r = agent.call_tool(echo("after")).await.expect("answered");
        if r.is_error != Some(true) {
            back = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back.is_some(), "serving again without a restart");
    let (status, body) = get(&format!("{}/readyz", gate.base));
    assert_eq!(status, 200, "{body}");
    let ran = std::fs::read_to_string(w.path("executed.jsonl")).unwrap_or_default();
    assert!(
        !ran.contains("during") && ran.contains("before") && ran.contains("after"),
        "nothing ran while the ledger could not record it: {ran}"
    );
    let _ = agent.cancel().await;
    drop(gate);
    verify(&w);
}

#[tokio::test]
async fn a_rate_limit_counts_the_calls_of_every_replica() {
    if skip() {
        return;
    }
    let Some(smtp) = Smtp::start() else { return };
    let w = World::approvals(smtp.port, r#"{ path = "deny" }"#);
    w.write(
        "p/policy.toml",
        "version = \"shared-limits\"\n[classes]\nread_only = { path = \"allow\" }\n\
         internal_reversible = { path = \"allow\", role = \"ops\", limits = [{ window = \"1h\", max_calls = 3, per = \"all\" }] }\n\
         customer_facing = { path = \"deny\" }\nfinancial = { path = \"deny\" }\ndestructive = { path = \"deny\" }\n\
         [roles]\nops = { emails = [\"ops@example.com\"] }\n",
    );
    let (token, entry) = token("agent:a");
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!("{config}\n{entry}"));
    let (a, b) = (replica(&w), replica(&w));
    let tag = |n: usize| {
        let mut call = CallToolRequestParams::new("tag_order");
        call.arguments = json!({"order_id": "A-1001", "tag": format!("t{n}")})
            .as_object()
            .cloned();
        call
    };
    let on_a = session(&a, &token).await;
    let on_b = session(&b, &token).await;
    for n in 0..2 {
        let r = on_a.call_tool(tag(n)).await.expect("answered");
        assert_ne!(r.is_error, Some(true), "{r:?}");
    }
    let r = on_b.call_tool(tag(2)).await.expect("answered");
    assert_ne!(r.is_error, Some(true), "{r:?}");
    // once B has read A's counter (every heartbeat), the fourth call crosses the shared limit
    let mut held = None;
    for n in 3..40 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let r = on_b.call_tool(tag(n)).await.expect("answered");
        if r.is_error == Some(true) {
            held = Some((n, r));
            break;
        }
    }
    let (n, r) = held.expect("the limit of 3 held a call");
    let said = serde_json::to_string(&r.content).expect("content");
    assert!(said.contains("limit") || said.contains("paused"), "{said}");
    let ran = w.executed("executed.jsonl").len();
    assert!(
        ran >= 3 && ran <= n,
        "{ran} executed, {n} made before the hold"
    );
    // the pause holds on A too
    let mut paused_on_a = false;
    for _ in 0..20 {
        let r = on_a.call_tool(tag(99)).await.expect("answered");
        if r.is_error == Some(true) {
            paused_on_a = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(paused_on_a, "A follows the pause B committed");
    let _ = on_a.cancel().await;
    let _ = on_b.cancel().await;
}

#[test]
fn a_database_migrated_by_a_newer_airlock_is_refused_with_a_clear_message() {
    if skip() {
        return;
    }
    let w = World::demo();
    let out = w.airlock(&["ledger", "verify"]);
    assert!(out.status.success(), "a fresh database is migrated");
    let url = w.database.clone().expect("a database");
    let sql = "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
               VALUES (99, 'from_the_future', '2027-01-01T00:00:00Z', '0')";
    let psql = std::process::Command::new("psql")
        .args([url.as_str(), "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        psql.status.success(),
        "{}",
        String::from_utf8_lossy(&psql.stderr)
    );
    for args in [&["ledger", "verify"][..], &["serve"][..]] {
        let out = w.airlock(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("schema version 99") && err.contains("newer Airlock"),
            "{args:?}: {err}"
        );
    }
}

#[tokio::test]
async fn the_deadline_of_an_approval_whose_replica_died_fires_once_on_another() {
    if skip() {
        return;
    }
    let Some(smtp) = Smtp::start() else { return };
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
