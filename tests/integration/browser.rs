//! The approval page as a person sees it on a phone: headless Chromium (Debian `chromium`) at
//! 390×844 renders it, the DOM holds every envelope field, nothing but the summary heading (with
//! what its highlight means, and a warning when the request hides characters) and a one-line
//! state precedes the decision form, the buttons are on the first screen even with a warning
//! (their colours are found in the screenshot), and screenshots are kept as test artefacts in
//! `target/tmp/approval-page-phone.png` and `approval-page-warning-phone.png`.

use std::process::Command;
use std::sync::Arc;

use serde_json::json;

use crate::smtp::{Smtp, decide, get};
use crate::support::{Peer, World, is_error, python, require};

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
    let (heading, rest) = before_form.split_once("</h1>").unwrap_or_default();
    assert_eq!(
        heading,
        "<h1>Refund $45.99 on order <span class=\"agent\">A-1001</span> <small><code>refund_order</code></small>",
        "the agent's value is highlighted: {body}"
    );
    let (note, state) = rest.split_once("</p>").unwrap_or_default();
    assert_eq!(
        note,
        "<p class=\"note\"><span class=\"agent\">Highlighted</span> text was written by the agent (agent:test), not by Airlock."
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

/// Pixels of the Approve button's green and the Deny button's red in a PNG screenshot (RGB or
/// RGBA, 8 bits), counted by a few lines of Python's standard library.
fn button_pixels(png: &std::path::Path) -> (u64, u64) {
    const COUNT: &str = r#"
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
pos, idat = 8, b''
while pos < len(data):
    n, kind = struct.unpack('>I', data[pos:pos + 4])[0], data[pos + 4:pos + 8]
    body = data[pos + 8:pos + 8 + n]
    pos += 12 + n
    if kind == b'IHDR':
        w, h, depth, color = struct.unpack('>IIBB', body[:10])
    elif kind == b'IDAT':
        idat += body
assert depth == 8 and color in (2, 6), (depth, color)
bpp = 3 if color == 2 else 4
raw, stride, prev, i = zlib.decompress(idat), w * bpp, bytearray(w * bpp), 0
green = red = 0
for y in range(h):
    f, cur = raw[i], bytearray(raw[i + 1:i + 1 + stride])
    i += 1 + stride
    for x in range(stride):
        a = cur[x - bpp] if x >= bpp else 0
        b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
        if f == 1: cur[x] = (cur[x] + a) & 255
        elif f == 2: cur[x] = (cur[x] + b) & 255
        elif f == 3: cur[x] = (cur[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            cur[x] = (cur[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        rgb = tuple(cur[x:x + 3])
        green += rgb == (0x0a, 0x7d, 0x32)
        red += rgb == (0xb3, 0x26, 0x1e)
    prev = cur
print(green, red)
"#;
    let out = Command::new(python())
        .args(["-c", COUNT])
        .arg(png)
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut n = text.split_whitespace().map(|w| w.parse().unwrap_or(0));
    let counts = (n.next().unwrap_or(0), n.next().unwrap_or(0));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    counts
}

#[ignore = "needs aiosmtpd, chromium and python; scripts/test runs it"]
#[tokio::test]
async fn a_warning_about_hidden_characters_keeps_the_buttons_on_the_first_screen_of_a_phone() {
    require(Peer::Chromium);
    require(Peer::Python);
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
                json!({"order_id": "acct-\u{202E}1000-tcca\u{200B}", "amount_cents": 4599, "reason": "p\u{0430}ypal confirmed, see https://evil.example/ok"}),
            )
            .await
        })
    };
    let link = smtp.wait_for("ann@example.com", "refund_order", 1).await.link();
    let profile = tempfile::tempdir().expect("profile");

    // the DOM Chromium built: the escapes are text, nothing hidden, no link
    let dom = chromium(&["--dump-dom", &link], profile.path());
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(!dom.contains('\u{202E}') && !dom.contains('\u{200B}'), "{dom}");
    assert!(dom.contains("<span class=\"agent\">acct-\\u202E1000-tcca\\u200B</span>"), "{dom}");
    assert!(dom.contains("<p class=\"warn\">⚠ This request contains hidden characters"), "{dom}");
    assert!(!dom.contains("<a "), "no link: {dom}");

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("approval-page-warning-phone.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(&[&format!("--screenshot={}", shot.display()), &link], profile.path());
    assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let (green, red) = button_pixels(&shot);
    assert!(
        green > 1000 && red > 1000,
        "Approve ({green} px) and Deny ({red} px) are on the first screen"
    );

    assert_eq!(decide(&link, "deny", &[]).0, 200);
    assert!(is_error(&waiting.await.expect("agent")));
    if let Ok(a) = Arc::try_unwrap(agent) {
        a.close().await;
    }
}
