//! `[limits]` against a client that follows the protocol but never lets go: connections that
//! never finish their headers are closed after the header timeout and never starve the pages;
//! a connection over the cap is closed at once; an agent's sessions are capped by refusing the
//! next `initialize`, never by dropping a live session.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::agents::{self, Serving, token};
use crate::support::signin::outbox_links;
use crate::smtp::{free_port, get, http};
use crate::support::World;

/// The demo shop over HTTP for agents `agent:a` and `agent:b`, with `limits` as `[limits]`.
fn world(limits: &str) -> (World, Serving, String, String) {
    let w = World::demo();
    let (a, a_entry) = token("agent:a");
    let (b, b_entry) = token("agent:b");
    let port = free_port();
    let config = std::fs::read_to_string(w.config())
        .expect("config")
        .replace("bind = \"127.0.0.1:0\"", &format!("bind = \"127.0.0.1:{}\"", free_port()));
    w.write_config(&format!(
        "{config}\n[http]\nbind = \"127.0.0.1:{port}\"\n\n{a_entry}\n{b_entry}\n[limits]\n{limits}\n"
    ));
    let s = agents::serve(&w, &[], &format!("http://127.0.0.1:{port}"));
    (w, s, a, b)
}

/// POST one JSON-RPC message to `/mcp`: (status, the session id answered, the body).
fn post(s: &Serving, token: &str, session: Option<&str>, body: &Value) -> (u16, Option<String>, String) {
    let mut req = http()
        .post(&format!("{}/mcp", s.base))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("Authorization", &format!("Bearer {token}"));
    if let Some(id) = session {
        req = req.header("Mcp-Session-Id", id);
    }
    let mut r = req.send(body.to_string()).expect("POST");
    let id = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (r.status().as_u16(), id, text)
}

fn initialize(s: &Serving, token: &str) -> (u16, Option<String>, String) {
    post(s, token, None, &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
}

/// A session of `token`'s agent, initialized.
fn session(s: &Serving, token: &str) -> String {
    let (status, id, body) = initialize(s, token);
    assert_eq!(status, 200, "{body}");
    let id = id.expect("a session id");
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(s, token, Some(&id), &done).0, 202);
    id
}

/// Whether `session` still answers `tools/list`.
fn works(s: &Serving, token: &str, session: &str) -> bool {
    let (status, _, body) = post(s, token, Some(session), &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    status == 200 && body.contains("refund_order")
}

/// A connection that sends a request line and headers, never the blank line that ends them.
fn slow_loris(addr: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").expect("write");
    c
}

/// What a connection reads until the gate closes it (a read timeout is a failure: the gate kept it).
fn read_to_close(c: &mut TcpStream) -> String {
    c.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut got = Vec::new();
    match c.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the gate kept a connection that never finished its headers: {e}"),
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_held_slow_loris_neither_keeps_the_pages_out_nor_outlives_the_header_timeout() {
    let (w, s, a, _) = world("header_timeout = \"2s\"\nconnections = 12\nconnections_per_address = 12");
    // an approval waiting, so there is an approver's page to ask for
    let id = session(&s, &a);
    let refund = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "refund_order", "arguments": {"order_id": "A-1001", "amount_cents": 500}}});
    let (status, _, body) = post(&s, &a, Some(&id), &refund);
    assert_eq!(status, 200, "{body}");
    let page = outbox_links(&w, "finance-approvers@example.com", 1).await.remove(0);

    // every place taken by connections that never finish their headers, one more line every 500 ms
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut held: Vec<TcpStream> = (0..12).map(|_| slow_loris(&addr)).collect();
    let drip: Vec<TcpStream> = held.iter().map(|c| c.try_clone().expect("clone")).collect();
    let dripping = std::thread::spawn(move || {
        for i in 0..8 {
            std::thread::sleep(Duration::from_millis(500));
            for mut c in &drip {
                let _ = c.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes());
            }
        }
    });
    // the pages answer while the flood holds every place: a newcomer pushes out the oldest
    // connection still sending its headers
    let (status, body) = get(&format!("{}/healthz", s.base));
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&page);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("refund_order"), "{body}");

    // and the gate closes every held connection — pushed out, or when its header time is up —
    // without answering it
    for c in &mut held {
        let answered = read_to_close(c);
        assert!(!answered.contains("200 OK"), "{answered}");
    }
    let (status, body) = get(&format!("{}/healthz", s.base));
    assert_eq!(status, 200, "{body}");
    dripping.join().expect("drip");
}

