//! Who may decide a held call or a paused scope: a named person in the role the matter needs,
//! proven by their own link (mailed, or made by the CLI for `--as EMAIL`), never an agent
//! identity and never the requester; every refusal is a ledger row and nothing runs.

use serde_json::{Value, json};

use crate::review::{REVIEWER, held_id};
use crate::smtp::{get, post};
use crate::support::{REPO, World, is_error, review_post, text, unfold};

/// The demo shop and the shipped policy ([review] role = ops), with refunds over 100.00 held
/// for the CFO (a condition naming role `cfo`, quarantined when it fails) and `echo` described
/// by no manifest.
fn world() -> World {
    let w = crate::review::world();
    let manifests = std::fs::read_to_string(w.path("m/shop.toml")).expect("manifests");
    let refund_reversal = "reversal = \"none: refunds cannot be clawed back\"\n";
    assert!(manifests.contains(refund_reversal));
    w.write(
        "m/shop.toml",
        &manifests.replace(
            refund_reversal,
            &format!("{refund_reversal}\n[[tool.condition]]\npointer = \"/amount_cents\"\nmax = 10000\nrole = \"cfo\"\non_fail = \"quarantine\"\n"),
        ),
    );
    let policy = std::fs::read_to_string(format!("{REPO}/policies/default.toml")).expect("policy");
    // refunds run on autopilot within the condition (so a failure is held, not approved)
    w.write(
        "p/policy.toml",
        &policy.replace(
            "financial           = {",
            "financial           = { path = \"allow\", role = \"finance\" }\nfinancial_was       = {",
        ),
    );
    w
}

