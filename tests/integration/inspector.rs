//! The official MCP Inspector (npm `@modelcontextprotocol/inspector`) in CLI mode as the agent, over
//! streamable HTTP with its own bearer token: it lists, calls, is refused, and is recorded as
//! itself; and over stdio as the README starts it. `scripts/test` installs it (`.ci/install-peers`,
//! into `.peers`); without it these tests fail, and a plain `cargo test` reports them ignored.

use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::agents::{self, Serving};
use crate::smtp::{free_port, http};
use crate::support::{World, Peer, require, proposal_call_id, proposals, rows_for, text_of};

/// The inspector's launcher, where `.ci/install-peers` puts it.
fn inspector() -> std::path::PathBuf {
    crate::support::npm_bin("mcp-inspector")
}

/// The demo shop behind Airlock, one `[[agent]]` for `actor`: (world, its token).
fn world(actor: &str) -> (World, String) {
    let w = World::demo();
    let (token, entry) = agents::token(actor);
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!("{config}\n{entry}"));
    (w, token)
}

/// `airlock serve --http` on a free local port: (server, its MCP URL).
fn serve(w: &World) -> (Serving, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let s = agents::serve(w, &["--http", &addr], &format!("http://{addr}"));
    let mcp = format!("{}/mcp", s.base);
    (s, mcp)
}

/// One inspector run: `--cli URL --transport http [--header "Authorization: Bearer …"] ARGS`.
fn run(mcp: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(inspector());
    cmd.args(["--cli", mcp, "--transport", "http"]);
    if let Some(token) = token {
        cmd.arg("--header")
            .arg(format!("Authorization: Bearer {token}"));
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the inspector")
}

/// A run that succeeded: the JSON it printed on stdout.
fn answer(mcp: &str, token: &str, args: &[&str]) -> Value {
    let out = run(mcp, Some(token), args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "inspector {args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "inspector {args:?} printed no JSON ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[ignore = "needs the MCP Inspector; scripts/test runs it"]
#[tokio::test]
async fn the_official_inspector_as_an_http_agent() {
    require(Peer::Inspector);
    let (w, token) = world("agent:inspector");
    let (s, mcp) = serve(&w);

    // it sees the demo shop's tools and Airlock's own
    let listed = answer(&mcp, &token, &["--method", "tools/list"]);
    let mut names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {listed}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "airlock_status",
            "delete_customer",
            "echo",
            "refund_order",
            "search_orders",
            "send_customer_email",
            "tag_order",
            "untag_order",
        ]
    );

    // a read (read_only: allowed) runs and its real result comes back
    let read = answer(
        &mcp,
        &token,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "search_orders",
            "--tool-arg",
            "query=A-1002",
        ],
    );
    assert_eq!(read["isError"], false, "{read}");
    assert_eq!(
        text_of(&read),
        "A-1002 bob@example.com total=12000 cents tags=[paid,vip]"
    );

    // a deletion (destructive: denied) is refused with its reason, and never reaches the shop
    let denied = answer(
        &mcp,
        &token,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "delete_customer",
            "--tool-arg",
            "email=carol@example.com",
        ],
    );
    assert_eq!(denied["isError"], true, "{denied}");
    let said = text_of(&denied);
    assert!(
        said.contains("Airlock denied `delete_customer`; it was not run")
            && said.contains("class `destructive` is denied by policy"),
        "{said}"
    );
    let decision = &denied["_meta"]["airlock/decision"];
    assert_eq!(decision["verdict"], "deny", "{denied}");
    assert_eq!(decision["reasons"][0]["code"], "path_deny", "{denied}");
    assert_eq!(w.executed("executed.jsonl"), ["search_orders"]);

    // without the token, or with a wrong one, the inspector does not get in
    for bad in [None, Some("alk_0000")] {
        let out = run(&mcp, bad, &["--method", "tools/list"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "token {bad:?} admitted: {stderr}");
        assert!(
            stderr.contains("a valid bearer token is required"),
            "token {bad:?}: {stderr}"
        );
    }
    // the inspector prints Airlock's refusal but not its status: the same request, by hand, is a 401
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "inspector-cli", "version": "0"}}});
    let refused = http()
        .post(&mcp)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .send(init.to_string())
        .expect("POST");
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(
        refused
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"airlock\"")
    );

    // the ledger holds both calls as the inspector's actor, and nothing from the refused runs
    drop(s);
    let rows = w.ledger_rows().await;
    assert_eq!(
        proposals(&rows),
        [
            ("agent:inspector", "search_orders"),
            ("agent:inspector", "delete_customer"),
        ]
    );
    // (verdict, outcome status) of a call
    let fate = |id: &str| {
        (
            rows_for(&rows, "verdict", id)[0]["body"]["verdict"].clone(),
            rows_for(&rows, "outcome", id)[0]["body"]["status"].clone(),
        )
    };
    let read_id = proposal_call_id(&rows, "search_orders");
    assert_eq!(fate(&read_id), (json!("allow"), json!("ok")));
    let denied_id = proposal_call_id(&rows, "delete_customer");
    assert_eq!(
        decision["call_id"], denied_id,
        "the refusal names its ledger call"
    );
    assert_eq!(fate(&denied_id), (json!("deny"), json!("not_run")));
    let verified = w.airlock(&["ledger", "verify"]);
    assert!(verified.status.success(), "{verified:?}");
    assert_eq!(w.executed("executed.jsonl"), ["search_orders"]);
}

/// The README's stdio forms, as written: the Inspector's `--cli -- <airlock> serve --config <abs>`
/// (the `--` keeps `--config` Airlock's), which is also the shape of the Claude Desktop snippet —
/// a client starting `airlock serve --config /abs/airlock.toml` from a working directory of its
/// own. The call is decided and recorded, and nothing is written where the client runs.
#[ignore = "needs the MCP Inspector; scripts/test runs it"]
#[test]
fn the_readme_stdio_form_works_from_any_directory() {
    require(Peer::Inspector);
    let w = World::demo();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let config = w.config().display().to_string();
    let out = Command::new(inspector())
        .current_dir(elsewhere.path())
        .args(["--cli", "--", crate::support::AIRLOCK, "serve", "--config", &config])
        .args(["--method", "tools/call", "--tool-name", "search_orders"])
        .args(["--tool-arg", "query=A-1002"])
        .stdin(Stdio::null())
        .output()
        .expect("run the inspector");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let read: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        text_of(&read),
        "A-1002 bob@example.com total=12000 cents tags=[paid,vip]",
        "{read}"
    );
    assert_eq!(w.executed("executed.jsonl"), ["search_orders"]);
    let verified = w.airlock(&["ledger", "verify"]);
    assert!(verified.status.success(), "{verified:?}");
    let left: Vec<_> = std::fs::read_dir(elsewhere.path()).expect("dir").collect();
    assert!(left.is_empty(), "files written in the client's directory: {left:?}");
}
