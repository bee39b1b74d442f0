//! The rug-pull guard through the real binary: a tool whose server changes its definition is
//! quarantined, its pending approvals are voided, and pinning the reviewed definition restores it.

use serde_json::{Value, json};

use crate::support::{REPO, World, decision, is_error, text};

fn world() -> World {
    let w = World::empty();
    let manifests = std::fs::read_to_string(format!("{REPO}/tool-manifests/demo_shop.toml"))
        .expect("manifests");
    w.write("m/shop.toml", &manifests);
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = {p:?}\nledger = \"l.redb\"\nactor = \"agent:test\"\nmax_wait = \"1s\"\n[web]\nbind = \"127.0.0.1:0\"\n[mail]\noutbox = \"outbox\"\n\n{shop}",
        p = format!("{REPO}/policies"),
        shop = w.shop_server("shop", "", "executed.jsonl"),
    ));
    w
}

fn rug_pull(w: &World) {
    let config = std::fs::read_to_string(w.config()).expect("config");
    let changed = config.replacen("executed.jsonl\"]", "executed.jsonl\", \"--rug-pull\"]", 1);
    assert_ne!(config, changed);
    w.write_config(&changed);
}

fn refund() -> Value {
    json!({"order_id": "A-1001", "amount_cents": 500, "reason": "late"})
}

#[tokio::test]
async fn a_changed_tool_is_quarantined_voids_its_approvals_and_a_pin_restores_it() {
    let w = world();
    let agent = w.agent().await;
    let r = agent.call("refund_order", refund()).await;
    let id = serde_json::to_value(&r).expect("json")["_meta"]["airlock/approval"]["approval_id"]
        .as_str()
        .expect("pending approval")
        .to_string();
    agent.close().await;
    w.wait_for_ledger().await;

    // the server changes refund_order's description
    rug_pull(&w);
    let agent = w.agent().await;
    let status = agent
        .call("airlock_status", json!({"approval_id": id}))
        .await;
    assert!(
        is_error(&status) && text(&status).contains("voided"),
        "{}",
        text(&status)
    );
    let r = agent.call("refund_order", refund()).await;
    assert!(is_error(&r));
    assert_eq!(decision(&r)["reasons"][0]["code"], "tool_changed");
    assert!(
        text(&r).contains("quarantined until someone reviews it"),
        "{}",
        text(&r)
    );
    assert_eq!(
        text(&agent.call("echo", json!({"text": "still fine"})).await),
        "still fine"
    );
    agent.close().await;
    assert_eq!(w.executed("executed.jsonl"), ["echo"]);

    let rows = w.ledger_rows().await;
    assert_eq!(
        rows.iter().filter(|r| r["kind"] == "tool_seen").count(),
        7,
        "every tool remembered at first sight"
    );
    let changed: Vec<&Value> = rows
        .iter()
        .filter(|r| r["kind"] == "tool_changed")
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["body"]["tool"], "shop/refund_order");
    let closed = rows
        .iter()
        .find(|r| r["kind"] == "approval_closed")
        .expect("closed");
    assert_eq!(closed["body"]["outcome"]["outcome"], "voided");

    // a reviewer pins the new definition (as `map` shows it); the tool flows by its rule again
    let out = w.airlock(&["map", "--json"]);
    let map: Value = serde_json::from_slice(&out.stdout).expect("map json");
    let refund_row = map["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|r| r["tool"] == "refund_order"))
        .expect("refund row")
        .clone();
    assert_eq!(refund_row["pinned"], Value::Null, "not pinned yet");
    let hash = refund_row["definition_hash"]
        .as_str()
        .expect("hash")
        .to_string();
    assert_eq!(hash, changed[0]["body"]["now"]);
    let manifests = std::fs::read_to_string(w.path("m/shop.toml")).expect("manifests");
    w.write(
        "m/shop.toml",
        &manifests.replacen(
            "name   = \"refund_order\"",
            &format!("name   = \"refund_order\"\npin    = \"sha256:{hash}\""),
            1,
        ),
    );
    let agent = w.agent().await;
    let r = agent.call("refund_order", refund()).await;
    assert!(
        !is_error(&r) && text(&r).contains("waiting for approval by role `finance`"),
        "{}",
        text(&r)
    );
    agent.close().await;
    let rows = w.ledger_rows().await;
    assert!(
        rows.iter()
            .any(|r| r["kind"] == "tool_accepted" && r["body"]["hash"] == hash.as_str())
    );
}

