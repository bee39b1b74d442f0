//! A tool server reached over streamable HTTP: its header secret comes from the environment, and
//! when it restarts mid-run the gate reconnects.

use std::process::{Child, Command, Stdio};

use rmcp::service::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::json;

use crate::smtp::free_port;
use crate::support::{AIRLOCK, Agent, REPO, World, decision, demo_shop, is_error, text};

struct Shop(Child);

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn shop(w: &World, port: u16, extra: &[&str]) -> Shop {
    let mut child = Command::new(demo_shop())
        .args(["--http", &format!("127.0.0.1:{port}"), "--log"])
        .arg(w.path("executed.jsonl"))
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("demo shop");
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Shop(child);
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("demo shop did not listen on {port}");
}

/// A world whose one tool server is the demo shop at `url` on `port`, with `extra` lines in its
/// `[[server]]` entry.
fn world(port: u16, extra: &str) -> World {
    let w = World::empty();
    w.write_config(&format!(
        "[gate]\nmanifests = {m:?}\npolicies = {p:?}\nledger = \"l.redb\"\nmax_wait = \"1s\"\n[web]\nbind = \"127.0.0.1:0\"\n[mail]\noutbox = \"outbox\"\n\n[[server]]\nname = \"shop\"\nurl = \"http://127.0.0.1:{port}/mcp\"\nprefix = \"\"\n{extra}\n",
        m = format!("{REPO}/tool-manifests"),
        p = format!("{REPO}/policies"),
    ));
    w
}

/// `airlock serve` on stdio for `w`, with `env` set, as the test's agent.
async fn agent(w: &World, env: &[(&str, &str)]) -> Agent {
    let mut cmd = tokio::process::Command::new(AIRLOCK);
    cmd.args(["serve", "--config"])
        .arg(w.config())
        .env("AIRLOCK_LOG", "warn")
        .envs(env.iter().copied());
    Agent {
        client: ().serve(TokioChildProcess::new(cmd).expect("spawn")).await.expect("handshake"),
    }
}

#[tokio::test]
async fn an_http_tool_server_that_restarts_is_reconnected() {
    let port = free_port();
    let w = world(port, "headers = { X-Shop-Key = \"k-${SHOP_KEY}\" }");
    let first = shop(&w, port, &[]);
    let agent = agent(&w, &[("SHOP_KEY", "secret")]).await;
    let status = w.airlock(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(v["servers"]["shop"], "running", "{v}");
    let search = json!({"query": "A-1001"});
    let r = agent.call("search_orders", search.clone()).await;
    assert!(!is_error(&r), "{}", text(&r));

    drop(first);
    let down = agent.call("search_orders", search.clone()).await;
    assert!(is_error(&down), "the server is down: {}", text(&down));
    let _second = shop(&w, port, &[]);
    let mut back = false;
    for _ in 0..100 {
        let r = agent.call("search_orders", search.clone()).await;
        if !is_error(&r) {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back, "the gate reconnected to the restarted server");
    agent.close().await;
    assert_eq!(
        w.executed("executed.jsonl"),
        ["search_orders", "search_orders"]
    );
}

#[tokio::test]
async fn an_http_tool_server_that_restarts_with_other_tools_is_re_gated() {
    let port = free_port();
    let w = world(port, "relist = \"1s\"");
    let first = shop(&w, port, &[]);
    let agent = agent(&w, &[]).await;
    let search = json!({"query": "A-1001"});
    assert!(!is_error(
        &agent.call("search_orders", search.clone()).await
    ));

    // it comes back presenting a different refund_order, and says nothing about it
    drop(first);
    let _second = shop(&w, port, &["--rug-pull"]);
    let refund = json!({"order_id": "A-1001", "amount_cents": 500, "reason": "late"});
    let mut held = None;
    for _ in 0..100 {
        let r = agent.call("refund_order", refund.clone()).await;
        if decision(&r)["reasons"][0]["code"] == "tool_changed" {
            held = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let held = held.expect("the changed refund_order was never re-gated");
    assert!(is_error(&held));
    // an unchanged tool keeps working
    assert!(!is_error(&agent.call("search_orders", search).await));
    agent.close().await;
    assert!(
        !w.executed("executed.jsonl")
            .contains(&"refund_order".to_string()),
        "the changed tool never ran"
    );
}

/// `/readyz` until `done` says so (up to 90 s); the last answer.
fn readyz_until(base: &str, done: impl Fn(u16, &serde_json::Value) -> bool) -> (u16, serde_json::Value) {
    let mut last = crate::ops::readyz(base);
    for _ in 0..900 {
        if done(last.0, &last.1) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        last = crate::ops::readyz(base);
    }
    last
}

#[test]
fn readyz_names_an_http_tool_server_that_stops_answering_and_clears_when_it_answers_again() {
    let port = free_port();
    let w = world(port, "");
    let first = shop(&w, port, &[]);
    let cfg = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!("{cfg}\n{}", crate::agents::token("agent:ops").1));
    let addr = format!("127.0.0.1:{}", free_port());
    let gate = crate::agents::serve(&w, &["--http", &addr], &format!("http://{addr}"));
    let (status, body) = readyz_until(&gate.base, |s, _| s == 200);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["servers"]["shop"], "running");

    // the tool server dies: its pings go unanswered and /readyz names it
    drop(first);
    let (status, body) = readyz_until(&gate.base, |s, _| s == 503);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["servers"]["shop"], "down", "{body}");
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("tool server `shop` is down"), "{reasons}");

    // back on the same address: ready again
    let _second = shop(&w, port, &[]);
    let (status, body) = readyz_until(&gate.base, |s, _| s == 200);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["servers"]["shop"], "running");
}
