//! Operations: `/readyz` says whether this gate can take calls (ledger writable, every tool
//! server running), and `--log-format json` writes one JSON object per log line.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::agents::{Serving, serve, token};
use crate::smtp::{free_port, http};
use crate::support::{AIRLOCK, REPO, World};

/// `airlock serve --http` on a free port, with an HTTP agent let in (serving over HTTP needs one).
fn serve_http(w: &World) -> Serving {
    let cfg = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!("{cfg}\n{}", token("agent:ops").1));
    let addr = format!("127.0.0.1:{}", free_port());
    serve(w, &["--http", &addr], &format!("http://{addr}"))
}

pub(crate) fn readyz(base: &str) -> (u16, Value) {
    let mut r = http()
        .get(&format!("{base}/readyz"))
        .call()
        .expect("readyz answers");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().expect("readyz body");
    let body = serde_json::from_str(&text).expect("readyz is JSON");
    (status, body)
}

#[test]
fn readyz_is_ready_only_when_the_ledger_and_every_tool_server_are() {
    let w = World::demo();
    let gate = serve_http(&w);
    let (status, body) = readyz(&gate.base);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["ledger"], "ok");
    assert_eq!(body["servers"]["shop"], "running");
    drop(gate);

    // a tool server that does not run: not ready, and the reason names it
    let w = World::empty();
    w.write(
        "m/m.toml",
        "[[tool]]\nserver = \"broken\"\nname = \"lookup\"\nclass = \"read_only\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: reads\"\n",
    );
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = \"{REPO}/policies\"\nledger = \"l.redb\"\n[web]\nbind = \"127.0.0.1:0\"\n\n[[server]]\nname = \"broken\"\ncommand = \"false\"\n",
    ));
    let gate = serve_http(&w);
    let (status, body) = readyz(&gate.base);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["ledger"], "ok");
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("`broken`"), "{reasons}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let w = World::demo();
    // the stdio agent is gone at once (stdin closed): the gate starts, logs, and stops
    let out = Command::new(AIRLOCK)
        .args(["--log-format", "json", "serve", "--config"])
        .arg(w.config())
        .env("AIRLOCK_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("airlock serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        // the demo shop (a child process) shares stderr and writes plain text
        .filter(|l| !l.is_empty() && !l.starts_with("demo_shop:"))
        .collect();
    assert!(!ours.is_empty(), "{stderr}");
    for line in &ours {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(
        ours.iter()
            .any(|l| l.contains("airlock serving MCP on stdio")),
        "{stderr}"
    );
}

#[tokio::test]
async fn metrics_count_calls_tool_server_calls_commits_and_the_approval_queue() {
    let w = World::approvals(
        free_port(),
        r#"{ path = "approve", role = "finance", timeout = "30m", on_timeout = "deny" }"#,
    );
    let cfg = std::fs::read_to_string(w.config()).expect("config");
    let bind = cfg
        .lines()
        .find_map(|l| l.strip_prefix("bind = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("[web] bind");
    let (agent, _child) = w.killable_agent().await;
    let agent = std::sync::Arc::new(agent);
    let echo = agent.call("echo", serde_json::json!({"text": "m"})).await;
    assert!(!crate::support::is_error(&echo));
    let waiting = {
        let a = agent.clone();
        tokio::spawn(async move {
            a.try_call(
                "refund_order",
                serde_json::json!({"order_id": "A-1001", "amount_cents": 5, "reason": "metrics"}),
            )
            .await
        })
    };
    let mut text = String::new();
    for _ in 0..200 {
        let mut r = http()
            .get(&format!("http://{bind}/metrics"))
            .call()
            .expect("metrics answers");
        assert_eq!(r.status().as_u16(), 200);
        text = r.body_mut().read_to_string().expect("metrics body");
        if text.contains(r#"airlock_approvals_pending{role="finance"} 1"#) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        text.contains(r#"airlock_approvals_pending{role="finance"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"airlock_calls_total{path="allow",verdict="allow"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"airlock_calls_total{path="approve",verdict="approve"} 1"#));
    assert!(text.contains(r#"airlock_tool_server_calls_total{server="shop",status="ok"} 1"#));
    let commits = text
        .lines()
        .find_map(|l| l.strip_prefix("airlock_ledger_commit_seconds_count "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .expect("commit count");
    assert!(commits >= 2, "{text}");
    waiting.abort();
}
