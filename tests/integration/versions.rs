//! Protocol versions: every result Airlock relays or makes is valid for an agent on 2026-07-28
//! (the official Python SDK in its default mode validates each one), and agents on older versions
//! get the results they always did.

use serde_json::{Value, json};

use crate::support::{
    AIRLOCK, Peer, REPO, RawAgent, World, npm_bin, python_agent_answer, python_peer, require,
};

/// The demo shop (prefix `shop__`) and `server-everything` (prefix `ev__`, its `echo` allowed)
/// behind the repository's policy; approvals wait 1 s.
fn two_servers() -> World {
    two_servers_with("")
}

/// [`two_servers`], with `extra` lines in server-everything's `[[server]]` table.
pub(crate) fn two_servers_with(extra: &str) -> World {
    let w = World::empty();
    let shop = std::fs::read_to_string(format!("{REPO}/tool-manifests/demo_shop.toml"))
        .expect("the demo shop's manifests");
    w.write("m/shop.toml", &shop);
    w.write(
        "m/everything.toml",
        "[[tool]]\nserver = \"everything\"\nname = \"echo\"\nclass = \"read_only\"\ntarget = \"none\"\nimpact = \"Returns its input\"\nreversal = \"none: it changes nothing\"\n",
    );
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = {p:?}\nledger = \"ledger.redb\"\nactor = \"agent:test\"\nmax_wait = \"1s\"\n\n[web]\nbind = \"127.0.0.1:0\"\n[mail]\noutbox = \"outbox\"\n\n{shop}\n[[server]]\nname = \"everything\"\ncommand = {everything:?}\nargs = [\"stdio\"]\nprefix = \"ev__\"\n{extra}",
        p = format!("{REPO}/policies"),
        shop = w.shop_server("shop", "shop__", "executed.jsonl"),
        everything = npm_bin("mcp-server-everything").display().to_string(),
    ));
    w
}

/// The entries of `list` that the SDK refused, if any.
pub(crate) fn refused(list: &Value) -> Vec<&Value> {
    list.as_array()
        .map(|a| a.iter().filter(|e| e.get("error").is_some()).collect())
        .unwrap_or_default()
}

/// The text of the entry of `list` whose `key` is `name`.
pub(crate) fn text_for<'a>(list: &'a Value, key: &str, name: &str) -> &'a str {
    list.as_array()
        .and_then(|a| a.iter().find(|e| e[key] == name))
        .and_then(|e| e["text"].as_str())
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

#[ignore = "needs the MCP Python SDK and server-everything; scripts/test runs it"]
#[tokio::test]
async fn the_python_sdk_in_its_default_mode_accepts_every_result_through_the_gate() {
    require(Peer::PythonSdk);
    require(Peer::Everything);
    let w = two_servers();
    let plan = json!({
        "read": ["shop://orders/A-1001", "demo://resource/static/document/features.md"],
        "prompts": [{"name": "shop__apology"}, {"name": "ev__simple-prompt"}],
        "complete": [{"prompt": "ev__completable-prompt", "argument": {"name": "department", "value": "E"}}],
        "calls": [
            {"name": "shop__search_orders", "arguments": {"query": "A-1003"}},
            {"name": "ev__echo", "arguments": {"message": "hello through the gate"}},
            {"name": "shop__delete_customer", "arguments": {"email": "carol@example.com"}},
            {"name": "shop__refund_order", "arguments": {"order_id": "A-1004", "amount_cents": 250, "reason": "late"}},
            {"name": "ev__get-env", "arguments": {}},
            {"name": "airlock_status", "arguments": {"approval_id": "no-such-approval"}},
        ],
    });
    let config = w.config().display().to_string();
    let v = python_agent_answer(python_peer(
        "python_client_default.py",
        ["--", AIRLOCK, "serve", "--config", &config],
        &plan,
    ));
    assert_eq!(v["protocol"], "2026-07-28", "{v}");
    let tools: Vec<&str> = v["tools"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for t in ["shop__search_orders", "ev__echo", "airlock_status"] {
        assert!(tools.contains(&t), "{t} listed: {tools:?}");
    }
    for kind in ["reads", "gets", "completions", "results"] {
        assert_eq!(refused(&v[kind]), Vec::<&Value>::new(), "{kind}: {v}");
    }
    assert!(text_for(&v["reads"], "uri", "shop://orders/A-1001").contains("A-1001"));
    assert!(
        text_for(
            &v["reads"],
            "uri",
            "demo://resource/static/document/features.md"
        )
        .contains("Everything")
    );
    assert!(text_for(&v["gets"], "name", "shop__apology").contains("apology"));
    assert!(!text_for(&v["gets"], "name", "ev__simple-prompt").is_empty());
    assert_eq!(v["completions"][0]["values"], json!(["Engineering"]), "{v}");
    let results = &v["results"];
    let result = |name: &str| -> (bool, &str) {
        let r = results
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == name))
            .unwrap_or_else(|| panic!("no result for {name}: {results}"));
        (r["isError"] == true, r["text"].as_str().unwrap_or(""))
    };
    let (error, text) = result("shop__search_orders");
    assert!(!error && text.contains("A-1003"), "relayed: {text}");
    let (error, text) = result("ev__echo");
    assert!(!error && text.contains("hello through the gate"), "relayed: {text}");
    let (error, text) = result("shop__delete_customer");
    assert!(error && text.contains("classes.destructive"), "refused: {text}");
    let (error, text) = result("shop__refund_order");
    assert!(!error && text.contains("waiting for approval"), "pending: {text}");
    let (error, text) = result("ev__get-env");
    assert!(error && text.contains("quarantined"), "held: {text}");
    let (error, text) = result("airlock_status");
    assert!(error && text.contains("no-such-approval"), "status: {text}");
    assert_eq!(w.executed("executed.jsonl"), ["search_orders"]);
}