/// A connection that sends a form POST to an approval page with a long body, and a first byte
/// of it (no link check can run before the body is in).
fn slow_body(addr: &str, page: &str) -> TcpStream {
    let path = page.splitn(4, '/').nth(3).unwrap_or_default();
    let mut c = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "POST /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\na"
    );
    c.write_all(head.as_bytes()).expect("write");
    c
}

#[tokio::test]
async fn bodies_dripped_a_byte_at_a_time_neither_keep_the_pages_out_nor_outlive_the_body_timeout() {
    let (w, s, a, _) = world("body_timeout = \"3s\"\nconnections = 12\nconnections_per_address = 12");
    let id = session(&s, &a);
    let refund = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "refund_order", "arguments": {"order_id": "A-1001", "amount_cents": 500}}});
    let (status, _, body) = post(&s, &a, Some(&id), &refund);
    assert_eq!(status, 200, "{body}");
    let page = outbox_links(&w, "finance-approvers@example.com", 1).await.remove(0);

    // every place taken by form posts whose bodies arrive a byte every 500 ms (never a gap the
    // length of the body timeout)
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut held: Vec<TcpStream> = (0..12).map(|_| slow_body(&addr, &page)).collect();
    let drip: Vec<TcpStream> = held.iter().map(|c| c.try_clone().expect("clone")).collect();
    let dripping = std::thread::spawn(move || {
        for _ in 0..16 {
            std::thread::sleep(Duration::from_millis(500));
            for mut c in &drip {
                let _ = c.write_all(b"a");
            }
        }
    });
    // a newcomer pushes out the oldest connection still sending a body
    let (status, body) = get(&format!("{}/healthz", s.base));
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&page);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("refund_order"), "{body}");

    // every dripping connection is closed, pushed out or when its body time is up, and none of
    // their half-sent forms decided anything
    for c in &mut held {
        let answered = read_to_close(c);
        assert!(!answered.contains("200 OK"), "{answered}");
    }
    dripping.join().expect("drip");
    let (status, body) = get(&page);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Approve"), "still waiting for a decision: {body}");
    let metrics = get(&format!("{}/metrics", s.base)).1;
    assert!(metrics.contains("body_timeout"), "the body timeout closed some: {metrics}");
}

#[test]
fn the_session_cap_refuses_the_next_initialize_and_keeps_every_earlier_session_working() {
    let (_w, s, a, b) = world("sessions_per_actor = 3\nsessions = 4");
    let mine: Vec<String> = (0..3).map(|_| session(&s, &a)).collect();

    let (status, id, body) = initialize(&s, &a);
    assert_eq!(status, 429, "{body}");
    assert_eq!(id, None, "no session is handed out over the cap");
    assert!(body.contains("sessions_per_actor") && body.contains("DELETE /mcp"), "{body}");
    for id in &mine {
        assert!(works(&s, &a, id), "a session opened before the cap still works");
    }

    // another agent has its own share, up to the gate's total
    let theirs = session(&s, &b);
    let (status, _, body) = initialize(&s, &b);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("`[limits] sessions`"), "{body}");
    assert!(works(&s, &b, &theirs));

    // ending a session makes room for one more
    let r = http()
        .delete(&format!("{}/mcp", s.base))
        .header("Authorization", &format!("Bearer {a}"))
        .header("Mcp-Session-Id", &mine[0])
        .call()
        .expect("DELETE");
    assert!(r.status().is_success(), "{}", r.status());
    assert!(!works(&s, &a, &mine[0]), "the ended session is gone");
    let again = session(&s, &a);
    assert!(works(&s, &a, &again));
    assert!(works(&s, &a, &mine[1]) && works(&s, &a, &mine[2]));
}

#[test]
fn an_idle_session_ends_and_no_longer_counts_against_its_agent() {
    let (_w, s, a, _) = world("sessions_per_actor = 1\nsession_idle = \"2s\"");
    let first = session(&s, &a);
    assert_eq!(initialize(&s, &a).0, 429, "one session is the cap");
    // once the first has been idle long enough, rmcp ends it and its place is free
    let mut second = None;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(200));
        let (status, id, _) = initialize(&s, &a);
        if status == 200 {
            second = id;
            break;
        }
    }
    assert!(second.is_some(), "the idle session never ended");
    assert!(!works(&s, &a, &first), "the idle session is gone");
}

