//! Peers nobody here wrote: the official MCP Python SDK as the agent, and `mcp-server-time` (PyPI)
//! as a tool server. `.ci/install-peers` installs them; CI sets AIRLOCK_REQUIRE_PEERS so they
//! cannot be skipped there.

use serde_json::json;

use crate::support::{
    AIRLOCK, REPO, World, decision, is_error, Peer, require, python_agent, python_agent_answer,
    text,
};

#[ignore = "needs mcp-server-time; scripts/test runs it"]
#[tokio::test]
async fn a_third_party_tool_server_behind_the_gate() {
    require(Peer::TimeServer);
    let w = World::empty();
    w.write(
        "m/time.toml",
        "[[tool]]\nserver = \"time\"\nname = \"get_current_time\"\nclass = \"read_only\"\ntarget = \"clock\"\nimpact = \"Reads the time\"\nreversal = \"none: reads\"\n",
    );
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = {p:?}\n[web]\nbind = \"127.0.0.1:0\"\n\n[[server]]\nname = \"time\"\ncommand = {python:?}\nargs = [\"-m\", \"mcp_server_time\", \"--local-timezone\", \"UTC\"]\n",
        p = format!("{REPO}/policies"),
        python = crate::support::python().display().to_string(),
    ));
    let agent = w.agent().await;
    let tools = agent.tools().await;
    assert_eq!(
        tools,
        [
            "airlock_status",
            "time__convert_time",
            "time__get_current_time"
        ]
    );
    let r = agent
        .call(
            "time__get_current_time",
            json!({"timezone": "Europe/Paris"}),
        )
        .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(text(&r).contains("Europe/Paris"), "{}", text(&r));
    // its other tool has no manifest: quarantined
    let r = agent
        .call(
            "time__convert_time",
            json!({"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}),
        )
        .await;
    assert!(is_error(&r));
    assert_eq!(decision(&r)["reasons"][0]["code"], "unknown_tool");
    agent.close().await;
}

#[ignore = "needs the MCP Python SDK; scripts/test runs it"]
#[tokio::test]
async fn the_official_python_sdk_as_the_agent() {
    require(Peer::PythonSdk);
    let w = World::demo();
    let calls = json!([
        {"name": "search_orders", "arguments": {"query": "A-1003"}},
        {"name": "delete_customer", "arguments": {"email": "carol@example.com"}},
        {"name": "launch_rockets", "arguments": {}},
    ]);
    let config = w.config().display().to_string();
    let v = python_agent_answer(python_agent(
        ["--", AIRLOCK, "serve", "--config", &config],
        &calls,
    ));
    assert_eq!(v["tools"].as_array().map(Vec::len), Some(8));
    let results = &v["results"];
    assert_eq!(results[0]["isError"], false);
    assert!(
        results[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("A-1003")),
        "{results}"
    );
    assert_eq!(results[1]["isError"], true);
    assert!(
        results[1]["text"]
            .as_str()
            .is_some_and(|t| t.contains("classes.destructive")),
        "{results}"
    );
    assert_eq!(results[2]["isError"], true);
    assert!(
        results[2]["text"]
            .as_str()
            .is_some_and(|t| t.contains("quarantined")),
        "{results}"
    );
    assert_eq!(w.executed("executed.jsonl"), ["search_orders"]);
}

#[ignore = "needs aiosmtpd and the MCP Python SDK; scripts/test runs it"]
#[tokio::test]
async fn the_python_sdk_agent_waits_for_an_approval_and_receives_the_result() {
    require(Peer::PythonSdk);
    let smtp = crate::smtp::Smtp::start();
    let w = World::approvals(
        smtp.port,
        r#"{ path = "approve", role = "finance", timeout = "30m" }"#,
    );
    let calls = json!([{"name": "refund_order", "arguments": {"order_id": "A-1004", "amount_cents": 250, "reason": "late"}}]);
    let config = w.config().display().to_string();
    let child = python_agent(
        [
            "--timeout",
            "120",
            "--",
            AIRLOCK,
            "serve",
            "--config",
            &config,
        ],
        &calls,
    );
    // The Python agent is now blocked in tools/call; a person approves from the mail.
    let link = smtp
        .wait_for("bob@example.com", "refund_order", 1)
        .await
        .link();
    let (status, page) = crate::smtp::decide(&link, "approve", &[("comment", "ok")]);
    assert_eq!(status, 200, "{page}");
    let v = tokio::task::spawn_blocking(move || python_agent_answer(child))
        .await
        .expect("join");
    assert_eq!(v["results"][0]["isError"], false, "{v}");
    assert_eq!(v["results"][0]["text"], "refunded 250 cents on A-1004");
    assert_eq!(w.executed("executed.jsonl"), ["refund_order"]);
}
