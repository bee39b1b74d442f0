//! An agent that speaks raw JSON-RPC to `airlock serve` over stdio, line by line, and reads its
//! log: for what an SDK would not send, or would hide.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::{AIRLOCK, World};

pub struct RawAgent {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

/// The `_meta` of a 2026-07-28 request from an agent that declares `capabilities`.
pub fn meta_2026(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    })
}

impl RawAgent {
    /// Start `airlock serve` (log level `warn`) and initialize at protocol `version`.
    pub async fn start(w: &World, version: &str) -> RawAgent {
        let mut raw = RawAgent::spawn(w);
        raw.send(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}))
            .await;
        let init = raw.answer(0).await;
        assert_eq!(init["result"]["protocolVersion"], version, "{init}");
        raw.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        raw
    }

    /// Start `airlock serve` for an agent on protocol 2026-07-28, which does not initialize:
    /// each request names its version, client and capabilities in `_meta` ([`meta_2026`]).
    pub fn start_2026(w: &World) -> RawAgent {
        RawAgent::spawn(w)
    }

    fn spawn(w: &World) -> RawAgent {
        let mut child = tokio::process::Command::new(AIRLOCK)
            .args(["serve", "--config"])
            .arg(w.config())
            .env("AIRLOCK_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn airlock");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        RawAgent {
            child,
            stdin,
            lines,
        }
    }

    /// Write one message.
    pub async fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .expect("write");
        stdin.flush().await.expect("flush");
    }

    /// Send request `id` and wait for its answer.
    pub async fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        self.answer(id).await
    }

    /// The answer to request `id` (up to 60 s), skipping everything else.
    pub async fn answer(&mut self, id: u64) -> Value {
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = self.lines.next_line().await.expect("read") {
                let v: Value = serde_json::from_str(&line).expect("airlock writes JSON-RPC");
                if v["id"] == id {
                    return v;
                }
            }
            panic!("airlock closed stdout before answering {id}");
        })
        .await
        .expect("airlock answered")
    }

    /// Close stdin (airlock then stops) and return its log.
    pub async fn finish(mut self) -> String {
        drop(self.stdin.take());
        let mut log = String::new();
        self.child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut log)
            .await
            .expect("read the log");
        let _ = self.child.wait().await;
        log
    }
}
