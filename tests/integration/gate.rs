//! The path of a call through the real binary: list, allow, deny, quarantine, fail closed, audit.

use serde_json::json;

use crate::support::{World, decision, is_error, proposal_call_id, rows_for, text};

#[tokio::test]
async fn agent_sees_tools_and_every_path_is_gated_and_audited() {
    let w = World::demo();
    let agent = w.agent().await;
    assert_eq!(
        agent.tools().await,
        [
            "airlock_status",
            "delete_customer",
            "echo",
            "refund_order",
            "search_orders",
            "send_customer_email",
            "tag_order",
            "untag_order"
        ]
    );

    // allowed: runs at once, the demo server's result comes back untouched
    let r = agent
        .call("search_orders", json!({"query": "A-1001"}))
        .await;
    assert!(!is_error(&r), "{r:?}");
    assert!(
        text(&r).contains("A-1001 alice@example.com"),
        "{}",
        text(&r)
    );

    // internal_reversible with a declared reversal tool: autopilot
    let r = agent
        .call("tag_order", json!({"order_id": "A-1002", "tag": "vip"}))
        .await;
    assert!(
        !is_error(&r) && text(&r).contains("tagged A-1002"),
        "{}",
        text(&r)
    );

    // denied: refused with rule and policy version, never reaches the server
    let r = agent
        .call("delete_customer", json!({"email": "alice@example.com"}))
        .await;
    assert!(is_error(&r));
    let t = text(&r);
    assert!(
        t.contains("denied") && t.contains("classes.destructive") && t.contains("2026-11-24.1"),
        "{t}"
    );
    assert_eq!(decision(&r)["verdict"], "deny");
    assert_eq!(decision(&r)["reasons"][0]["code"], "path_deny");

    // approve class: suspended for a human; past max_wait (1s here) the agent is told it is
    // pending, with the id to ask airlock_status, and nothing has run
    let r = agent
        .call(
            "refund_order",
            json!({"order_id": "A-1001", "amount_cents": 500, "reason": "late"}),
        )
        .await;
    assert!(!is_error(&r), "pending is not an error: {}", text(&r));
    assert!(
        text(&r).contains("is waiting for approval by role `finance`"),
        "{}",
        text(&r)
    );
    let approval = serde_json::to_value(&r).expect("json")["_meta"]["airlock/approval"].clone();
    assert_eq!(approval["state"], "pending");
    let id = approval["approval_id"]
        .as_str()
        .expect("approval id")
        .to_string();
    let status = agent
        .call("airlock_status", json!({"approval_id": id}))
        .await;
    assert!(
        text(&status).contains("is waiting for approval"),
        "{}",
        text(&status)
    );
    // the approval mail went to the outbox, as an .eml with the link
    let outbox: Vec<_> = std::fs::read_dir(w.path("outbox"))
        .expect("outbox")
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(
        outbox.len(),
        1,
        "one mail for the finance role's one address"
    );
    let eml = std::fs::read_to_string(outbox[0].path()).expect("eml");
    assert!(
        eml.contains("finance-approvers@example.com") && eml.contains(&format!("/a/{id}/0/")),
        "{eml}"
    );

    // conditional without its evidence: escalates to the support role's approval
    let r = agent
        .call(
            "send_customer_email",
            json!({"to": "a@example.com", "subject": "s", "body": "b"}),
        )
        .await;
    assert!(
        text(&r).contains("waiting for approval by role `support`"),
        "{}",
        text(&r)
    );

    // conditional with its evidence: autopilot
    let r = agent
        .call(
            "send_customer_email",
            json!({"to": "a@example.com", "subject": "s", "body": "b", "order_id": "A-1001"}),
        )
        .await;
    assert!(!is_error(&r), "{}", text(&r));

    // unknown tool: quarantined
    let r = agent.call("wire_money", json!({"to": "x"})).await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("quarantined")
            && text(&r).contains("No tool server offers it, so nothing is held"),
        "{}",
        text(&r)
    );
    assert_eq!(decision(&r)["reasons"][0]["code"], "unknown_tool");
    agent.close().await;

    // only the allowed calls reached the tool server
    assert_eq!(
        w.executed("executed.jsonl"),
        ["search_orders", "tag_order", "send_customer_email"]
    );

    // every call left proposal, verdict and outcome rows; the chain verifies
    let rows = w.ledger_rows().await;
    assert_eq!(rows[0]["kind"], "gate_started");
    let search = proposal_call_id(&rows, "search_orders");
    let p = rows_for(&rows, "proposal", &search)[0];
    assert_eq!(p["body"]["server"], "shop");
    assert_eq!(p["body"]["actor"], "agent:test");
    assert_eq!(p["body"]["arguments"], json!({"query": "A-1001"}));
    assert_eq!(
        p["body"]["arguments_sha256"].as_str().map(str::len),
        Some(64)
    );
    assert_eq!(
        rows_for(&rows, "verdict", &search)[0]["body"]["verdict"],
        "allow"
    );
    let outcome = &rows_for(&rows, "outcome", &search)[0]["body"];
    assert_eq!(outcome["status"], "ok");
    assert_eq!(outcome["result_sha256"].as_str().map(str::len), Some(64));
    assert!(outcome["duration_us"].is_u64());

    let delete = proposal_call_id(&rows, "delete_customer");
    assert_eq!(
        rows_for(&rows, "verdict", &delete)[0]["body"]["policy_version"],
        "2026-11-24.1"
    );
    assert_eq!(
        rows_for(&rows, "outcome", &delete)[0]["body"]["status"],
        "not_run"
    );
    let unknown = proposal_call_id(&rows, "wire_money");
    assert_eq!(
        rows_for(&rows, "verdict", &unknown)[0]["body"]["verdict"],
        "quarantine"
    );
    let suspended = proposal_call_id(&rows, "refund_order");
    let kinds: Vec<&str> = rows
        .iter()
        .filter(|r| r["call_id"] == suspended.as_str())
        .map(|r| r["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["proposal", "verdict", "envelope", "mail_sent"]);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["seq"], json!(i + 1));
    }

    let out = w.airlock(&["ledger", "verify"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains(&format!("rows:        {}", rows.len())) && report.contains("OK"),
        "{report}"
    );
}

#[tokio::test]
async fn a_second_run_appends_to_the_same_ledger_and_still_verifies() {
    let w = World::demo();
    for _ in 0..2 {
        let agent = w.agent().await;
        let r = agent.call("echo", json!({"text": "hi"})).await;
        assert_eq!(text(&r), "hi");
        agent.close().await;
        // airlock exits when the agent goes; wait until the ledger file is free again
        w.wait_for_ledger().await;
    }
    let out = w.airlock(&["ledger", "verify", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["first_bad"], serde_json::Value::Null);
    let rows = w.ledger_rows().await;
    assert_eq!(report["rows"], rows.len());
    // two starts, the tools remembered once (first sight), two calls × 3 rows
    assert_eq!(rows.iter().filter(|r| r["kind"] == "tool_seen").count(), 7);
    assert_eq!(rows.len(), 2 + 7 + 6);
    assert_eq!(
        rows.iter().filter(|r| r["kind"] == "gate_started").count(),
        2
    );
}

#[tokio::test]
async fn unclassified_tool_of_a_live_server_is_quarantined_and_never_runs() {
    let w = World::empty();
    // manifests for everything but `echo`
    let all = std::fs::read_to_string(format!(
        "{}/tool-manifests/demo_shop.toml",
        crate::support::REPO
    ))
    .expect("manifests");
    let without_echo: String = all
        .split("[[tool]]")
        .filter(|t| !t.contains("name   = \"echo\""))
        .collect::<Vec<_>>()
        .join("[[tool]]");
    w.write("m/shop.toml", &without_echo);
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = {p:?}\nledger = \"l.redb\"\n[web]\nbind = \"127.0.0.1:0\"\n\n{shop}",
        p = format!("{}/policies", crate::support::REPO),
        shop = w.shop_server("shop", "", "executed.jsonl")
    ));
    let agent = w.agent().await;
    assert!(
        agent.tools().await.contains(&"echo".to_string()),
        "served tools are listed even when unclassified"
    );
    let r = agent.call("echo", json!({"text": "hi"})).await;
    assert!(is_error(&r));
    assert_eq!(decision(&r)["verdict"], "quarantine");
    agent.close().await;
    assert!(w.executed("executed.jsonl").is_empty());
}

