//! Held calls on replicas sharing a PostgreSQL ledger (the `integration_pg` suite only): a call
//! held on one replica is released once, from either; a release under way when its replica dies
//! is adopted as `outcome_unknown`.

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use crate::agents::{Serving, token};
use crate::replicas::{replica, rows, session, verify};
use crate::review::REVIEWER;
use crate::support::{self, World};

#[tokio::test]
async fn a_call_held_on_one_replica_is_released_once_even_from_two() {
    let w = crate::review::world();
    let (token, entry) = token("agent:a");
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!("{config}\n{entry}"));
    let (a, b) = (replica(&w), replica(&w));
    let on_a = session(&a, &token).await;
    let mut call = CallToolRequestParams::new("echo");
    call.arguments = json!({"text": "held once"}).as_object().cloned();
    let held = on_a.call_tool(call).await.expect("answered");
    let id = crate::review::held_id(&held);
    let page = |on: &Serving| {
        let out = w.airlock(&[
            "quarantine",
            "list",
            "--json",
            "--url",
            &on.base,
            "--as",
            REVIEWER,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Value = serde_json::from_slice(&out.stdout).expect("json");
        list["review_url"].as_str().expect("review url").to_string()
    };
    // B lists it, though A held it
    let out = w.airlock(&["quarantine", "list", "--json", "--url", &b.base]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(list["held"].to_string().contains(&id), "{list}");
    let (page_a, page_b) = (page(&a), page(&b));
    // released from B, which did not hold it; then again from A, whose memory says held
    let seen = crate::support::seen_on(&page_a, &id);
    let release = |page: &str| {
        crate::smtp::post(
            &format!("{page}/held/{id}"),
            &[("action", "release"), ("seen", seen.as_str())],
        )
    };
    let (status, body) = release(&page_b);
    assert_eq!(status, 200, "{body}");
    let (status, body) = release(&page_a);
    assert_eq!(status, 409, "released once: {body}");
    let _ = on_a.cancel().await;
    let log = std::fs::read_to_string(w.path("executed.jsonl")).unwrap_or_default();
    assert_eq!(log.matches("held once").count(), 1, "{log}");
    let rows = rows(&w).await;
    assert_eq!(
        rows.iter()
            .filter(|r| r["kind"] == "held_released" && r["call_id"] == json!(id))
            .count(),
        1
    );
    verify(&w);
}

#[tokio::test]
async fn a_release_under_way_when_its_replica_dies_becomes_outcome_unknown_once() {
    let w = World::empty();
    let manifests =
        std::fs::read_to_string(format!("{}/tool-manifests/demo_shop.toml", support::REPO))
            .expect("manifests");
    let refund = "[[tool]]\nserver = \"shop\"\nname   = \"refund_order\"\nclass  = \"financial\"\ntarget = \"payments.refunds\"\nimpact = \"Moves money to a customer\"\nsummary = \"Refund {amount_cents|money:USD} on order {order_id}\"\nredact = [\"/card_number\"]      # never in the ledger, mail, pages or exports: a marker and a keyed digest\nreversal = \"none: refunds cannot be clawed back\"\n";
    assert!(manifests.contains(refund));
    w.write("m/shop.toml", &manifests.replace(refund, ""));
    w.write(
        "p/policy.toml",
        &std::fs::read_to_string(format!("{}/policies/default.toml", support::REPO))
            .expect("policy"),
    );
    let (token, entry) = token("agent:a");
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = \"p\"\nledger = \"l.redb\"\nactor = \"agent:test\"\nmax_wait = \"1s\"\n[web]\nbind = \"127.0.0.1:0\"\n[mail]\noutbox = \"outbox\"\n\n{}\n{entry}",
        w.shop_server_with("shop", "", "executed.jsonl", &["--refund-delay-ms", "60000"])
    ));
    let (mut a, b) = (replica(&w), replica(&w));
    let on_a = session(&a, &token).await;
    let mut call = CallToolRequestParams::new("refund_order");
    call.arguments = json!({"order_id": "A-1001", "amount_cents": 100, "reason": "slow"})
        .as_object()
        .cloned();
    let id = crate::review::held_id(&on_a.call_tool(call).await.expect("answered"));
    let out = w.airlock(&[
        "quarantine",
        "list",
        "--json",
        "--url",
        &a.base,
        "--as",
        REVIEWER,
    ]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    let page = list["review_url"].as_str().expect("review url").to_string();
    // the release starts on A (the refund takes a minute), and A dies during it
    let held = id.clone();
    let seen = crate::support::seen_on(&page, &held);
    let releasing = std::thread::spawn(move || {
        crate::smtp::http()
            .post(&format!("{page}/held/{held}"))
            .send_form([("action", "release"), ("seen", seen.as_str())])
            .map(|r| r.status().as_u16())
    });
    w.wait_executed("executed.jsonl").await;
    a.child.kill().expect("kill -9 A");
    let _ = a.child.wait();
    let _ = releasing.join();
    // B adopts A's release: recorded as outcome_unknown, once, never run again
    let mut unknown = 0;
    for _ in 0..150 {
        unknown = rows(&w)
            .await
            .iter()
            .filter(|r| r["kind"] == "outcome" && r["call_id"] == json!(id))
            .filter(|r| r["body"]["status"] == "outcome_unknown")
            .count();
        if unknown > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(unknown, 1, "the interrupted release is recorded as unknown");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let all = rows(&w).await;
    let outcomes = all
        .iter()
        .filter(|r| r["kind"] == "outcome" && r["call_id"] == json!(id))
        .count();
    assert_eq!(outcomes, 1, "once");
    assert_eq!(
        w.executed("executed.jsonl"),
        vec!["refund_order"],
        "never run again"
    );
    drop(b);
    verify(&w);
}
