//! Cancellation passes through: an agent that cancels an allowed call in flight gets it cancelled
//! on the tool server (over stdio and over HTTP), and the outcome row says so; a cancellation of
//! a request that is none of the agent's calls cancels nothing and is logged; an approved call,
//! which runs with no agent waiting on it, is never cancelled by the agent.

use std::path::Path;

use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest};
use rmcp::service::PeerRequestOptions;
use serde_json::{Value, json};

use crate::support::{
    Peer, REPO, RawAgent, SlowHttp, World, proposal_call_id, record_after, require, rows_for,
    slow_server, text,
};

/// Send `tool` with `arguments` as a request the agent may cancel.
async fn call_cancellable(
    agent: &crate::support::Agent,
    tool: &str,
    arguments: Value,
) -> rmcp::service::RequestHandle<rmcp::RoleClient> {
    let mut p = CallToolRequestParams::new(tool.to_string());
    p.arguments = arguments.as_object().cloned();
    agent
        .client
        .peer()
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(p)),
            PeerRequestOptions::no_options(),
        )
        .await
        .expect("tools/call sent")
}

/// A world whose only tool server is `server` (the slow one), its tool allowed on autopilot.
fn slow_world(server: &str) -> World {
    let w = World::empty();
    w.write(
        "m/slow.toml",
        "[[tool]]\nserver = \"slow\"\nname = \"slow\"\nclass = \"read_only\"\ntarget = \"nothing\"\nimpact = \"Waits, then says done\"\nreversal = \"none: it changes nothing\"\n",
    );
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = {p:?}\nledger = \"ledger.redb\"\nactor = \"agent:test\"\n\n[web]\nbind = \"127.0.0.1:0\"\n\n{server}",
        p = format!("{REPO}/policies"),
    ));
    w
}

/// The agent calls the slow tool through the gate, cancels it once it runs, and the tool server
/// records the cancellation; the outcome row of the call says `cancelled`.
async fn cancelled_on_the_tool_server(w: &World, record: &Path) {
    let agent = w.agent().await;
    let handle = call_cancellable(&agent, "slow__slow", json!({"seconds": 120})).await;
    assert_eq!(record_after(record, 0).await, ["started"]);
    handle
        .cancel(Some("the test cancels it".into()))
        .await
        .expect("notifications/cancelled sent");
    assert_eq!(
        record_after(record, 1).await,
        ["started", "cancelled"],
        "the tool server stopped the call, and did not finish it"
    );
    agent.close().await;
    let rows = w.ledger_rows().await;
    let call = proposal_call_id(&rows, "slow__slow");
    let outcome = rows_for(&rows, "outcome", &call);
    assert_eq!(outcome.len(), 1, "{outcome:?}");
    assert_eq!(outcome[0]["body"]["status"], "cancelled", "{outcome:?}");
    assert!(
        outcome[0]["body"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("told to stop")),
        "{outcome:?}"
    );
}

#[ignore = "needs the MCP Python SDK; scripts/test runs it"]
#[tokio::test]
async fn an_agent_that_cancels_an_allowed_call_cancels_it_on_a_stdio_tool_server() {
    require(Peer::PythonSdk);
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("record");
    let w = slow_world(&slow_server(&record));
    cancelled_on_the_tool_server(&w, &record).await;
}

#[ignore = "needs the MCP Python SDK; scripts/test runs it"]
#[tokio::test]
async fn an_agent_that_cancels_an_allowed_call_cancels_it_on_an_http_tool_server() {
    require(Peer::PythonSdk);
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("record");
    let server = SlowHttp::start(&record);
    let w = slow_world(&format!(
        "[[server]]\nname = \"slow\"\nurl = {:?}\n",
        server.url
    ));
    cancelled_on_the_tool_server(&w, &record).await;
}

#[tokio::test]
async fn a_cancellation_of_a_request_the_agent_does_not_own_cancels_nothing_and_is_logged() {
    let w = World::demo();
    let mut agent = RawAgent::start(&w, "2025-06-18").await;
    agent
        .send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 42, "reason": "not a request of mine"}}))
        .await;
    let answer = agent
        .request(
            1,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "still serving"}}),
        )
        .await;
    assert_eq!(answer["result"]["content"][0]["text"], "still serving");
    let log = agent.finish().await;
    assert!(
        log.contains("none of its tool calls in flight") && log.contains("42"),
        "{log}"
    );
    assert_eq!(w.executed("executed.jsonl"), ["echo"]);
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn an_approved_call_runs_to_its_end_though_its_agent_cancels_the_request() {
    require(Peer::Smtp);
    let smtp = crate::smtp::Smtp::start();
    let w = World::approvals_with(
        smtp.port,
        r#"{ path = "approve", role = "finance", timeout = "30m" }"#,
        &["--refund-delay-ms", "2000"],
    );
    let agent = w.agent().await;
    let refund = json!({"order_id": "A-1001", "amount_cents": 4200, "reason": "damaged"});
    let handle = call_cancellable(&agent, "refund_order", refund).await;
    let link = smtp
        .wait_for("ann@example.com", "refund_order", 1)
        .await
        .link();
    assert_eq!(crate::smtp::decide(&link, "approve", &[]).0, 200);
    // the shop has started the refund (it logs before its slow part) when the agent cancels
    assert_eq!(w.wait_executed("executed.jsonl").await, ["refund_order"]);
    handle
        .cancel(Some("the test cancels it".into()))
        .await
        .expect("notifications/cancelled sent");
    let id = crate::smtp::approval_id(&link);
    let mut answer = String::new();
    for _ in 0..600 {
        answer = text(&agent.call("airlock_status", json!({"approval_id": id})).await);
        if answer.contains("refunded") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answer, "refunded 4200 cents on A-1001", "the run went on");
    agent.close().await;
    let rows = w.ledger_rows().await;
    let outcomes: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "outcome").collect();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0]["body"]["status"], "ok", "{outcomes:?}");
    assert_eq!(outcomes[0]["body"]["approval_id"], json!(id));
}
