//! Raw JSON-RPC on stdio, as a careless or hostile agent would send it: malformed calls and
//! oversized frames are answered or dropped, never forwarded, and the gate keeps serving.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{AIRLOCK, World};

#[tokio::test]
async fn malformed_and_oversized_calls_never_reach_the_tool_server() {
    let w = World::demo();
    let mut child = tokio::process::Command::new(AIRLOCK)
        .args(["serve", "--config"])
        .arg(w.config())
        .env("AIRLOCK_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn airlock");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let oversized = "x".repeat(5 << 20);
    let frames = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}).to_string(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": oversized}}}).to_string(),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": "not an object"}}).to_string(),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"arguments": {"text": "no name"}}}).to_string(),
        "{ this is not json".to_string(),
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "still serving"}}}).to_string(),
    ];
    for f in &frames {
        stdin.write_all(f.as_bytes()).await.expect("write");
        stdin.write_all(b"\n").await.expect("write");
    }
    stdin.flush().await.expect("flush");

    let mut responses: Vec<Value> = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read") {
            let v: Value = serde_json::from_str(&line).expect("airlock writes JSON-RPC");
            let done = v["id"] == 5;
            responses.push(v);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("airlock answered the last call");
    drop(stdin);
    let _ = child.wait().await;

    let by_id = |id: u64| responses.iter().find(|r| r["id"] == id).cloned();
    assert!(
        by_id(2).is_none(),
        "an oversized frame is dropped unread: {:?}",
        by_id(2)
    );
    for id in [3, 4] {
        let r = by_id(id).unwrap_or_else(|| panic!("no answer to malformed call {id}"));
        assert!(
            r["error"]["code"].is_i64(),
            "malformed call {id} gets a JSON-RPC error: {r}"
        );
    }
    let last = by_id(5).expect("answer to the good call");
    assert_eq!(last["result"]["content"][0]["text"], "still serving");
    assert_eq!(
        w.executed("executed.jsonl"),
        ["echo"],
        "only the well-formed call ran"
    );
}