#[tokio::test]
async fn same_tool_names_on_two_servers_never_misroute() {
    let w = World::empty();
    w.write(
        "m/two.toml",
        "[[tool]]\nserver = \"a\"\nname = \"echo\"\nclass = \"read_only\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: reads\"\n\
         [[tool]]\nserver = \"b\"\nname = \"echo\"\nclass = \"destructive\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: gone\"\n",
    );
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = {p:?}\nledger = \"l.redb\"\n[web]\nbind = \"127.0.0.1:0\"\n\n{a}\n{b}",
        p = format!("{}/policies", crate::support::REPO),
        a = w.shop_server("a", "a__", "a.jsonl"),
        b = w.shop_server("b", "b__", "b.jsonl"),
    ));
    let agent = w.agent().await;
    let tools = agent.tools().await;
    assert!(
        tools.contains(&"a__echo".to_string()) && tools.contains(&"b__echo".to_string()),
        "{tools:?}"
    );
    assert_eq!(
        text(&agent.call("a__echo", json!({"text": "one"})).await),
        "one"
    );
    let r = agent.call("b__echo", json!({"text": "two"})).await;
    assert!(is_error(&r), "b's echo is classified destructive");
    agent.close().await;
    assert_eq!(w.executed("a.jsonl"), ["echo"]);
    assert!(w.executed("b.jsonl").is_empty());
}

