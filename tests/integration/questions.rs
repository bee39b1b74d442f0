//! Questions from tool servers (sampling, elicitation) to agents on protocol 2026-07-28, which
//! has no server-to-client requests: asked in the call's answer (`InputRequiredResult`), answered
//! in the agent's retry, and a retry that is not the asking call's own refused with its reason.

use serde_json::{Value, json};

use crate::support::{
    AIRLOCK, Peer, RawAgent, World, meta_2026, proposals, python_agent_answer, python_peer,
    require, text_of,
};
use crate::versions::{refused, text_for, two_servers_with};

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

/// POST one 2026-07-28 `tools/call` to `/mcp` as the agent holding `token`: its answer.
fn post_2026(url: &str, token: &str, id: u64, params: &Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    let r = crate::smtp::http()
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", params["name"].as_str().unwrap_or(""))
        .header("Authorization", &format!("Bearer {token}"))
        .send(body.to_string())
        .expect("POST");
    let text = r.into_body().read_to_string().expect("body");
    // a JSON answer, or an SSE stream whose data lines carry it
    std::iter::once(text.as_str())
        .chain(text.lines().filter_map(|l| l.strip_prefix("data:")))
        .filter_map(|t| serde_json::from_str::<Value>(t.trim()).ok())
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no answer to {id} in {text}"))
}

#[ignore = "needs server-everything; scripts/test runs it"]
#[tokio::test]
async fn another_agent_cannot_answer_or_finish_a_call_with_its_request_state() {
    require(Peer::Everything);
    let w = questions_allowed();
    let (a, a_entry) = crate::agents::token("agent:a");
    let (b, b_entry) = crate::agents::token("agent:b");
    let port = crate::smtp::free_port();
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!(
        "{config}\n[http]\nbind = \"127.0.0.1:{port}\"\n\n{a_entry}\n{b_entry}"
    ));
    let base = format!("http://127.0.0.1:{port}");
    let serving = crate::agents::serve(&w, &[], &base);
    let mcp = format!("{base}/mcp");
    const TOOL: &str = "ev__trigger-elicitation-request";
    let first = post_2026(&mcp, &a, 1, &call_2026(TOOL, json!({}), None));
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let state = first["result"]["requestState"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    let key = first["result"]["inputRequests"]
        .as_object()
        .and_then(|q| q.keys().next().cloned())
        .unwrap_or_else(|| panic!("{first}"));
    let answers = |name: &str| json!({key.clone(): {"action": "accept", "content": {"name": name}}});
    let stolen = post_2026(
        &mcp,
        &b,
        1,
        &call_2026(TOOL, json!({}), Some((&state, answers("Mallory")))),
    );
    assert!(
        refusal(&stolen).contains("another agent's call"),
        "{stolen}"
    );
    let own = post_2026(
        &mcp,
        &a,
        2,
        &call_2026(TOOL, json!({}), Some((&state, answers("Alice")))),
    );
    assert_eq!(own["result"]["resultType"], "complete", "{own}");
    let text = text_of(&own["result"]);
    assert!(text.contains("Alice") && !text.contains("Mallory"), "{text}");
    drop(serving);
    let rows = ledger_rows(&w);
    assert_eq!(
        proposals(&rows),
        vec![("agent:a", "ev__trigger-elicitation-request")],
        "only agent:a's call, gated once"
    );
}
