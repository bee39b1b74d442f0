//! Test harness: a temp directory per test with its own config, ledger and demo-shop log.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService, ServiceExt};
use rmcp::transport::TokioChildProcess;
use serde_json::{Map, Value, json};

pub mod oauth;
mod peers;
mod raw;
mod receiver;
pub mod signin;
mod mail;
mod slow;
mod store;
mod witness;
pub use peers::{Peer, npm_bin, peers_dir, python, require};
pub use mail::{outbox_mails, unfold};
pub use raw::{RawAgent, meta_2026};
pub use receiver::Receiver;
pub use slow::{SlowHttp, record_after, slow_server};
pub use store::{new_database, on_postgres};
pub use witness::Witness;

pub const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// `target/<profile>/examples/demo_shop`, built by `cargo test` with the other examples.
pub fn demo_shop() -> PathBuf {
    example("demo_shop")
}

/// `target/<profile>/examples/NAME`, built by `cargo test`.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let p = profile_dir.join("examples").join(name);
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test` (it builds the examples)",
        p.display()
    );
    p
}

/// A test's world: a directory holding airlock.toml, the ledger and the demo shop's execution log.
pub struct World {
    pub dir: tempfile::TempDir,
    /// The world's PostgreSQL ledger (in the `integration_pg` suite).
    pub database: Option<String>,
}

impl World {
    /// The repo's policy and manifests, the demo shop as server `shop` with prefix "".
    pub fn demo() -> World {
        let w = World::empty();
        w.write_config(&format!(
            "[gate]\nmanifests = {m:?}\npolicies = {p:?}\nledger = \"ledger.redb\"\nactor = \"agent:test\"\nmax_wait = \"1s\"\n\n[web]\nbind = \"127.0.0.1:0\"\n[mail]\noutbox = \"outbox\"\n\n{shop}",
            m = format!("{REPO}/tool-manifests"),
            p = format!("{REPO}/policies"),
            shop = w.shop_server("shop", "", "executed.jsonl"),
        ));
        w
    }

    /// The demo shop with the repo's manifests, a test policy whose `financial` class needs
    /// approval, mail to a real SMTP server on `smtp_port`, and approval pages on a free port.
    pub fn approvals(smtp_port: u16, financial: &str) -> World {
        World::approvals_with(smtp_port, financial, &[])
    }

    /// [`World::approvals`] with extra demo-shop arguments.
    pub fn approvals_with(smtp_port: u16, financial: &str, shop_args: &[&str]) -> World {
        let w = World::empty();
        w.write(
            "p/policy.toml",
            &format!(
                "version = \"test-approvals\"\n[classes]\nread_only = {{ path = \"allow\" }}\n\
                 internal_reversible = {{ path = \"allow\", require_reversal = true, role = \"ops\" }}\n\
                 customer_facing = {{ path = \"conditional\", require_evidence = true, role = \"support\" }}\n\
                 destructive = {{ path = \"deny\" }}\n\
                 financial = {financial}\n\
                 [roles]\nops = {{ emails = [\"ops@example.com\"] }}\nsupport = {{ emails = [\"support@example.com\"] }}\n\
                 finance = {{ emails = [\"ann@example.com\", \"bob@example.com\"], escalate_to = \"cfo\" }}\ncfo = {{ emails = [\"cfo@example.com\"] }}\n"
            ),
        );
        w.write_config(&format!(
            "[gate]\nmanifests = {m:?}\npolicies = \"p\"\nledger = \"ledger.redb\"\nactor = \"agent:test\"\nmax_wait = \"2m\"\n\n\
             [mail]\nfrom = \"airlock@example.com\"\nsmtp = \"smtp://127.0.0.1:{smtp_port}\"\n\n[web]\nbind = \"127.0.0.1:{web_port}\"\n\n{shop}",
            web_port = crate::smtp::free_port(),
            m = format!("{REPO}/tool-manifests"),
            shop = w.shop_server_with("shop", "", "executed.jsonl", shop_args),
        ));
        w
    }

    pub fn empty() -> World {
        World {
            dir: tempfile::tempdir().expect("temp dir"),
            database: on_postgres().then(new_database),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config(&self) -> PathBuf {
        self.path("airlock.toml")
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, text).expect("write");
    }

    /// Write airlock.toml; in the `integration_pg` suite with a `[store]` naming the world's
    /// database (unless the text has one).
    pub fn write_config(&self, text: &str) {
        match &self.database {
            Some(url) if !text.contains("[store]") => {
                self.write("airlock.toml", &format!("{text}\n[store]\nurl = {url:?}\n"))
            }
            _ => self.write("airlock.toml", text),
        }
    }

    /// A `[[server]]` table running the demo shop, logging what it executes to `log`.
    pub fn shop_server(&self, name: &str, prefix: &str, log: &str) -> String {
        self.shop_server_with(name, prefix, log, &[])
    }

    /// The same, with extra demo-shop arguments (e.g. `--refund-delay-ms`).
    pub fn shop_server_with(&self, name: &str, prefix: &str, log: &str, extra: &[&str]) -> String {
        format!(
            "[[server]]\nname = {name:?}\ncommand = {cmd:?}\nargs = [\"--log\", {log:?}{extra}]\nprefix = {prefix:?}\n",
            extra = extra.iter().map(|a| format!(", {a:?}")).collect::<String>(),
            cmd = demo_shop().display().to_string(),
            log = self.path(log).display().to_string(),
        )
    }

    /// Tools the demo shop actually executed, from its log.
    pub fn executed(&self, log: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(log))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("log line")["tool"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    /// Wait (up to 10 s) until the demo shop has started executing something, then return what
    /// it executed (it logs a call before any slow part of it).
    pub async fn wait_executed(&self, log: &str) -> Vec<String> {
        for _ in 0..400 {
            if !self.executed(log).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        self.executed(log)
    }

    /// Where the gate writes its checkpoints by default: beside the ledger file, or beside
    /// airlock.toml for a PostgreSQL ledger.
    pub fn checkpoint_dir(&self) -> PathBuf {
        match &self.database {
            Some(_) => self.path("checkpoints"),
            None => self.path("ledger.redb.checkpoints"),
        }
    }

    /// The checkpoint files, fewest rows first, as (rows, path).
    pub fn checkpoints(&self) -> Vec<(u64, PathBuf)> {
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(self.checkpoint_dir())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                let name = p.file_name()?.to_str()?.to_string();
                let rows = name.strip_prefix("checkpoint-")?.split('-').next()?.parse().ok()?;
                Some((rows, p))
            })
            .collect();
        found.sort();
        found
    }

    /// Run an `airlock` subcommand with this world's config.
    pub fn airlock(&self, args: &[&str]) -> Output {
        let config = self.config();
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--config", config.to_str().expect("utf-8 path")]);
        Command::new(AIRLOCK)
            .args(&full)
            .output()
            .expect("run airlock")
    }

    /// Start `airlock serve` and connect to it as an MCP client over stdio.
    pub async fn agent(&self) -> Agent {
        self.agent_with_env(&[]).await
    }

    /// [`World::agent`], with `airlock serve` given extra environment variables.
    pub async fn agent_with_env(&self, env: &[(&str, &str)]) -> Agent {
        let mut cmd = tokio::process::Command::new(AIRLOCK);
        cmd.arg("serve")
            .arg("--config")
            .arg(self.config())
            .env("AIRLOCK_LOG", "warn")
            .envs(env.iter().copied());
        let transport = TokioChildProcess::new(cmd).expect("spawn airlock serve");
        Agent {
            client: ().serve(transport).await.expect("MCP handshake with airlock"),
        }
    }

    /// Start `airlock serve` as a child this test can `kill -9`, and connect to it with
    /// `handler` as the MCP client (e.g. one that declares Tasks or counts progress).
    pub async fn client<H: rmcp::ClientHandler>(
        &self,
        handler: H,
    ) -> (RunningService<RoleClient, H>, tokio::process::Child) {
        let mut child = self.spawn_serve(None);
        let io = (
            child.stdout.take().expect("stdout"),
            child.stdin.take().expect("stdin"),
        );
        (
            handler.serve(io).await.expect("MCP handshake with airlock"),
            child,
        )
    }

    /// [`World::killable_agent`] with `airlock serve` logging at debug level into `log` (in the
    /// world's directory).
    pub async fn logged_agent(&self, log: &str) -> (Agent, tokio::process::Child) {
        let mut child = self.spawn_serve(Some(log));
        let io = (
            child.stdout.take().expect("stdout"),
            child.stdin.take().expect("stdin"),
        );
        let client = ().serve(io).await.expect("MCP handshake with airlock");
        (Agent { client }, child)
    }

    /// `airlock serve` on this world, its stdio piped; with `log`, at debug level into that file.
    fn spawn_serve(&self, log: Option<&str>) -> tokio::process::Child {
        let mut cmd = tokio::process::Command::new(AIRLOCK);
        cmd.arg("serve")
            .arg("--config")
            .arg(self.config())
            .env("AIRLOCK_LOG", if log.is_some() { "debug" } else { "warn" })
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(log) = log {
            cmd.stderr(std::fs::File::create(self.path(log)).expect("log file"));
        }
        cmd.spawn().expect("spawn airlock serve")
    }

    /// [`World::client`] with the plain test agent.
    pub async fn killable_agent(&self) -> (Agent, tokio::process::Child) {
        let (client, child) = self.client(()).await;
        (Agent { client }, child)
    }

    /// `airlock serve` holds the ledger while it runs and exits shortly after its agent goes;
    /// poll until the file is free.
    pub async fn wait_for_ledger(&self) {
        for _ in 0..400 {
            let out = self.airlock(&["ledger", "verify", "--json"]);
            if !String::from_utf8_lossy(&out.stderr).contains("open in another process") {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("airlock serve never released the ledger");
    }

    /// The ledger rows, via `airlock ledger export` (after the gate has let go of the file).
    pub async fn ledger_rows(&self) -> Vec<Value> {
        self.wait_for_ledger().await;
        let out = self.airlock(&["ledger", "export"]);
        assert!(
            out.status.success(),
            "export failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("jsonl row"))
            .collect()
    }
}

pub struct Agent {
    pub client: RunningService<RoleClient, ()>,
}

impl Agent {
    pub async fn tools(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .client
            .list_all_tools()
            .await
            .expect("tools/list")
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        names
    }

    /// A call with `_meta` (where agents put evidence references).
    pub async fn call_with_meta(&self, tool: &str, args: Value, meta: Value) -> CallToolResult {
        self.try_call_with_meta(tool, args, meta)
            .await
            .expect("tools/call answered")
    }

    /// [`Agent::call_with_meta`] whose connection may die under it (kill -9 tests).
    pub async fn try_call_with_meta(
        &self,
        tool: &str,
        args: Value,
        meta: Value,
    ) -> Result<CallToolResult, String> {
        let mut p = CallToolRequestParams::new(tool.to_string());
        p.arguments = args.as_object().cloned();
        p.meta = meta
            .as_object()
            .cloned()
            .map(|m| rmcp::model::RequestMetaObject(rmcp::model::MetaObject(m)));
        self.client.call_tool(p).await.map_err(|e| e.to_string())
    }

    /// A call whose connection may die under it (kill -9 tests).
    pub async fn try_call(&self, tool: &str, args: Value) -> Result<CallToolResult, String> {
        let mut p = CallToolRequestParams::new(tool.to_string());
        p.arguments = args.as_object().cloned();
        self.client.call_tool(p).await.map_err(|e| e.to_string())
    }

    pub async fn call(&self, tool: &str, args: Value) -> CallToolResult {
        let mut p = CallToolRequestParams::new(tool.to_string());
        p.arguments = Some(match args {
            Value::Object(o) => o,
            _ => Map::new(),
        });
        self.client.call_tool(p).await.expect("tools/call answered")
    }

    /// Ask `airlock_status` about an approval until its answer contains `needle` (up to 5 s);
    /// returns the last answer.
    pub async fn status_until(&self, approval_id: &str, needle: &str) -> String {
        let mut answer = String::new();
        for _ in 0..100 {
            answer = text(
                &self
                    .call(
                        "airlock_status",
                        serde_json::json!({"approval_id": approval_id}),
                    )
                    .await,
            );
            if answer.contains(needle) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        answer
    }

    /// Stop the agent session; airlock exits when its stdin closes.
    pub async fn close(self) {
        let _ = self.client.cancel().await;
    }
}

/// The concatenated text content of a result.
pub fn text(r: &CallToolResult) -> String {
    text_of(&serde_json::to_value(r).expect("result json"))
}

/// The concatenated text content of a result as JSON (what a peer agent printed).
pub fn text_of(v: &Value) -> String {
    v["content"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

pub fn is_error(r: &CallToolResult) -> bool {
    r.is_error == Some(true)
}

/// The decision Airlock attached to a refusal.
pub fn decision(r: &CallToolResult) -> Value {
    serde_json::to_value(r).expect("json")["_meta"]["airlock/decision"].clone()
}

/// Rows of one kind for one tool's calls.
/// (actor, tool) of every proposal row, in ledger order.
pub fn proposals(rows: &[Value]) -> Vec<(&str, &str)> {
    rows.iter()
        .filter(|r| r["kind"] == "proposal")
        .map(|r| {
            (
                r["body"]["actor"].as_str().unwrap_or(""),
                r["body"]["tool"].as_str().unwrap_or(""),
            )
        })
        .collect()
}

pub fn rows_for<'a>(rows: &'a [Value], kind: &str, call_id: &str) -> Vec<&'a Value> {
    rows.iter()
        .filter(|r| r["kind"] == kind && r["call_id"] == call_id)
        .collect()
}

pub fn proposal_call_id(rows: &[Value], tool: &str) -> String {
    rows.iter()
        .find(|r| r["kind"] == "proposal" && r["body"]["tool"] == json!(tool))
        .and_then(|r| r["call_id"].as_str())
        .unwrap_or_else(|| panic!("no proposal for {tool}"))
        .to_string()
}

/// Start the official Python SDK agent (`tests/peers/python_agent.py ARGS`) with `calls` on its
/// stdin; [`python_agent_answer`] waits for what it printed.
pub fn python_agent<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
    calls: &Value,
) -> std::process::Child {
    python_peer("python_agent.py", args, calls)
}

/// Start a script of `tests/peers` on the MCP Python SDK (`SCRIPT ARGS`) with `input` on its
/// stdin; [`python_agent_answer`] waits for what it printed.
pub fn python_peer<S: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: impl IntoIterator<Item = S>,
    input: &Value,
) -> std::process::Child {
    require(Peer::PythonSdk);
    let mut cmd = Command::new(python());
    cmd.arg(format!("{REPO}/tests/peers/{script}")).args(args);
    spawn_with_input(cmd, input, "python (the peers' virtual environment)")
}

/// The JSON a Python agent printed, once it exited successfully.
pub fn python_agent_answer(child: std::process::Child) -> Value {
    let out = child.wait_with_output().expect("python agent");
    assert!(
        out.status.success(),
        "python agent failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("agent json")
}

/// Start the official TypeScript SDK agent (`node tests/peers/ts_agent.mjs ARGS`) with `calls` on
/// its stdin; [`ts_agent_answer`] waits for what it printed. An `airlock serve` it starts gets
/// `AIRLOCK_LOG=warn`.
pub fn ts_agent<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
    calls: &Value,
) -> std::process::Child {
    require(Peer::TypeScriptSdk);
    let mut cmd = Command::new("node");
    cmd.arg(format!("{REPO}/tests/peers/ts_agent.mjs"))
        .args(args)
        .env("AIRLOCK_PEERS_DIR", peers_dir())
        .env("AIRLOCK_LOG", "warn");
    spawn_with_input(cmd, calls, "node (for the TypeScript SDK agent)")
}

/// Start a peer script with piped stdio and `input` (JSON) written to its stdin.
fn spawn_with_input(mut cmd: Command, input: &Value, what: &str) -> std::process::Child {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write the peer's input");
    child
}

/// The JSON the TypeScript SDK agent printed, once it exited successfully.
pub fn ts_agent_answer(child: std::process::Child) -> Value {
    let out = child.wait_with_output().expect("TypeScript agent");
    assert!(
        out.status.success(),
        "TypeScript agent failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the TypeScript agent printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The `seen` of held call `id`'s form on the review page at `page_url`: the hash of what the
/// page shows of it, as a browser would send it back.
pub fn seen_on(page_url: &str, id: &str) -> String {
    let (status, page) = crate::smtp::get(page_url);
    assert_eq!(status, 200, "{page}");
    seen_in(&page, id)
}

/// The `seen` of held call `id`'s form in a review page's HTML.
pub fn seen_in(page: &str, id: &str) -> String {
    let form = &page[page
        .find(&format!("/held/{id}\""))
        .unwrap_or_else(|| panic!("held call {id} is not on the page: {page}"))..];
    let marker = "name=\"seen\" value=\"";
    let at = form.find(marker).expect("a seen field") + marker.len();
    form[at..].split('"').next().unwrap_or("").to_string()
}

/// Release or reject held call `id` from the review page at `page_url`, as a click does: with
/// the `seen` the page rendered, and `extra` fields.
pub fn review_post(page_url: &str, id: &str, action: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let seen = seen_on(page_url, id);
    let mut form = vec![("action", action), ("seen", seen.as_str())];
    form.extend_from_slice(extra);
    crate::smtp::post(&format!("{page_url}/held/{id}"), &form)
}