#[tokio::test]
async fn a_dead_tool_server_fails_its_calls_clearly_and_the_gate_serves_the_rest() {
    let w = World::empty();
    w.write(
        "m/m.toml",
        "[[tool]]\nserver = \"shop\"\nname = \"echo\"\nclass = \"read_only\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: reads\"\n\
         [[tool]]\nserver = \"broken\"\nname = \"lookup\"\nclass = \"read_only\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: reads\"\n",
    );
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = {p:?}\nledger = \"l.redb\"\n[web]\nbind = \"127.0.0.1:0\"\n\n{shop}\n[[server]]\nname = \"broken\"\ncommand = \"false\"\n",
        p = format!("{}/policies", crate::support::REPO),
        shop = w.shop_server("shop", "shop__", "executed.jsonl"),
    ));
    let agent = w.agent().await;
    let r = agent.call("broken__lookup", json!({})).await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("tool server `broken` is not running"),
        "{}",
        text(&r)
    );
    assert_eq!(
        text(
            &agent
                .call("shop__echo", json!({"text": "still here"}))
                .await
        ),
        "still here"
    );
    agent.close().await;
    let rows = w.ledger_rows().await;
    let id = proposal_call_id(&rows, "broken__lookup");
    let outcome = &rows_for(&rows, "outcome", &id)[0]["body"];
    assert_eq!(outcome["status"], "failed");
}

#[tokio::test]
async fn an_allowed_call_is_recorded_before_it_runs() {
    let w = World::demo();
    let agent = w.agent().await;
    let r = agent.call("echo", json!({"text": "x"})).await;
    assert!(!is_error(&r));
    agent.close().await;
    let rows = w.ledger_rows().await;
    let id = proposal_call_id(&rows, "echo");
    let seq = |kind: &str| rows_for(&rows, kind, &id)[0]["seq"].as_u64().expect("seq");
    assert!(seq("proposal") < seq("verdict") && seq("verdict") < seq("outcome"));
    assert_eq!(w.executed("executed.jsonl"), ["echo"]);
}

