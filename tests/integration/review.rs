//! The quarantine review loop: a call to a tool no manifest describes is held; a reviewer finds
//! it (`airlock quarantine list`, the review page), classifies the tool on the page (Airlock
//! writes its manifest and the live reload picks it up), and releases or rejects held calls.

use serde_json::{Value, json};

use crate::smtp::{get, post};
use crate::support::{REPO, World, decision, is_error, seen_on, text};

/// The demo shop with every manifest except `echo`'s.
pub(crate) fn world() -> World {
    let w = World::empty();
    let manifests = std::fs::read_to_string(format!("{REPO}/tool-manifests/demo_shop.toml"))
        .expect("manifests");
    let without_echo = manifests.replace(
        "[[tool]]\nserver = \"shop\"\nname   = \"echo\"\nclass  = \"read_only\"\ntarget = \"none\"\nimpact = \"Returns its input; changes nothing\"\nreversal = \"none: nothing to undo, it only reads\"\n",
        "",
    );
    assert_ne!(manifests, without_echo, "the echo manifest was removed");
    w.write("m/shop.toml", &without_echo);
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

/// The member of the shipped policy's `[review] role` (ops).
pub(crate) const REVIEWER: &str = "ops-approvers@example.com";

pub(crate) fn held_id(r: &rmcp::model::CallToolResult) -> String {
    let t = text(r);
    let start = t
        .find("held for review as `")
        .expect("held id in the refusal")
        + 20;
    t[start..].split('`').next().unwrap_or_default().to_string()
}

fn cli_json(w: &World, args: &[&str]) -> Value {
    let out = w.airlock(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test]
async fn an_unknown_tool_is_held_classified_on_the_review_page_and_then_runs_by_its_manifest() {
    let w = world();
    let agent = w.agent().await;
    let r1 = agent.call("echo", json!({"text": "first"})).await;
    let r2 = agent.call("echo", json!({"text": "second"})).await;
    assert!(is_error(&r1), "quarantined: {}", text(&r1));
    assert_eq!(decision(&r1)["verdict"], "quarantine");
    let (first, second) = (held_id(&r1), held_id(&r2));
    assert!(w.executed("executed.jsonl").is_empty(), "nothing ran");

    // the reviewer's view: held calls by tool, and the tool as unclassified
    let list = cli_json(&w, &["quarantine", "list", "--json", "--as", REVIEWER]);
    let held: Vec<&str> = list["held"]
        .as_array()
        .expect("held")
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert_eq!(held, [first.as_str(), second.as_str()]);
    assert!(
        list["unclassified"]
            .as_array()
            .expect("unclassified")
            .iter()
            .any(|t| t["exposed"] == "echo"),
        "{list}"
    );
    let page_url = list["review_url"].as_str().expect("review url").to_string();
    let (status, page) = get(&page_url);
    assert_eq!(status, 200);
    assert!(
        page.contains("<code>echo</code> on <code>shop</code> — 2 held call(s)"),
        "{page}"
    );
    assert!(page.contains("Classify this tool"), "{page}");
    let (status, _) = get(&page_url.replace("/review/", "/review/0"));
    assert_eq!(status, 404, "a wrong review token sees nothing");
    let (status, stats) = get(&format!("{page_url}/stats"));
    assert_eq!(status, 200);
    assert!(
        stats.contains("Approval queue") && stats.contains("By class"),
        "{stats}"
    );

    // classify on the page: Airlock writes the manifest, pinned to the definition reviewed
    let (status, body) = post(
        &format!("{page_url}/classify"),
        &[
            ("server", "shop"),
            ("tool", "echo"),
            ("class", "read_only"),
            ("target", "none"),
            ("impact", "Returns its input"),
            ("reversal", "none: it only reads"),
            ("by", "someone else entirely"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let written = std::fs::read_to_string(w.path("m/shop.echo.toml")).expect("manifest written");
    assert!(
        written.contains("class = \"read_only\"") && written.contains("pin = \""),
        "{written}"
    );
    let (status, body) = post(
        &format!("{page_url}/classify"),
        &[
            ("server", "shop"),
            ("tool", "echo"),
            ("class", "read_only"),
            ("target", "t"),
            ("impact", "i"),
            ("reversal", "none: x"),
        ],
    );
    assert_ne!(
        status, 200,
        "a second classification never overwrites: {body}"
    );

    // later calls flow by the new rule, once the live reload has picked the file up
    let mut ran = None;
    for _ in 0..100 {
        let r = agent.call("echo", json!({"text": "third"})).await;
        if !is_error(&r) {
            ran = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ran = ran.expect("echo runs by its new manifest");
    assert!(text(&ran).contains("third"), "{}", text(&ran));

    // the held calls stay held until a reviewer acts: release one, reject the other
    let seen = seen_on(&page_url, &first);
    let release = [("action", "release"), ("seen", seen.as_str())];
    let (status, body) = post(&format!("{page_url}/held/{first}"), &release);
    assert_eq!(status, 200, "{body}");
    let (status, _) = post(&format!("{page_url}/held/{first}"), &release);
    assert_eq!(status, 409, "a held call is released once");
    let out = w.airlock(&[
        "quarantine",
        "reject",
        &second,
        "--reason",
        "duplicate",
        "--as",
        REVIEWER,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        w.executed("executed.jsonl"),
        ["echo", "echo"],
        "the third call and the released first ran; the rejected one never did"
    );
    let status_of = |id: &str| json!({"approval_id": id});
    let released = agent.call("airlock_status", status_of(&first)).await;
    assert!(
        !is_error(&released) && text(&released).contains("first"),
        "{}",
        text(&released)
    );
    let rejected = agent.call("airlock_status", status_of(&second)).await;
    assert!(
        is_error(&rejected) && text(&rejected).contains("duplicate"),
        "{}",
        text(&rejected)
    );
    agent.close().await;

    // everything is in the ledger, and the written manifest passes `airlock check`
    let rows = w.ledger_rows().await;
    let kinds = |kind: &str| rows.iter().filter(|r| r["kind"] == kind).count();
    // (the polling above held each call made before the reload took effect)
    assert!(kinds("held") >= 2);
    assert_eq!(
        (
            kinds("held_released"),
            kinds("held_rejected"),
            kinds("tool_classified")
        ),
        (1, 1, 1)
    );
    let out = w.airlock(&["check", "--offline"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn held_calls_survive_a_restart_and_are_listed_from_the_ledger() {
    let w = world();
    let agent = w.agent().await;
    let id = held_id(&agent.call("echo", json!({"text": "kept"})).await);
    agent.close().await;
    w.wait_for_ledger().await;
    // no gate running: the list is read from the ledger
    let out = w.airlock(&["quarantine", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains(&id) && listed.contains("read from the ledger"),
        "{listed}"
    );
    let out = w.airlock(&["quarantine", "release", &id, "--as", REVIEWER]);
    assert!(!out.status.success(), "releasing needs a running gate");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running `airlock serve`"));

    // a new gate holds it still, and a release from the CLI runs it
    let agent = w.agent().await;
    let out = w.airlock(&["quarantine", "release", &id, "--by", REVIEWER]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("kept"));
    assert_eq!(w.executed("executed.jsonl"), ["echo"]);
    agent.close().await;
}

/// A reviewer's URL of the running gate, from `airlock quarantine list --as`.
fn review_url(w: &World) -> String {
    let list = cli_json(w, &["quarantine", "list", "--json", "--as", REVIEWER]);
    list["review_url"].as_str().expect("review url").to_string()
}

#[tokio::test]
async fn a_release_cut_off_by_a_crash_becomes_outcome_unknown_at_the_next_start_and_never_runs_again()
 {
    let w = World::empty();
    let manifests = std::fs::read_to_string(format!("{REPO}/tool-manifests/demo_shop.toml"))
        .expect("manifests");
    let refund = "[[tool]]\nserver = \"shop\"\nname   = \"refund_order\"\nclass  = \"financial\"\ntarget = \"payments.refunds\"\nimpact = \"Moves money to a customer\"\nsummary = \"Refund {amount_cents|money:USD} on order {order_id}\"\nredact = [\"/card_number\"]      # never in the ledger, mail, pages or exports: a marker and a keyed digest\nreversal = \"none: refunds cannot be clawed back\"\n";
    assert!(manifests.contains(refund));
    w.write("m/shop.toml", &manifests.replace(refund, ""));
    w.write(
        "p/policy.toml",
        &std::fs::read_to_string(format!("{REPO}/policies/default.toml")).expect("policy"),
    );
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = \"p\"\nledger = \"l.redb\"\nactor = \"agent:test\"\nmax_wait = \"1s\"\n[web]\nbind = \"127.0.0.1:0\"\n[mail]\noutbox = \"outbox\"\n\n{}",
        w.shop_server_with("shop", "", "executed.jsonl", &["--refund-delay-ms", "60000"])
    ));
    let (agent, mut child) = w.killable_agent().await;
    let args = json!({"order_id": "A-1001", "amount_cents": 100, "reason": "cut off"});
    let id = held_id(&agent.call("refund_order", args).await);
    // the release starts (the refund takes a minute), and the gate is killed during it
    let page = review_url(&w);
    let seen = seen_on(&page, &id);
    let (held, shown) = (id.clone(), seen.clone());
    let releasing = std::thread::spawn(move || {
        crate::smtp::http()
            .post(&format!("{page}/held/{held}"))
            .send_form([("action", "release"), ("seen", shown.as_str())])
            .map(|r| r.status().as_u16())
    });
    w.wait_executed("executed.jsonl").await;
    child.kill().await.expect("kill -9");
    drop(agent);
    let _ = releasing.join();

    // the next start closes it as outcome_unknown; a second release is refused
    let (agent, _child) = w.killable_agent().await;
    let (status, body) = post(
        &format!("{}/held/{id}", review_url(&w)),
        &[("action", "release"), ("seen", seen.as_str())],
    );
    assert_eq!(status, 409, "never released twice: {body}");
    assert!(body.contains("unknown outcome"), "{body}");
    agent.close().await;
    let rows = w.ledger_rows().await;
    let unknown = rows
        .iter()
        .filter(|r| r["kind"] == "outcome" && r["call_id"] == json!(id))
        .filter(|r| r["body"]["status"] == "outcome_unknown")
        .count();
    assert_eq!(unknown, 1, "the interrupted release is recorded as unknown, once");
    assert_eq!(
        w.executed("executed.jsonl"),
        ["refund_order"],
        "it ran once, before the crash, and never again"
    );
}
