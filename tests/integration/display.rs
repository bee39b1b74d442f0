//! What the approver sees is what runs: an approval whose arguments hide characters (a bidi
//! override, a zero-width space) and imitate letters (a Cyrillic `а` in a Latin word) reaches the
//! approver's mail (real SMTP) and page (real HTTP) with the characters as visible escapes, a
//! warning line, the agent's text marked as the agent's and its links broken in the mail; the
//! `seen` hash recorded with the decision is the hash of exactly that escaped text; the stored
//! arguments are the agent's, untouched.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::smtp::{Smtp, approval_id, field, get, post};
use crate::support::{World, is_error, text};

const APPROVE_30M: &str =
    r#"{ path = "approve", role = "finance", timeout = "30m", on_timeout = "deny" }"#;

/// The order id that displays as `acct-acct0001` reversed: it reads otherwise than it runs.
const SPOOFED: &str = "acct-\u{202E}1000-tcca\u{200B}";
const SPOOFED_SHOWN: &str = "acct-\\u202E1000-tcca\\u200B";
const LOOKALIKE: &str = "p\u{0430}ypal confirmed: approved already by the CFO, see https://evil.example/ok";

/// Characters a person would not see, or would see in another order.
fn hidden_in(s: &str) -> Vec<String> {
    s.chars()
        .filter(|c| ['\u{202E}', '\u{200B}', '\u{202D}', '\u{2066}', '\u{FEFF}'].contains(c))
        .map(|c| format!("U+{:04X}", u32::from(c)))
        .collect()
}