/// Counts `notifications/tools/list_changed` reaching the agent.
#[derive(Clone, Default)]
struct ListWatcher(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl rmcp::ClientHandler for ListWatcher {
    async fn on_tool_list_changed(&self, _c: rmcp::service::NotificationContext<rmcp::RoleClient>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_tool_changed_mid_session_is_re_gated_before_the_agent_hears_of_the_new_list() {
    let w = world();
    let config = std::fs::read_to_string(w.config()).expect("config");
    let armed = config.replacen(
        "executed.jsonl\"]",
        "executed.jsonl\", \"--rug-pull-on-echo\"]",
        1,
    );
    w.write_config(&armed);
    let watcher = ListWatcher::default();
    let (client, _child) = w.client(watcher.clone()).await;
    let call = |name: &str, args: Value| {
        let mut p = rmcp::model::CallToolRequestParams::new(name.to_string());
        p.arguments = args.as_object().cloned();
        p
    };
    let search = json!({"query": "A-1001"});
    let before = client
        .call_tool(call("search_orders", search.clone()))
        .await
        .expect("answered");
    assert!(!is_error(&before), "{}", text(&before));
    // the server changes search_orders and says its list changed
    let echoed = client
        .call_tool(call("echo", json!({"text": "hi"})))
        .await
        .expect("answered");
    assert_eq!(text(&echoed), "hi");
    let mut told = false;
    for _ in 0..400 {
        if watcher.0.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            told = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(told, "the agent never heard that the tool list changed");
    // by then the change is judged: the listed definition is the new one, and calling it is held
    let listed = client.list_all_tools().await.expect("tools/list");
    let def = listed
        .iter()
        .find(|t| t.name == "search_orders")
        .expect("still listed");
    assert!(
        def.description
            .as_deref()
            .is_some_and(|d| d.contains("uploads every match")),
        "{def:?}"
    );
    let after = client
        .call_tool(call("search_orders", search))
        .await
        .expect("answered");
    assert!(is_error(&after), "{}", text(&after));
    assert_eq!(decision(&after)["reasons"][0]["code"], "tool_changed");
    let _ = client.cancel().await;
    let ran: Vec<String> = w.executed("executed.jsonl");
    assert_eq!(
        ran.iter().filter(|t| *t == "search_orders").count(),
        1,
        "the changed tool never ran: {ran:?}"
    );
    w.wait_for_ledger().await;
    let rows = w.ledger_rows().await;
    let relisted = rows
        .iter()
        .find(|r| r["kind"] == "tools_relisted")
        .expect("tools_relisted row");
    assert_eq!(relisted["body"]["servers"], json!(["shop"]));
    assert!(
        rows.iter()
            .any(|r| r["kind"] == "tool_changed" && r["body"]["tool"] == "shop/search_orders"),
        "no tool_changed row for search_orders"
    );
}

#[tokio::test]
async fn a_held_call_runs_only_on_the_definition_it_was_held_under() {
    let w = world();
    // search_orders has no manifest (held as unknown), and the shop changes it on the first echo
    let manifests = std::fs::read_to_string(w.path("m/shop.toml")).expect("manifests");
    let search = "[[tool]]\nserver = \"shop\"\nname   = \"search_orders\"\nclass  = \"read_only\"\ntarget = \"orders\"\nimpact = \"Reads orders; changes nothing\"\nsummary = \"Search orders for {query|short:40}\"\nreversal = \"none: nothing to undo, it only reads\"\n";
    assert!(manifests.contains(search));
    w.write("m/shop.toml", &manifests.replace(search, ""));
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&config.replacen(
        "executed.jsonl\"]",
        "executed.jsonl\", \"--rug-pull-on-echo\"]",
        1,
    ));
    let watcher = ListWatcher::default();
    let (client, _child) = w.client(watcher.clone()).await;
    let call = |name: &str, args: Value| {
        let mut p = rmcp::model::CallToolRequestParams::new(name.to_string());
        p.arguments = args.as_object().cloned();
        p
    };
    let before = client
        .call_tool(call("search_orders", json!({"query": "A-1001"})))
        .await
        .expect("answered");
    let held_before = crate::review::held_id(&before);
    client
        .call_tool(call("echo", json!({"text": "hi"})))
        .await
        .expect("answered");
    for _ in 0..400 {
        if watcher.0.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(watcher.0.load(std::sync::atomic::Ordering::SeqCst) > 0, "never told");
    // (other arguments: the same ones would attach to the call already held)
    let after = client
        .call_tool(call("search_orders", json!({"query": "A-1002"})))
        .await
        .expect("answered");
    let held_after = crate::review::held_id(&after);

    // released after the change, the call held before it is voided: nothing runs
    let reviewer = crate::review::REVIEWER;
    let out = w.airlock(&["quarantine", "release", &held_before, "--as", reviewer]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("but not run"), "{said} {}", String::from_utf8_lossy(&out.stderr));
    let status = client
        .call_tool(call("airlock_status", json!({"approval_id": held_before})))
        .await
        .expect("answered");
    assert!(is_error(&status) && text(&status).contains("not run"), "{}", text(&status));
    assert!(
        !w.executed("executed.jsonl").contains(&"search_orders".to_string()),
        "the voided call never ran"
    );
    // the call held under the changed definition is released on that definition: it runs
    let out = w.airlock(&["quarantine", "release", &held_after, "--as", reviewer]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ran once"));
    let ran = w.executed("executed.jsonl");
    assert_eq!(ran.iter().filter(|t| *t == "search_orders").count(), 1, "{ran:?}");
    let _ = client.cancel().await;
    w.wait_for_ledger().await;
    let rows = w.ledger_rows().await;
    let voided: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "held_voided").collect();
    assert_eq!(voided.len(), 1);
    assert_eq!(voided[0]["call_id"], held_before.as_str());
    assert!(
        !rows
            .iter()
            .any(|r| r["kind"] == "outcome" && r["call_id"] == held_before.as_str()),
        "no outcome row for a call that never ran"
    );
}
