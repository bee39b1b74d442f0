//! The approval page as a person sees it on a phone: headless Chromium (Debian `chromium`) at
//! 390×844 renders it, the DOM holds every envelope field, nothing but the summary heading and a
//! one-line state precedes the decision form (so the buttons are above the fold), and a
//! screenshot is kept as a test artefact in `target/tmp/approval-page-phone.png`.

use std::process::Command;
use std::sync::Arc;

use serde_json::json;

use crate::smtp::{Smtp, decide, get};
use crate::support::{World, is_error, Peer, require};

fn chromium(args: &[&str], profile: &std::path::Path) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=390,844",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("run chromium")
}

#[ignore = "needs aiosmtpd and chromium; scripts/test runs it"]
#[tokio::test]
async fn the_approval_page_on_a_phone_shows_every_envelope_field() {
    require(Peer::Chromium);
    let smtp = Smtp::start();
    let w = World::approvals(
        smtp.port,
        r#"{ path = "approve", role = "finance", timeout = "30m", on_timeout = "deny" }"#,
    );
    let agent = Arc::new(w.agent().await);
    let waiting = {
        let a = agent.clone();
        tokio::spawn(async move {
            a.call(
                "refund_order",
                json!({"order_id": "A-1001", "amount_cents": 4599, "reason": "damaged in transit"}),
            )
            .await
        })
    };
    let mail = smtp.wait_for("ann@example.com", "refund_order", 1).await;
    let link = mail.link();
    let profile = tempfile::tempdir().expect("profile");

    let dom = chromium(&["--dump-dom", &link], profile.path());
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("approval-page-phone.html"),
        &dom,
    );
    for label in [
        "Action",
        "Arguments",
        "Class",
        "Requested by",
        "Target",
        "Business impact",
        "Evidence",
        "Why approval",
        "Reversal",
        "Decided by",
        "Expires",
    ] {
        assert!(
            dom.contains(&format!("<dt>{label}</dt>")),
            "page lacks the {label} field"
        );
    }
    // the expiry the mail announced is the one the page shows, readable and exact
    let expires = mail
        .body
        .lines()
        .find_map(|l| l.strip_prefix("Expires:"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let (readable, exact) = expires
        .split_once(" (")
        .and_then(|(r, rest)| Some((r, rest.split_once(')')?.0)))
        .unwrap_or_else(|| panic!("{}", mail.body));
    assert!(
        readable.ends_with(" UTC") && exact.ends_with('Z'),
        "{expires}"
    );
    // the summary leads the page; only a one-line state stands between it and the form
    let body = dom.split_once("<body>").map_or("", |(_, b)| b).trim_start();
    let before_form = body.split("<form").next().unwrap_or_default().trim_end();
    let (heading, state) = before_form.split_once("</h1>").unwrap_or_default();
    assert_eq!(
        heading, "<h1>Refund $45.99 on order A-1001 <small><code>refund_order</code></small>",
        "{body}"
    );
    assert!(
        state.starts_with("<p class=\"state\">Waiting for a decision")
            && state.ends_with("</p>")
            && state.matches('<').count() == 2,
        "only the state line precedes the form: {before_form}"
    );
    assert!(
        body.find(">Approve</button>") < body.find("<dl class=\"envelope\">"),
        "the buttons come before the details"
    );
    assert!(!dom.contains('`'), "no markdown punctuation on the page");
    for value in [
        readable,
        exact,
        "<title>Approve? Refund $45.99 on order A-1001 · Airlock</title>",
        "<dt>Evidence</dt><dd>none</dd>",
        "<dt>amount_cents</dt><dd><code>4599</code></dd>",
        "needs approval by role <code>finance</code>",
        "<summary>Hashes</summary>",
        "refund_order",
        "4599",
        "financial",
        "agent:test",
        "payments.refunds",
        "Moves money to a customer",
        "needs approval by role",
        "policy test-approvals",
        "cannot be undone: refunds cannot be clawed back",
        "then the call is denied",
    ] {
        assert!(dom.contains(value), "page lacks `{value}`");
    }
    for button in ["Approve", "Deny", "Escalate", "Modify"] {
        assert!(
            dom.contains(&format!(">{button}</button>")),
            "page lacks the {button} button"
        );
    }
    assert!(!dom.contains("<script"), "the page serves no script");

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("approval-page-phone.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(
        &[&format!("--screenshot={}", shot.display()), &link],
        profile.path(),
    );
    let png = std::fs::read(&shot)
        .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(
        u32::from_be_bytes([png[16], png[17], png[18], png[19]]),
        390,
        "phone width"
    );

    // A browser that runs the page (as some mail scanners do) decided nothing.
    assert!(
        get(&link).1.contains("Waiting for a decision"),
        "still pending after the browser's visits"
    );
    assert!(w.executed("executed.jsonl").is_empty());
    assert_eq!(decide(&link, "deny", &[]).0, 200);
    assert!(is_error(&waiting.await.expect("agent")));
    if let Ok(a) = Arc::try_unwrap(agent) {
        a.close().await;
    }
}
