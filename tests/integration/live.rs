//! Live policy: a valid edit takes effect while the gate runs (and every verdict names the
//! version it used); a broken edit is rejected with its errors and the old policy stays active.

use serde_json::{Value, json};

use crate::support::{REPO, World, decision, text};

fn world() -> World {
    let w = World::empty();
    w.write(
        "m/shop.toml",
        &std::fs::read_to_string(format!("{REPO}/tool-manifests/demo_shop.toml"))
            .expect("manifests"),
    );
    w.write(
        "p/policy.toml",
        &std::fs::read_to_string(format!("{REPO}/policies/default.toml")).expect("policy"),
    );
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = \"p\"\nledger = \"l.redb\"\nactor = \"agent:test\"\nmax_wait = \"1s\"\n[web]\nbind = \"127.0.0.1:0\"\n[mail]\noutbox = \"outbox\"\n\n{}",
        w.shop_server("shop", "", "executed.jsonl")
    ));
    w
}

#[tokio::test]
async fn a_valid_edit_takes_effect_and_a_broken_one_leaves_the_old_policy_active() {
    let w = world();
    let agent = w.agent().await;
    let email = json!({"email": "alice@example.com"});
    let r = agent.call("delete_customer", email.clone()).await;
    assert_eq!(decision(&r)["policy_version"], "2026-11-24.1");

    // a reviewed edit: deletions now need the ops role
    let policy = std::fs::read_to_string(w.path("p/policy.toml")).expect("policy");
    let edited = policy
        .replace("version = \"2026-11-24.1\"", "version = \"2026-11-24.2\"")
        .replace(
            "destructive         = { path = \"deny\", signed = true }",
            "destructive         = { path = \"approve\", role = \"ops\", signed = true }",
        );
    assert_ne!(policy, edited);
    w.write("p/policy.toml", &edited);
    let mut now_pending = false;
    for _ in 0..100 {
        let r = agent.call("delete_customer", email.clone()).await;
        if text(&r).contains("waiting for approval by role `ops`") {
            now_pending = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(now_pending, "the edit took effect");

    // a broken edit is rejected; the last good policy stays in force
    w.write("p/policy.toml", &edited.replace("[roles]", "[roles\n"));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let r = agent.call("delete_customer", email.clone()).await;
    assert!(
        text(&r).contains("waiting for approval by role `ops`"),
        "{}",
        text(&r)
    );
    assert_eq!(text(&agent.call("echo", json!({"text": "up"})).await), "up");
    agent.close().await;

    let rows = w.ledger_rows().await;
    let loaded: Vec<&Value> = rows
        .iter()
        .filter(|r| r["kind"] == "policy_loaded")
        .collect();
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    assert_eq!(loaded[0]["body"]["version"], "2026-11-24.2");
    assert_eq!(loaded[0]["body"]["previous_version"], "2026-11-24.1");
    let rejected = rows
        .iter()
        .find(|r| r["kind"] == "policy_rejected")
        .expect("rejection recorded");
    assert_eq!(rejected["body"]["active_version"], "2026-11-24.2");
    let errors = rejected["body"]["errors"].to_string();
    assert!(
        errors.contains("policy.toml:"),
        "the rejection says where: {errors}"
    );
    let versions: Vec<&str> = rows
        .iter()
        .filter(|r| r["kind"] == "verdict" && r["body"]["tool"].is_null())
        .filter_map(|r| r["body"]["policy_version"].as_str())
        .collect();
    assert_eq!(versions.first(), Some(&"2026-11-24.1"));
    assert_eq!(versions.last(), Some(&"2026-11-24.2"));
}

#[test]
fn policy_diff_shows_which_tools_change_path() {
    let w = world();
    let old = w.path("p/policy.toml");
    let policy = std::fs::read_to_string(&old).expect("policy");
    w.write(
        "next/policy.toml",
        &policy
            .replace("version = \"2026-11-24.1\"", "version = \"2\"")
            .replace(
                "destructive         = { path = \"deny\", signed = true }",
                "destructive         = { path = \"approve\", role = \"ops\", signed = true }",
            )
            .replace(
                "on_timeout = \"deny\", signed = true }",
                "on_timeout = \"deny\", signed = false }",
            ),
    );
    let out = w.airlock(&[
        "policy",
        "diff",
        old.to_str().expect("utf-8"),
        w.path("next/policy.toml").to_str().expect("utf-8"),
    ]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("policy 2026-11-24.1 → 2"), "{t}");
    assert!(
        t.contains("delete_customer  (destructive)\n  - deny\n  + approve by ops, 1h then deny"),
        "{t}"
    );
    // what a class keeps of its calls is part of what changes
    assert!(
        t.contains("refund_order  (financial)\n  - approve by finance, 30m then deny; signed, rows kept 7y\n  + approve by finance, 30m then deny; unsigned, rows kept 1y"),
        "{t}"
    );
    assert!(
        !t.contains("search_orders"),
        "unchanged tools are not listed: {t}"
    );
    let out = w.airlock(&[
        "policy",
        "diff",
        old.to_str().expect("utf-8"),
        w.path("next/policy.toml").to_str().expect("utf-8"),
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["changes"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_pin_edited_while_serving_regates_the_tool_and_voids_its_approvals() {
    let w = world();
    let agent = w.agent().await;
    let r = agent
        .call(
            "refund_order",
            json!({"order_id": "A-1001", "amount_cents": 500, "reason": "late"}),
        )
        .await;
    let id = serde_json::to_value(&r).expect("json")["_meta"]["airlock/approval"]["approval_id"]
        .as_str()
        .expect("pending")
        .to_string();
    // a reviewer pins a definition the server does not present (e.g. one reviewed elsewhere)
    let manifests = std::fs::read_to_string(w.path("m/shop.toml")).expect("manifests");
    w.write(
        "m/shop.toml",
        &manifests.replacen(
            "name   = \"refund_order\"",
            &format!(
                "name   = \"refund_order\"\npin    = \"sha256:{}\"",
                "ab".repeat(32)
            ),
            1,
        ),
    );
    let mut regated = false;
    let mut last = Value::Null;
    for _ in 0..100 {
        let r = agent
            .call(
                "refund_order",
                json!({"order_id": "A-1001", "amount_cents": 500, "reason": "late"}),
            )
            .await;
        last = serde_json::to_value(&r).unwrap_or_default();
        if decision(&r)["reasons"][0]["code"] == "tool_changed" {
            regated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(regated, "the reload re-ran the guard; last answer: {last}");
    let status = agent
        .call("airlock_status", json!({"approval_id": id}))
        .await;
    assert!(text(&status).contains("voided"), "{}", text(&status));
    // a change to airlock.toml itself is refused while serving
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&config.replace("max_wait = \"1s\"", "max_wait = \"2s\""));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    agent.close().await;
    let rows = w.ledger_rows().await;
    assert_eq!(
        rows.iter().filter(|r| r["kind"] == "tool_changed").count(),
        1,
        "recorded once, not at every reload"
    );
    assert!(rows.iter().any(|r| {
        r["kind"] == "policy_rejected"
            && r["body"]["errors"]
                .to_string()
                .contains("restart airlock to apply it")
    }));
}

#[tokio::test]
async fn sighup_reloads_even_when_no_file_changed() {
    let w = world();
    let (agent, child) = w.killable_agent().await;
    // a first call: the gate is up and its signal handler installed
    let _ = agent.call("search_orders", json!({"query": ""})).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let pid = child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    // the reload is quick; give it time, then show the gate still serves
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let r = agent.call("search_orders", json!({"query": ""})).await;
    assert!(!crate::support::is_error(&r), "{}", text(&r));
    agent.close().await;
    drop(child);
    let rows = w.ledger_rows().await;
    let loaded: Vec<&Value> = rows
        .iter()
        .filter(|r| r["kind"] == "policy_loaded")
        .collect();
    assert_eq!(
        loaded.len(),
        1,
        "one reload, from the signal alone: {loaded:?}"
    );
    assert_eq!(loaded[0]["body"]["version"], "2026-11-24.1");
}