#[tokio::test]
async fn refused_calls_past_an_agent_s_budget_are_counted_in_one_row_not_recorded_one_by_one() {
    let w = crate::review::world();
    let policy = std::fs::read_to_string(w.path("p/policy.toml")).expect("policy");
    // a class that is not signed (a signed class's refusals are always recorded whole)
    let unsigned = policy
        .lines()
        .map(|l| match l.starts_with("destructive ") {
            true => "destructive = { path = \"deny\", signed = false }",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(policy, unsigned);
    w.write("p/policy.toml", &format!("refused_per_minute = 3\n{unsigned}"));
    let agent = w.agent().await;
    let mut last = String::new();
    for i in 0..10 {
        let r = agent
            .call("delete_customer", json!({"email": format!("c{i}@example.com")}))
            .await;
        assert!(crate::support::is_error(&r), "denied");
        last = crate::support::text(&r);
    }
    assert!(last.contains("denied `delete_customer`"), "the agent still hears why: {last}");
    assert!(last.contains("refused_per_minute"), "and that it was only counted: {last}");
    // a clean stop writes the minute's count
    agent.close().await;
    let rows = w.ledger_rows().await;
    let proposals = rows
        .iter()
        .filter(|r| r["kind"] == "proposal" && r["body"]["tool"] == "delete_customer")
        .count();
    // the calls of one minute: a minute may turn during the loop, and a new one starts a new budget
    let counted: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "refused_counted").collect();
    let calls: u64 = counted.iter().map(|r| r["body"]["calls"].as_u64().unwrap_or(0)).sum();
    assert_eq!(proposals as u64 + calls, 10, "every call is either recorded or counted");
    assert!(proposals <= 6 && calls >= 4, "{proposals} recorded, {calls} counted");
    let row = counted.first().expect("a refused_counted row");
    assert_eq!(row["body"]["actor"], "agent:test");
    assert_eq!(row["body"]["refused_per_minute"], 3);
    assert!(row["body"]["tools"]["delete_customer"].as_u64().unwrap_or(0) >= 1, "{row}");
    let out = w.airlock(&["ledger", "verify"]);
    assert!(out.status.success(), "{out:?}");
}

/// One `GET /healthz` on an open connection: the status line answered.
fn get_on(c: &mut TcpStream) -> String {
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("write");
    c.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut buf = [0u8; 4096];
    let n = c.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_string()
}

#[test]
fn a_kept_alive_connection_outlives_the_header_timeout_while_idle_and_ends_after_the_idle_one() {
    let (_w, s, _, _) = world("header_timeout = \"1s\"\nidle_timeout = \"3s\"");
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut c = TcpStream::connect(&addr).expect("connect");
    assert_eq!(get_on(&mut c), "HTTP/1.1 200 OK");
    // idle longer than the header timeout: a client that pools connections may still use it
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get_on(&mut c), "HTTP/1.1 200 OK", "idle is not slow headers");
    // idle past the idle timeout: the gate closes it
    let closed = read_to_close(&mut c);
    assert!(closed.is_empty(), "closed without a word: {closed}");
}

#[tokio::test]
async fn every_refused_call_of_a_signed_class_is_recorded_whatever_the_budget() {
    let w = crate::review::world();
    let policy = std::fs::read_to_string(w.path("p/policy.toml")).expect("policy");
    w.write("p/policy.toml", &format!("refused_per_minute = 1\n{policy}"));
    let agent = w.agent().await;
    for i in 0..4 {
        let r = agent
            .call("delete_customer", json!({"email": format!("c{i}@example.com")}))
            .await;
        assert!(crate::support::is_error(&r));
    }
    agent.close().await;
    let rows = w.ledger_rows().await;
    let recorded = rows
        .iter()
        .filter(|r| r["kind"] == "proposal" && r["body"]["tool"] == "delete_customer")
        .count();
    assert_eq!(recorded, 4, "destructive is signed by default: every refusal is evidence");
    assert!(!rows.iter().any(|r| r["kind"] == "refused_counted"));
}
