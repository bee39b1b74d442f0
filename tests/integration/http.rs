//! Agents over streamable HTTP: each with its own bearer token and actor id; no token, no entry;
//! sessions and the policy's `[actors]` limits hold per agent.

use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::agents::{self, Serving, token};
use crate::smtp::{free_port, http};
use crate::support::{self, REPO, World, Peer, require, proposals};

/// The demo shop served over HTTP to two agents; `agent:reader` may only read.
fn world() -> (World, String, String, u16) {
    let w = World::demo();
    let (a, a_entry) = token("agent:a");
    let (reader, r_entry) = token("agent:reader");
    let policy = std::fs::read_to_string(format!("{REPO}/policies/default.toml")).expect("policy");
    w.write(
        "p/policy.toml",
        &format!("{policy}\n[actors]\n\"agent:reader\" = {{ classes = [\"read_only\"] }}\n"),
    );
    let port = free_port();
    let config = std::fs::read_to_string(w.config())
        .expect("config")
        .replace(
            &format!("policies = {:?}", format!("{REPO}/policies")),
            "policies = \"p\"",
        );
    w.write_config(&format!(
        "{config}\n[http]\nbind = \"127.0.0.1:{port}\"\n\n{a_entry}\n{r_entry}"
    ));
    (w, a, reader, port)
}

fn serve(w: &World, port: u16) -> Serving {
    agents::serve(w, &[], &format!("http://127.0.0.1:{port}"))
}

fn python_agent(url: &str, token: &str, calls: Value) -> Value {
    support::python_agent_answer(support::python_agent(
        ["--url", url, "--token", token],
        &calls,
    ))
}

fn post(url: &str, headers: &[(&str, &str)]) -> u16 {
    send(url, headers, &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})).0
}

/// POST one JSON-RPC message: (status, the session id answered).
fn send(url: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Option<String>) {
    let mut req = http()
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send(body.to_string()).expect("POST");
    let session = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    (r.status().as_u16(), session)
}

#[ignore = "needs the MCP Python SDK; scripts/test runs it"]
#[tokio::test]
async fn two_agents_with_their_own_tokens_are_recorded_as_themselves() {
    require(Peer::PythonSdk);
    let (w, a, reader, port) = world();
    let s = serve(&w, port);
    let mcp = format!("{}/mcp", s.base);

    // no token, a wrong token, a foreign Origin: refused before any MCP happens
    assert_eq!(post(&mcp, &[]), 401);
    assert_eq!(post(&mcp, &[("Authorization", "Bearer alk_0000")]), 401);
    let (status, _) = crate::smtp::get(&format!("{}/favicon.ico", s.base));
    assert_eq!(
        status, 404,
        "paths other than /mcp are not behind the token"
    );
    let bearer = format!("Bearer {a}");
    assert_eq!(
        post(
            &mcp,
            &[
                ("Authorization", &bearer),
                ("Origin", "http://evil.example")
            ]
        ),
        403
    );
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, session) = send(&mcp, &[("Authorization", &bearer)], &init);
    assert_eq!(status, 200);
    let session = session.expect("a session id");
    assert_eq!(
        session.len(),
        64,
        "256 random bits, not rmcp's own id: {session}"
    );
    // a session belongs to the actor that opened it
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let other = format!("Bearer {reader}");
    assert_eq!(
        send(
            &mcp,
            &[("Authorization", &other), ("Mcp-Session-Id", &session)],
            &list
        )
        .0,
        404
    );
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        send(
            &mcp,
            &[("Authorization", &bearer), ("Mcp-Session-Id", &session)],
            &done
        )
        .0,
        202
    );

    let got = python_agent(
        &mcp,
        &a,
        json!([
            {"name": "search_orders", "arguments": {"query": "A-1001"}},
            {"name": "tag_order", "arguments": {"order_id": "A-1001", "tag": "vip"}},
        ]),
    );
    assert_eq!(got["results"][0]["isError"], false, "{got}");
    assert_eq!(got["results"][1]["isError"], false, "{got}");
    let limited = python_agent(
        &mcp,
        &reader,
        json!([
            {"name": "search_orders", "arguments": {"query": ""}},
            {"name": "tag_order", "arguments": {"order_id": "A-1001", "tag": "x"}},
        ]),
    );
    assert_eq!(limited["results"][0]["isError"], false, "{limited}");
    assert_eq!(limited["results"][1]["isError"], true);
    assert!(
        limited["results"][1]["text"]
            .as_str()
            .unwrap_or("")
            .contains("may not use class `internal_reversible`"),
        "{limited}"
    );
    drop(s);
    let rows = w.ledger_rows().await;
    assert_eq!(
        proposals(&rows),
        [
            ("agent:a", "search_orders"),
            ("agent:a", "tag_order"),
            ("agent:reader", "search_orders"),
            ("agent:reader", "tag_order"),
        ]
    );
    assert_eq!(
        w.executed("executed.jsonl"),
        ["search_orders", "tag_order", "search_orders"]
    );
}

#[test]
fn a_remote_bind_without_tls_in_front_is_refused() {
    let w = World::demo();
    let (_, entry) = token("agent:a");
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!(
        "{config}\n[http]\nbind = \"0.0.0.0:0\"\n\n{entry}"
    ));
    let out = w.airlock(&["check", "--offline"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("http.bind") && said.contains("allow_remote"),
        "{said}"
    );
    // a remote tool server over plain http, and an agent posing as the stdio agent, are refused
    w.write_config(&format!(
        "{config}\n[[server]]\nname = \"far\"\nurl = \"http://10.1.2.3:9000/mcp\"\n\n[[agent]]\nactor = \"agent:test\"\ntoken_sha256 = \"{}\"\n",
        "ab".repeat(32)
    ));
    let said = String::from_utf8_lossy(&w.airlock(&["check", "--offline"]).stdout).into_owned();
    assert!(
        said.contains("server[1].url") && said.contains("not on this machine"),
        "{said}"
    );
    assert!(said.contains("may not be `agent:test`"), "{said}");
    // and --http without any [[agent]] refuses to start
    let bare = World::demo();
    let out = bare.airlock(&["serve", "--http", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("airlock token new"));
}

#[test]
fn sigterm_stops_the_gate_even_while_an_agent_keeps_stdin_open() {
    let (w, _, _, port) = world();
    let mut child = Command::new(crate::support::AIRLOCK)
        .args(["serve", "--config"])
        .arg(w.config())
        .env("AIRLOCK_LOG", "warn")
        .stdin(Stdio::piped()) // held open below, never written
        .stdout(Stdio::null())
        .spawn()
        .expect("airlock serve");
    let base = format!("http://127.0.0.1:{port}");
    let up = (0..400).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(25));
        http()
            .get(&format!("{base}/healthz"))
            .call()
            .is_ok_and(|r| r.status() == 200)
    });
    assert!(up, "airlock serve --http did not come up");
    let stdin = child.stdin.take();
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    // a liveness bound, not a timing assertion: it must exit at all
    let mut exited = None;
    for _ in 0..600 {
        if let Some(status) = child.try_wait().expect("try_wait") {
            exited = Some(status);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(stdin);
    let Some(status) = exited else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("airlock serve was still running 30 s after SIGTERM with its stdin open");
    };
    assert!(status.success(), "{status:?}");
    let verified = w.airlock(&["ledger", "verify"]);
    assert!(verified.status.success(), "{verified:?}");
}