/// The review link the CLI prints for `email`.
fn page_for(w: &World, email: &str) -> String {
    let out = w.airlock(&["quarantine", "list", "--json", "--as", email]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v["review_url"].as_str().expect("review url").to_string()
}

fn refused_rows(rows: &[Value], id: &str) -> Vec<String> {
    rows.iter()
        .filter(|r| r["kind"] == "decision_refused" && r["call_id"] == id)
        .map(|r| format!("{} {}", r["body"]["by"], r["body"]["reason"]))
        .collect()
}

#[tokio::test]
async fn a_call_held_over_the_cfo_threshold_is_released_only_by_the_cfo_never_by_an_agent() {
    let w = world();
    let check = w.airlock(&["check", "--offline"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let agent = w.agent().await;
    let big = json!({"order_id": "A-1001", "amount_cents": 250_000, "reason": "goodwill"});
    let r = agent.call("refund_order", big).await;
    assert!(is_error(&r), "{}", text(&r));
    let id = held_id(&r);

    // the agent's own identity, with a link the CLI made for it: the page does not even open
    // (an agent is in no role), and the CLI's token is refused by the rule
    let as_agent = page_for(&w, "agent:test");
    let (status, body) = get(&as_agent);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("agent:test is in no role of the policy now"), "{body}");
    let (status, _) = post(&format!("{as_agent}/held/{id}"), &[("action", "release")]);
    assert_eq!(status, 403);
    let out = w.airlock(&["quarantine", "release", &id, "--as", "agent:test"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("agents never decide"));
    // the review role (ops) may not release what the cfo's threshold held; nor reject it
    let ops = page_for(&w, REVIEWER);
    for action in ["release", "reject"] {
        let (status, body) = review_post(&ops, &id, action, &[]);
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("only a member of role cfo may decide this"), "{body}");
    }
    // a name typed into the form changes nothing: who decides comes from the link
    let (status, _) = review_post(&ops, &id, "release", &[("by", "cfo@example.com")]);
    assert_eq!(status, 403);
    // refusals are rows, but one reviewer cannot grow the ledger without bound: 20 a minute
    for _ in 0..25 {
        assert_eq!(review_post(&ops, &id, "release", &[]).0, 403);
    }
    assert!(w.executed("executed.jsonl").is_empty(), "nothing ran");

    // the CFO releases it from the CLI: it runs once, recorded with role and how
    let out = w.airlock(&["quarantine", "release", &id, "--as", "cfo@example.com"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(w.executed("executed.jsonl"), ["refund_order"]);
    agent.close().await;

    let rows = w.ledger_rows().await;
    let released: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "held_released").collect();
    assert_eq!(released.len(), 1);
    let body = &released[0]["body"];
    assert_eq!(body["by"], "cfo@example.com");
    assert_eq!(body["roles"], json!(["cfo"]));
    assert_eq!(body["auth"]["via"], "cli");
    let os_user = body["auth"]["os_user"].as_str().unwrap_or_default();
    assert!(os_user.contains("uid "), "the OS user from the real uid: {body}");
    let refused = refused_rows(&rows, &id);
    let by_ops = refused.iter().filter(|r| r.contains(REVIEWER)).count();
    assert_eq!(by_ops, 20, "28 refused attempts by ops, 20 recorded: {refused:?}");
    assert_eq!(refused.len(), 21, "and the CLI as the agent: {refused:?}");
    assert!(refused[0].contains("agent:test"), "{refused:?}");
}

#[tokio::test]
async fn a_held_call_mails_the_review_role_a_personal_link_that_works_and_a_foreign_one_does_not() {
    let w = crate::review::world();
    let agent = w.agent().await;
    let id = held_id(&agent.call("echo", json!({"text": "hi"})).await);
    // ops gets one mail with their own link (the outbox is real files, written by the mailer)
    let mut mail = None;
    for _ in 0..100 {
        mail = std::fs::read_dir(w.path("outbox")).ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .find(|m| m.contains("Held for review"))
        });
        if mail.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mail = mail.expect("a held-call notice in the outbox");
    assert!(mail.contains(&format!("To: {REVIEWER}")), "{mail}");
    assert!(
        mail.contains("Written by the agent (agent:test), not by Airlock:")
            && mail.contains("| text: \"hi\"")
            && mail.contains("End of the agent's text."),
        "the agent's words are marked as the agent's: {mail}"
    );
    let unfolded = unfold(&mail);
    let link = unfolded
        .split_whitespace()
        .find(|t| t.contains("/review/"))
        .expect("a review link")
        .to_string();
    let (status, page) = get(&link);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("You are {REVIEWER}")), "{page}");
    // a link whose MAC does not match, or one another gate's key made: nothing
    let (status, _) = get(&link.replace("/review/", "/review/00"));
    assert_eq!(status, 404);
    // a valid link of someone in no role opens nothing
    let (status, body) = get(&page_for(&w, "stranger@example.com"));
    assert_eq!(status, 403, "{body}");
    let (status, body) = review_post(&link, &id, "release", &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(w.executed("executed.jsonl"), ["echo"]);
    agent.close().await;
    let rows = w.ledger_rows().await;
    let sent = rows
        .iter()
        .filter(|r| r["kind"] == "mail_sent" && r["body"]["held"] == id.as_str())
        .count();
    assert_eq!(sent, 1);
    let released = rows
        .iter()
        .find(|r| r["kind"] == "held_released")
        .expect("released");
    assert_eq!(released["body"]["auth"]["via"], "link");
    assert_eq!(released["body"]["roles"], json!(["ops"]));
}

#[tokio::test]
async fn without_a_review_role_nothing_is_held_and_the_agent_is_told_why() {
    let w = crate::review::world();
    let policy = std::fs::read_to_string(w.path("p/policy.toml")).expect("policy");
    let without = policy.replace("[review]\nrole = \"ops\"\n", "");
    assert_ne!(policy, without);
    w.write("p/policy.toml", &without);
    let check = w.airlock(&["check", "--offline"]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "a warning, not an error: {said}");
    assert!(said.contains("no [review] role"), "{said}");
    let agent = w.agent().await;
    let r = agent.call("echo", json!({"text": "hi"})).await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("It is not held: the policy names no [review] role"),
        "{}",
        text(&r)
    );
    agent.close().await;
    let rows = w.ledger_rows().await;
    assert!(!rows.iter().any(|r| r["kind"] == "held"), "nothing held");
}
