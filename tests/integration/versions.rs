//! Protocol versions: every result Airlock relays or makes is valid for an agent on 2026-07-28
//! (the official Python SDK in its default mode validates each one), and agents on older versions
//! get the results they always did.

use serde_json::{Value, json};

use crate::support::{
    AIRLOCK, Peer, REPO, RawAgent, World, meta_2026, npm_bin, proposals, python_agent_answer,
    python_peer, require, text_of,
};

/// The demo shop (prefix `shop__`) and `server-everything` (prefix `ev__`, its `echo` allowed)
/// behind the repository's policy; approvals wait 1 s.
fn two_servers() -> World {
    two_servers_with("")
}

/// [`two_servers`], with `extra` lines in server-everything's `[[server]]` table.
fn two_servers_with(extra: &str) -> World {
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
fn refused(list: &Value) -> Vec<&Value> {
    list.as_array()
        .map(|a| a.iter().filter(|e| e.get("error").is_some()).collect())
        .unwrap_or_default()
}

/// The text of the entry of `list` whose `key` is `name`.
fn text_for<'a>(list: &'a Value, key: &str, name: &str) -> &'a str {
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

/// The world's ledger, row by row.
fn ledger_rows(w: &World) -> Vec<Value> {
    let out = w.airlock(&["ledger", "export"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("row"))
        .collect()
}

/// [`two_servers`], with server-everything's tools that ask the agent questions allowed.
fn questions_allowed() -> World {
    questions_allowed_with("")
}

/// [`questions_allowed`], with `extra` lines in server-everything's `[[server]]` table.
fn questions_allowed_with(extra: &str) -> World {
    let w = two_servers_with(extra);
    let mut m = String::new();
    for tool in [
        "trigger-elicitation-request",
        "trigger-sampling-request",
        "trigger-url-elicitation",
    ] {
        m.push_str(&format!("[[tool]]\nserver = \"everything\"\nname = \"{tool}\"\nclass = \"read_only\"\ntarget = \"none\"\nimpact = \"Asks the agent a question\"\nreversal = \"none: it changes nothing\"\n\n"));
    }
    w.write("m/questions.toml", &m);
    w
}

#[ignore = "needs the MCP Python SDK and server-everything; scripts/test runs it"]
#[tokio::test]
async fn a_tool_servers_questions_reach_a_2026_agent_in_rounds_and_its_answers_reach_the_tool() {
    require(Peer::PythonSdk);
    require(Peer::Everything);
    let w = questions_allowed();
    let plan = json!({
        "calls": [
            {"name": "ev__trigger-elicitation-request", "arguments": {}},
            {"name": "ev__trigger-sampling-request", "arguments": {"prompt": "a question from the tool", "maxTokens": 20}},
        ],
        "answers": {
            "elicitation": {"name": "Ada Lovelace", "check": true},
            "sampling": "the agent's model says hello",
        },
    });
    let config = w.config().display().to_string();
    let v = python_agent_answer(python_peer(
        "python_client_default.py",
        ["--", AIRLOCK, "serve", "--config", &config],
        &plan,
    ));
    assert_eq!(v["protocol"], "2026-07-28", "{v}");
    assert_eq!(refused(&v["results"]), Vec::<&Value>::new(), "{v}");
    let elicited = text_for(&v["results"], "name", "ev__trigger-elicitation-request");
    assert!(
        elicited.contains("User provided the requested information") && elicited.contains("Ada Lovelace"),
        "{elicited}"
    );
    let sampled = text_for(&v["results"], "name", "ev__trigger-sampling-request");
    assert!(sampled.contains("the agent's model says hello"), "{sampled}");
    let asked = v["asked"].as_array().cloned().unwrap_or_default();
    assert_eq!(asked.len(), 2, "each question asked once: {v}");
    assert_eq!(asked[0]["kind"], "elicitation");
    assert!(asked[0]["message"].as_str().is_some_and(|m| m.contains("Please provide inputs")), "{v}");
    assert_eq!(asked[1]["kind"], "sampling");
    assert!(asked[1]["message"].as_str().is_some_and(|m| m.contains("a question from the tool")), "{v}");
    // each call was gated once, though the agent sent it twice
    let rows = ledger_rows(&w);
    let gated = proposals(&rows);
    for tool in ["ev__trigger-elicitation-request", "ev__trigger-sampling-request"] {
        assert_eq!(gated.iter().filter(|(_, t)| *t == tool).count(), 1, "{tool}: {gated:?}");
    }
}

/// A `tools/call` of a 2026-07-28 agent that can answer elicitations, maybe a retry.
fn call_2026(tool: &str, arguments: Value, retry: Option<(&str, Value)>) -> Value {
    let mut params = json!({
        "name": tool,
        "arguments": arguments,
        "_meta": meta_2026(json!({"elicitation": {"form": {}, "url": {}}})),
    });
    if let Some((state, responses)) = retry {
        params["requestState"] = json!(state);
        params["inputResponses"] = responses;
    }
    params
}

/// The reason in a refused retry's result.
fn refusal(answer: &Value) -> String {
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    text_of(&answer["result"])
}

#[ignore = "needs server-everything; scripts/test runs it"]
#[tokio::test]
async fn a_retry_with_a_forged_or_foreign_request_state_is_refused_and_nothing_runs_again() {
    require(Peer::Everything);
    let w = questions_allowed();
    let elsewhere = questions_allowed();
    let mut agent = RawAgent::start_2026(&w);
    let mut other = RawAgent::start_2026(&elsewhere);
    const TOOL: &str = "ev__trigger-elicitation-request";
    let first = agent.request(1, "tools/call", call_2026(TOOL, json!({}), None)).await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let state = first["result"]["requestState"].as_str().unwrap_or_else(|| panic!("{first}")).to_string();
    let requests = first["result"]["inputRequests"].as_object().unwrap_or_else(|| panic!("{first}"));
    assert_eq!(requests.len(), 1, "{first}");
    let (key, question) = requests.iter().next().map(|(k, q)| (k.clone(), q.clone())).unwrap_or_default();
    assert_eq!(question["method"], "elicitation/create", "{first}");
    let answers = json!({key.clone(): {"action": "accept", "content": {"name": "Grace Hopper"}}});
    let (process, secret) = state.split_once('.').unwrap_or_else(|| panic!("{state}"));
    assert_eq!(secret.len(), 64, "256 random bits: {state}");

    // another Airlock process (another replica) never gave out this state
    let foreign = other.request(1, "tools/call", call_2026(TOOL, json!({}), Some((&state, answers.clone())))).await;
    assert!(refusal(&foreign).contains("another replica"), "{foreign}");
    // this process, a state it never gave out
    let forged = format!("{process}.{}", "0".repeat(64));
    let guessed = agent.request(2, "tools/call", call_2026(TOOL, json!({}), Some((&forged, answers.clone())))).await;
    assert!(refusal(&guessed).contains("names no call waiting"), "{guessed}");
    // the right state with another tool, or other arguments
    let wrong_tool = agent.request(3, "tools/call", call_2026("ev__echo", json!({"message": "x"}), Some((&state, answers.clone())))).await;
    assert!(refusal(&wrong_tool).contains("another tool or with other arguments"), "{wrong_tool}");
    let wrong_args = agent.request(4, "tools/call", call_2026(TOOL, json!({"extra": 1}), Some((&state, answers.clone())))).await;
    assert!(refusal(&wrong_args).contains("another tool or with other arguments"), "{wrong_args}");
    // the call still waits for its own agent's answer, and then finishes with it
    let done = agent.request(5, "tools/call", call_2026(TOOL, json!({}), Some((&state, answers.clone())))).await;
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert!(text_of(&done["result"]).contains("Grace Hopper"), "{done}");
    // an answered state is spent
    let again = agent.request(6, "tools/call", call_2026(TOOL, json!({}), Some((&state, answers)))).await;
    assert!(refusal(&again).contains("names no call waiting"), "{again}");
    agent.finish().await;
    other.finish().await;
    let rows = ledger_rows(&w);
    let gated = proposals(&rows);
    assert_eq!(gated, vec![("agent:test", "ev__trigger-elicitation-request")], "gated once, never again");
    assert!(proposals(&ledger_rows(&elsewhere)).is_empty(), "nothing gated on the other process");
}

#[ignore = "needs server-everything; scripts/test runs it"]
#[tokio::test]
async fn a_call_whose_2026_agent_never_answers_is_stopped_after_the_servers_timeout_and_its_state_refused()
 {
    require(Peer::Everything);
    let w = questions_allowed_with("timeout = \"2s\"\n");
    let mut agent = RawAgent::start_2026(&w);
    const TOOL: &str = "ev__trigger-elicitation-request";
    let first = agent
        .request(1, "tools/call", call_2026(TOOL, json!({}), None))
        .await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let state = first["result"]["requestState"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    // no answer: once the server's timeout is past, the call is given up. Asked with other
    // arguments (refused, and changing nothing), Airlock says so as soon as it has.
    let mut late = Value::Null;
    for id in 2..600 {
        late = agent
            .request(
                id,
                "tools/call",
                call_2026(TOOL, json!({"probe": id}), Some((&state, json!({})))),
            )
            .await;
        if !refusal(&late).contains("other arguments") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refusal(&late).contains("abandoned"), "{late}");
    agent.finish().await;
    let rows = ledger_rows(&w);
    assert_eq!(proposals(&rows).len(), 1, "the late retries ran nothing");
    let outcome = rows
        .iter()
        .find(|r| r["kind"] == "outcome")
        .unwrap_or_else(|| panic!("the abandoned call has an outcome: {rows:?}"));
    assert_ne!(outcome["body"]["status"], "ok", "{outcome}");
}

#[ignore = "needs server-everything; scripts/test runs it"]
#[tokio::test]
async fn a_url_mode_elicitation_is_refused_to_a_2026_agent_with_the_reason() {
    require(Peer::Everything);
    let w = questions_allowed();
    let mut agent = RawAgent::start_2026(&w);
    let answer = agent
        .request(
            1,
            "tools/call",
            call_2026(
                "ev__trigger-url-elicitation",
                json!({"url": "https://example.com/consent"}),
                None,
            ),
        )
        .await;
    let log = agent.finish().await;
    assert_ne!(answer["result"]["resultType"], "input_required", "{answer}");
    let said = format!("{answer}");
    assert!(said.contains("URL-mode elicitation"), "{answer}");
    assert!(log.contains("tool server request refused"), "{log}");
}