#[tokio::test]
async fn an_agent_on_an_older_protocol_gets_results_without_a_result_type() {
    let w = World::demo();
    let mut agent = RawAgent::start(&w, "2025-06-18").await;
    let answers = [
        agent
            .request(
                1,
                "resources/read",
                json!({"uri": "shop://orders/A-1001"}),
            )
            .await,
        agent
            .request(2, "prompts/get", json!({"name": "apology"}))
            .await,
        agent
            .request(
                3,
                "tools/call",
                json!({"name": "echo", "arguments": {"text": "old"}}),
            )
            .await,
        agent
            .request(
                4,
                "tools/call",
                json!({"name": "airlock_status", "arguments": {"approval_id": "none"}}),
            )
            .await,
        agent.request(5, "tools/list", json!({})).await,
    ];
    agent.finish().await;
    for a in &answers {
        let result = a["result"].as_object().unwrap_or_else(|| panic!("{a}"));
        assert!(!result.contains_key("resultType"), "{a}");
        assert!(!result.contains_key("ttlMs"), "{a}");
    }
    assert!(answers[0]["result"]["contents"][0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("A-1001")));
    assert_eq!(answers[2]["result"]["content"][0]["text"], "old");
}

#[ignore = "needs the MCP Python SDK and server-everything; scripts/test runs it"]
#[tokio::test]
async fn a_tool_with_an_output_schema_gets_a_pending_answer_the_sdk_accepts_naming_the_approval() {
    require(Peer::PythonSdk);
    require(Peer::Everything);
    let w = two_servers();
    // server-everything's get-structured-content declares an outputSchema; make it need approval
    w.write(
        "m/structured.toml",
        "[[tool]]\nserver = \"everything\"\nname = \"get-structured-content\"\nclass = \"financial\"\ntarget = \"weather\"\nimpact = \"Reads the weather\"\nreversal = \"none: it only reads\"\n",
    );
    let plan = json!({
        "calls": [{"name": "ev__get-structured-content", "arguments": {"location": "Chicago"}}],
    });
    let config = w.config().display().to_string();
    let v = python_agent_answer(python_peer(
        "python_client_default.py",
        ["--", AIRLOCK, "serve", "--config", &config],
        &plan,
    ));
    let r = &v["results"][0];
    // without this, the SDK raises: "has an output schema but did not return structured content"
    assert_eq!(r.get("error"), None, "the SDK accepted it: {v}");
    assert_eq!(r["isError"], true, "{v}");
    let text = r["text"].as_str().unwrap_or("");
    assert!(
        text.contains("waiting for approval") && text.contains("(approval ") && text.contains("nothing failed"),
        "{text}"
    );
}
