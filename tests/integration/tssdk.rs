//! The official MCP TypeScript SDK (npm `@modelcontextprotocol/sdk`) as a second real agent, run
//! by `tests/peers/ts_agent.mjs`: over stdio (it starts `airlock serve` itself) and over streamable
//! HTTP with its own bearer token, it lists the tools, makes an allowed call, is refused one with
//! the reason, and waits for an approval a person gives from the mailed link until it receives
//! the tool's result. `scripts/test` installs it (`.ci/install-peers`, into `.peers`).

use serde_json::{Value, json};

use crate::agents::{self, Serving};
use crate::smtp::{decide, free_port};
use crate::support::signin::outbox_links;
use crate::support::{
    AIRLOCK, Peer, World, proposal_call_id, proposals, require, rows_for, ts_agent,
    ts_agent_answer,
};

/// The demo shop behind Airlock (the repo's policy: refunds need role `finance`, whose mail goes to
/// the outbox), where a call may wait two minutes for its approval.
fn world() -> World {
    let w = World::demo();
    let config = std::fs::read_to_string(w.config()).expect("config");
    assert!(config.contains("max_wait = \"1s\""), "{config}");
    w.write_config(&config.replace("max_wait = \"1s\"", "max_wait = \"2m\""));
    w
}

/// What the agent does, in order: a read (allowed), a deletion (denied), a refund (approval).
fn calls() -> Value {
    json!([
        {"name": "search_orders", "arguments": {"query": "A-1003"}},
        {"name": "delete_customer", "arguments": {"email": "carol@example.com"}},
        {"name": "refund_order", "arguments": {"order_id": "A-1004", "amount_cents": 250, "reason": "late"}},
    ])
}

/// The agent's arguments besides where Airlock is: it waits up to two minutes for a call (its
/// timeout restarts with each progress notification).
const WAIT: [&str; 2] = ["--timeout-ms", "120000"];

/// A person of role `finance` approves the refund from the link mailed to them, while the agent
/// waits in its `tools/call`.
async fn approve_the_refund(w: &World) {
    let link = outbox_links(w, "finance-approvers@example.com", 1)
        .await
        .remove(0);
    let (status, page) = decide(&link, "approve", &[("comment", "ok")]);
    assert_eq!(status, 200, "{page}");
}

/// What the agent printed: the shop's tools and Airlock's, the read's result, the refusal with its
/// reason and decision, and the approved refund's result.
fn assert_answers(v: &Value) {
    assert_eq!(v["protocol"], "2025-11-25", "the SDK's newest version: {v}");
    let mut tools: Vec<&str> = v["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {v}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    tools.sort_unstable();
    assert_eq!(
        tools,
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
    let results = &v["results"];
    assert_eq!(results[0]["isError"], false, "{v}");
    assert_eq!(
        results[0]["text"],
        "A-1003 carol@example.com total=899 cents tags=[pending]"
    );
    assert_eq!(results[1]["isError"], true, "{v}");
    let said = results[1]["text"].as_str().unwrap_or("");
    assert!(
        said.contains("Airlock denied `delete_customer`; it was not run")
            && said.contains("class `destructive` is denied by policy"),
        "{said}"
    );
    let decision = &results[1]["meta"]["airlock/decision"];
    assert_eq!(decision["verdict"], "deny", "{v}");
    assert_eq!(decision["reasons"][0]["code"], "path_deny", "{v}");
    assert_eq!(results[2]["isError"], false, "{v}");
    assert_eq!(results[2]["text"], "refunded 250 cents on A-1004", "{v}");
}

/// The ledger holds the three calls as `actor`'s, each decided and settled as the agent was told.
async fn assert_recorded(w: &World, actor: &str, v: &Value) {
    let rows = w.ledger_rows().await;
    assert_eq!(
        proposals(&rows),
        [
            (actor, "search_orders"),
            (actor, "delete_customer"),
            (actor, "refund_order"),
        ]
    );
    // (verdict, outcome status) of a call
    let fate = |tool: &str| {
        let id = proposal_call_id(&rows, tool);
        (
            rows_for(&rows, "verdict", &id)[0]["body"]["verdict"].clone(),
            rows_for(&rows, "outcome", &id)[0]["body"]["status"].clone(),
        )
    };
    assert_eq!(fate("search_orders"), (json!("allow"), json!("ok")));
    assert_eq!(fate("delete_customer"), (json!("deny"), json!("not_run")));
    assert_eq!(fate("refund_order"), (json!("approve"), json!("ok")));
    assert_eq!(
        v["results"][1]["meta"]["airlock/decision"]["call_id"],
        proposal_call_id(&rows, "delete_customer"),
        "the refusal names its ledger call"
    );
    let verified = w.airlock(&["ledger", "verify"]);
    assert!(verified.status.success(), "{verified:?}");
    assert_eq!(
        w.executed("executed.jsonl"),
        ["search_orders", "refund_order"]
    );
}

#[ignore = "needs the MCP TypeScript SDK and Node.js; scripts/test runs it"]
#[tokio::test]
async fn the_typescript_sdk_over_stdio_calls_is_refused_and_waits_for_an_approval() {
    require(Peer::TypeScriptSdk);
    let w = world();
    let config = w.config().display().to_string();
    let mut args: Vec<&str> = WAIT.to_vec();
    args.extend(["--", AIRLOCK, "serve", "--config", &config]);
    let child = ts_agent(args, &calls());
    // The agent is now blocked in the refund's tools/call; a person approves from the mail.
    approve_the_refund(&w).await;
    let v = tokio::task::spawn_blocking(move || ts_agent_answer(child))
        .await
        .expect("join");
    assert_answers(&v);
    assert_recorded(&w, "agent:test", &v).await;
}

#[ignore = "needs the MCP TypeScript SDK and Node.js; scripts/test runs it"]
#[tokio::test]
async fn the_typescript_sdk_over_http_with_its_own_token_calls_is_refused_and_waits() {
    require(Peer::TypeScriptSdk);
    let w = world();
    let (token, entry) = agents::token("agent:ts");
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!("{config}\n{entry}"));
    let addr = format!("127.0.0.1:{}", free_port());
    let s: Serving = agents::serve(&w, &["--http", &addr], &format!("http://{addr}"));
    let mcp = format!("{}/mcp", s.base);
    let mut args: Vec<&str> = WAIT.to_vec();
    args.extend(["--url", &mcp, "--token", &token]);
    let child = ts_agent(args, &calls());
    // The approval link points at the gate's HTTP listener; the agent waits on the same one.
    approve_the_refund(&w).await;
    let v = tokio::task::spawn_blocking(move || ts_agent_answer(child))
        .await
        .expect("join");
    assert_answers(&v);
    drop(s);
    assert_recorded(&w, "agent:ts", &v).await;
}