#[tokio::test]
async fn evidence_in_meta_is_read_and_recorded_and_oversized_arguments_are_refused() {
    let w = World::empty();
    w.write(
        "m/m.toml",
        "[[tool]]\nserver = \"shop\"\nname = \"send_customer_email\"\nclass = \"customer_facing\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: sent\"\nevidence = [\"_meta.ticket\"]\n\
         [[tool]]\nserver = \"shop\"\nname = \"echo\"\nclass = \"read_only\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: reads\"\n",
    );
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = {p:?}\nledger = \"l.redb\"\nmax_wait = \"1s\"\n[web]\nbind = \"127.0.0.1:0\"\n\n{shop}",
        p = format!("{}/policies", crate::support::REPO),
        shop = w.shop_server("shop", "", "executed.jsonl")
    ));
    let agent = w.agent().await;
    let email = json!({"to": "a@example.com", "subject": "s", "body": "b"});
    let r = agent
        .call_with_meta(
            "send_customer_email",
            email.clone(),
            json!({"ticket": "T-42"}),
        )
        .await;
    assert!(
        !is_error(&r),
        "evidence in _meta lets it run on autopilot: {}",
        text(&r)
    );
    let r = agent.call("send_customer_email", email).await;
    assert!(
        text(&r).contains("waiting for approval"),
        "without it, it needs approval: {}",
        text(&r)
    );

    let big = "x".repeat(1_100_000);
    let r = agent.call("echo", json!({"text": big})).await;
    assert!(is_error(&r));
    assert!(text(&r).contains("the limit is 1048576"), "{}", text(&r));
    agent.close().await;
    assert_eq!(w.executed("executed.jsonl"), ["send_customer_email"]);

    let rows = w.ledger_rows().await;
    let sent = proposal_call_id(&rows, "send_customer_email");
    assert_eq!(
        rows_for(&rows, "proposal", &sent)[0]["body"]["meta"],
        json!({"ticket": "T-42"})
    );
    let echo = proposal_call_id(&rows, "echo");
    let p = &rows_for(&rows, "proposal", &echo)[0]["body"];
    assert_eq!(
        p["arguments"],
        serde_json::Value::Null,
        "oversized arguments are hashed, not stored"
    );
    assert_eq!(p["arguments_sha256"].as_str().map(str::len), Some(64));
}

#[tokio::test]
async fn a_refused_call_keeps_a_cut_preview_of_long_arguments_and_a_call_that_can_run_keeps_them_whole()
 {
    let w = crate::review::world();
    let agent = w.agent().await;
    let long = "x".repeat(200 * 1024);
    let denied = agent
        .call("delete_customer", serde_json::json!({"email": long}))
        .await;
    assert!(is_error(&denied));
    let pending = agent
        .call(
            "refund_order",
            serde_json::json!({"order_id": "A-1001", "amount_cents": 100, "reason": long}),
        )
        .await;
    assert!(!is_error(&pending), "{}", text(&pending));
    agent.close().await;
    let rows = w.ledger_rows().await;
    let proposal = |tool: &str| {
        rows.iter()
            .find(|r| r["kind"] == "proposal" && r["body"]["tool"] == tool)
            .unwrap_or_else(|| panic!("no proposal of {tool}"))["body"]
            .clone()
    };
    let d = proposal("delete_customer");
    assert_eq!(d["arguments"], serde_json::Value::Null);
    assert_eq!(d["arguments_cut"], true);
    assert!(d["arguments_bytes"].as_u64().unwrap_or(0) > 200 * 1024, "{}", d["arguments_bytes"]);
    let preview = d["arguments_preview"].as_str().unwrap_or("");
    assert!(preview.starts_with("{\"email\":\"xxx") && preview.len() <= 1024);
    assert_eq!(d["arguments_sha256"].as_str().map(str::len), Some(64));
    let r = proposal("refund_order");
    assert_eq!(r["arguments"]["reason"].as_str().map(str::len), Some(200 * 1024), "kept whole");
    assert_eq!(r.get("arguments_cut"), None);
}