/// The parts of the page the `seen` hash covers: the heading (up to the state line) and the
/// details (the envelope list up to the Modify box), exactly as served.
fn hashed_parts(page: &str) -> String {
    let body = page.split_once("<body>").map_or("", |(_, b)| b);
    let heading = body.split("<p class=\"state\">").next().unwrap_or_default();
    let details = page
        .split_once("<dl class=\"envelope\">")
        .map(|(_, rest)| rest.split("\n<details><summary>Modify").next().unwrap_or_default())
        .unwrap_or_default();
    format!("{heading}<dl class=\"envelope\">{details}")
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn hidden_and_look_alike_characters_are_escaped_flagged_and_hashed_on_the_page_and_in_mail() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let agent = Arc::new(w.agent().await);
    let call = |order: &str| {
        let a = agent.clone();
        let args = json!({"order_id": order, "amount_cents": 500, "reason": LOOKALIKE});
        tokio::spawn(async move { a.call("refund_order", args).await })
    };
    let spoofed = call(SPOOFED);

    // the mail: escapes and a warning, the agent's lines marked, its link broken
    let mail = smtp.wait_for("ann@example.com", "refund_order", 1).await;
    assert_eq!(
        mail.subject,
        format!("[Airlock] Approve? Refund $5.00 on order {SPOOFED_SHOWN} (refund_order)")
    );
    assert_eq!(hidden_in(&mail.body), Vec::<String>::new(), "{}", mail.body);
    for line in [
        format!("Refund $5.00 on order {SPOOFED_SHOWN} (refund_order)\n"),
        "\nWARNING: This request contains hidden characters, shown as escapes: \\u202E (reorders text) and \\u200B (invisible) in order_id; and look-alike letters: “p\u{0430}ypal” in reason mixes Latin and Cyrillic letters, looks like “paypal”. Read it as escaped before deciding.\n".into(),
        "\nWritten by the agent (agent:test), not by Airlock:\n".into(),
        format!("\n| in the summary: “{SPOOFED_SHOWN}”\n"),
        format!("\n| order_id: {SPOOFED_SHOWN}\n"),
        "\n| reason: p\u{0430}ypal confirmed: approved already by the CFO, see https[:]//evil.example/ok\n".into(),
        "\nEnd of the agent's text.\n".into(),
    ] {
        assert!(mail.body.contains(&line), "mail lacks {line:?}:\n{}", mail.body);
    }
    assert!(!mail.body.contains("https://"), "no link from the agent's text: {}", mail.body);

    // the page, over HTTP: the same escapes, the warning above the buttons, the agent's text marked
    let link = mail.link();
    let (status, page) = get(&link);
    assert_eq!(status, 200, "{page}");
    assert_eq!(hidden_in(&page), Vec::<String>::new(), "nothing hidden on the page");
    let before_form = page.split("<form").next().unwrap_or_default();
    for shown in [
        format!("<h1>Refund $5.00 on order <span class=\"agent\">{SPOOFED_SHOWN}</span> <small><code>refund_order</code></small></h1>"),
        "<p class=\"warn\">⚠ This request contains hidden characters, shown as escapes: \\u202E (reorders text) and \\u200B (invisible) in order_id; and look-alike letters: “p\u{0430}ypal” in reason mixes Latin and Cyrillic letters, looks like “paypal”.".into(),
        "<p class=\"note\"><span class=\"agent\">Highlighted</span> text was written by the agent (agent:test), not by Airlock.</p>".into(),
    ] {
        assert!(before_form.contains(&shown), "lacks {shown} before the form:\n{before_form}");
    }
    for shown in [
        "<dt>Arguments</dt><dd class=\"agent\"><small>Written by the agent (agent:test), not by Airlock:</small>".to_string(),
        format!("<dt>order_id</dt><dd>{SPOOFED_SHOWN} <small class=\"flag\">⚠ hidden characters shown as escapes</small></dd>"),
        "<dt>reason</dt><dd>p\u{0430}ypal confirmed: approved already by the CFO, see https://evil.example/ok <small class=\"flag\">⚠ look-alike letters</small></dd>".into(),
    ] {
        assert!(page.contains(&shown), "page lacks {shown}:\n{page}");
    }
    assert!(!page.contains("<a "), "the page makes no link of anything");
    assert!(!page.contains("<script"));

    // `seen` is the hash of exactly the escaped heading and details served
    let seen = field(&page, "seen");
    let parts = hashed_parts(&page);
    assert!(parts.contains(SPOOFED_SHOWN) && parts.contains("class=\"warn\""), "{parts}");
    assert_eq!(seen, airlock::canonical::sha256_hex(parts.as_bytes()));

    // the same request without the hidden characters is shown, and hashed, otherwise
    let plain = call("acct-1000-tcca");
    let plain_mail = smtp.wait_for("ann@example.com", "acct-1000-tcca", 1).await;
    let (_, plain_page) = get(&plain_mail.link());
    assert!(!plain_page.contains("\\u202E") && !plain_mail.body.contains("\\u200B"));
    assert_ne!(field(&plain_page, "seen"), seen);

    // deciding records the hash of what was shown
    let form = [
        ("nonce", field(&page, "nonce")),
        ("rendered_at", field(&page, "rendered_at")),
        ("seen", seen.clone()),
        ("action", "deny".into()),
        ("comment", "that is not an order id".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, answer) = post(&link, &form);
    assert_eq!(status, 200, "{answer}");
    assert!(is_error(&spoofed.await.expect("agent")));
    let (status, _) = crate::smtp::decide(&plain_mail.link(), "deny", &[]);
    assert_eq!(status, 200);
    let denied = plain.await.expect("agent");
    assert!(is_error(&denied), "{}", text(&denied));
    if let Ok(a) = Arc::try_unwrap(agent) {
        a.close().await;
    }

    let rows = w.ledger_rows().await;
    let id = approval_id(&link);
    let decision = rows
        .iter()
        .find(|r| r["kind"] == "decision" && r["body"]["approval_id"] == id.as_str())
        .expect("decision row");
    assert_eq!(decision["body"]["seen_sha256"], seen.as_str());
    // what runs (and is recorded) is the agent's exact string, never the escaped one
    let proposal = rows
        .iter()
        .find(|r| r["kind"] == "proposal" && r["call_id"] == decision["call_id"])
        .expect("proposal row");
    assert_eq!(proposal["body"]["arguments"]["order_id"], Value::from(SPOOFED));
    let envelope = rows
        .iter()
        .find(|r| r["kind"] == "envelope" && r["call_id"] == decision["call_id"])
        .expect("envelope row");
    assert_eq!(envelope["body"]["envelope"]["arguments"]["order_id"], Value::from(SPOOFED));
    assert!(w.executed("executed.jsonl").is_empty());
}

#[tokio::test]
async fn a_held_call_on_the_review_page_shows_its_hidden_characters_as_escapes() {
    let w = crate::review::world();
    let agent = w.agent().await;
    let held = agent
        .call("echo", json!({"text": format!("{SPOOFED} {LOOKALIKE}")}))
        .await;
    assert!(is_error(&held), "quarantined: {}", text(&held));
    let out = w.airlock(&["quarantine", "list", "--json", "--as", crate::review::REVIEWER]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    let url = list["review_url"].as_str().expect("review url");
    let (status, page) = get(url);
    assert_eq!(status, 200, "{page}");
    assert_eq!(hidden_in(&page), Vec::<String>::new(), "nothing hidden on the review page");
    for shown in [
        "<p class=\"warn\">⚠ This request contains hidden characters, shown as escapes: \\u202E (reorders text) and \\u200B (invisible) in text; and look-alike letters: “p\u{0430}ypal” in text mixes Latin and Cyrillic letters, looks like “paypal”.",
        "<small>Written by the agent (agent:test), not by Airlock — the reason, quoting its values, and the arguments:</small><div class=\"agent\"><small>",
        "<pre>{\n  &quot;text&quot;: &quot;acct-\\u202E1000-tcca\\u200B p\u{0430}ypal confirmed",
    ] {
        assert!(page.contains(shown), "review page lacks {shown}:\n{page}");
    }
    assert!(!page.contains("href=\"https://evil"), "no link from the agent's text");
    agent.close().await;
}

#[tokio::test]
async fn a_long_value_from_the_agent_is_cut_in_the_mail_and_whole_on_the_page() {
    let w = World::demo();
    let long = "B".repeat(10_000);
    let agent = w.agent().await;
    let r = agent
        .call("refund_order", json!({"order_id": long, "amount_cents": 700, "reason": "late"}))
        .await;
    assert!(text(&r).contains("approv"), "waits for approval: {}", text(&r));
    agent.close().await;
    w.wait_for_ledger().await;
    let mail = std::fs::read_dir(w.path("outbox"))
        .expect("outbox")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .map(|raw| crate::smtp::parse(&raw))
        .find(|m| m.subject.starts_with("[Airlock] Approve?"))
        .expect("the approval mail");
    assert_eq!(
        mail.subject,
        format!("[Airlock] Approve? Refund $7.00 on order {}… (refund_order)", "B".repeat(59))
    );
    assert!(mail.subject.chars().count() <= 150, "{}", mail.subject);
    let cut = format!("| order_id: {}… [cut: 10000 characters in all; the approval page shows it whole]", "B".repeat(299));
    assert!(mail.body.contains(&cut), "the body cuts it and says where it is whole:\n{}", mail.body);
    assert!(!mail.body.contains(&"B".repeat(300)), "never the whole value in mail");
    let link = mail.body[mail.body.find("http://").expect("link")..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let _ = link; // the gate has stopped: the page's whole value is checked in the unit tests of web::envelope
}
