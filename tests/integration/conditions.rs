//! Conditions on arguments through the real binary: bounds and domains decide between autopilot
//! and approval, `check` validates them against the tools' live input schemas, `explain` shows them.

use serde_json::json;

use crate::support::{World, is_error, outbox_mails, text};

const POLICY: &str = r#"version = "conditions-1"
[classes]
read_only = { path = "allow" }
financial = { path = "conditional", role = "finance", timeout = "30m", conditions = [{ pointer = "/amount_cents", max = 10000 }] }
customer_facing = { path = "conditional", role = "support", timeout = "30m" }
[roles]
finance = { emails = ["finance@example.com"] }
support = { emails = ["support@example.com"] }
"#;

const MANIFESTS: &str = r#"[[tool]]
server = "shop"
name = "refund_order"
class = "financial"
target = "payments.refunds"
impact = "Moves money to a customer"
reversal = "none: refunds cannot be clawed back"
summary = "Refund {amount_cents|money:USD} on order {order_id}"

[[tool]]
server = "shop"
name = "send_customer_email"
class = "customer_facing"
target = "email"
impact = "A customer reads it"
reversal = "none: sent"
[[tool.condition]]
pointer = "/to"
domains = ["example.com"]
"#;

fn world(manifests: &str) -> World {
    let w = World::empty();
    w.write("p/policy.toml", POLICY);
    w.write("m/shop.toml", manifests);
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = \"p\"\nledger = \"l.redb\"\nactor = \"agent:test\"\nmax_wait = \"1s\"\n[web]\nbind = \"127.0.0.1:0\"\n[mail]\noutbox = \"outbox\"\n\n{}",
        w.shop_server("shop", "", "executed.jsonl")
    ));
    w
}

#[tokio::test]
async fn a_refund_under_the_threshold_runs_and_one_over_it_waits_for_approval() {
    let w = world(MANIFESTS);
    let agent = w.agent().await;
    let small = agent
        .call(
            "refund_order",
            json!({"order_id": "A-1001", "amount_cents": 5000, "reason": "late"}),
        )
        .await;
    assert_eq!(text(&small), "refunded 5000 cents on A-1001");
    let big = agent
        .call(
            "refund_order",
            json!({"order_id": "A-1001", "amount_cents": 20000, "reason": "late"}),
        )
        .await;
    assert!(
        !is_error(&big) && text(&big).contains("waiting for approval by role `finance`"),
        "{}",
        text(&big)
    );

    let inside = agent
        .call(
            "send_customer_email",
            json!({"to": "ann@example.com", "subject": "s", "body": "b"}),
        )
        .await;
    assert!(
        text(&inside).starts_with("queued message to ann@example.com"),
        "{}",
        text(&inside)
    );
    let outside = agent
        .call(
            "send_customer_email",
            json!({"to": "eve@evil.com", "subject": "s", "body": "b"}),
        )
        .await;
    assert!(
        text(&outside).contains("waiting for approval by role `support`"),
        "{}",
        text(&outside)
    );
    agent.close().await;

    assert_eq!(
        w.executed("executed.jsonl"),
        ["refund_order", "send_customer_email"]
    );
    // the envelope (and so the mail and page) names the failed condition as the reason
    let mails = outbox_mails(&w);
    assert!(
        mails
            .iter()
            .any(|m| m.contains("/amount_cents = 20000 is not <= 10000")),
        "{mails:?}"
    );
    assert!(
        mails
            .iter()
            .any(|m| m.contains("/to = \"eve@evil.com\" is not addresses at example.com")),
        "{mails:?}"
    );
}

#[test]
fn explain_shows_which_condition_decided_and_with_what_value() {
    let w = world(MANIFESTS);
    let out = w.airlock(&[
        "explain",
        "--tool",
        "refund_order",
        "--args",
        r#"{"order_id":"A-1","amount_cents":25000,"reason":"x"}"#,
    ]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains("verdict:  approve")
            && t.contains("[condition_failed] `/amount_cents` = 25000 is not <= 10000"),
        "{t}"
    );
    let out = w.airlock(&[
        "explain",
        "--tool",
        "refund_order",
        "--args",
        r#"{"order_id":"A-1","amount_cents":100,"reason":"x"}"#,
    ]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains("verdict:  allow")
            && t.contains("[condition_held] `/amount_cents` = 100 is <= 10000"),
        "{t}"
    );
}

#[test]
fn check_refuses_a_condition_on_an_argument_the_tool_does_not_have() {
    let w = world(&MANIFESTS.replace("pointer = \"/to\"", "pointer = \"/recipient\""));
    let out = w.airlock(&["check"]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let file = w.path("m/shop.toml").display().to_string();
    assert!(t.contains(&format!("{file}:10:1: error: tool shop/send_customer_email condition: the tool's input schema has no argument at `/recipient`")), "{t}");
    // a class condition is checked against every tool of the class
    w.write("p/policy.toml", &POLICY.replace("/amount_cents", "/amount"));
    let t = String::from_utf8_lossy(&w.airlock(&["check"]).stdout).into_owned();
    assert!(t.contains("classes.financial.conditions: the tool's input schema has no argument at `/amount` (tool `refund_order`)"), "{t}");
    // so is a rate limit that adds up an argument the tool does not have
    w.write(
        "p/policy.toml",
        &POLICY.replace(
            "conditions = [{ pointer = \"/amount_cents\", max = 10000 }]",
            "limits = [{ window = \"1d\", sum = \"/amount\", max_total = 5000 }]",
        ),
    );
    let t = String::from_utf8_lossy(&w.airlock(&["check"]).stdout).into_owned();
    assert!(t.contains("classes.financial.limits: the tool's input schema has no argument at `/amount` (tool `refund_order`)"), "{t}");
    // offline, only the rules themselves are checked
    let out = w.airlock(&["check", "--offline"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // and serve refuses to start on it
    let out = w.airlock(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("error(s) in conditions; nothing was started")
    );
}

#[test]
fn check_refuses_a_summary_field_the_tool_does_not_have_or_cannot_format() {
    let w = world(&MANIFESTS.replace("{amount_cents|money:USD}", "{amount|money:USD}"));
    let out = w.airlock(&["check"]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let file = w.path("m/shop.toml").display().to_string();
    assert!(t.contains(&format!("{file}:1:1: error: tool shop/refund_order summary: `{{amount}}`: the tool's input schema has no argument at `/amount` (tool `refund_order`)")), "{t}");
    let w = world(&MANIFESTS.replace("{order_id}\"", "{order_id|money:USD}\""));
    let t = String::from_utf8_lossy(&w.airlock(&["check"]).stdout).into_owned();
    assert!(
        t.contains(
            "`{order_id}` is string in the tool's input schema; `money:USD` needs integer or number"
        ),
        "{t}"
    );
    // a syntax error is found offline, at its line and key
    let w = world(&MANIFESTS.replace("{order_id}\"", "{order_id\""));
    let file = w.path("m/shop.toml").display().to_string();
    let t = String::from_utf8_lossy(&w.airlock(&["check", "--offline"]).stdout).into_owned();
    assert!(
        t.contains(&format!(
            "{file}:8:11: error: tool[0].summary: at character 42: `{{` is never closed"
        )),
        "{t}"
    );
}

#[test]
fn a_malformed_condition_is_located() {
    let w = world(&MANIFESTS.replace(
        "domains = [\"example.com\"]",
        "domains = [\"example.com\"]\nmax = 3",
    ));
    let out = w.airlock(&["check", "--offline"]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        t.contains("tool[1].condition[0]: a condition has exactly one test"),
        "{t}"
    );
}

#[tokio::test]
async fn an_edit_that_would_need_another_role_is_refused_on_the_approval_page() {
    let w = world(MANIFESTS);
    // under 100 cents goes to the cfo; over 10,000 to finance
    w.write(
        "p/policy.toml",
        &POLICY
            .replace(
                "conditions = [{ pointer = \"/amount_cents\", max = 10000 }]",
                "conditions = [{ pointer = \"/amount_cents\", max = 10000 }, { pointer = \"/amount_cents\", min = 100, role = \"cfo\" }]",
            )
            .replace("[roles]\n", "[roles]\ncfo = { emails = [\"cfo@example.com\"] }\n"),
    );
    let agent = w.agent().await;
    let r = agent
        .call(
            "refund_order",
            json!({"order_id": "A-1001", "amount_cents": 20000, "reason": "late"}),
        )
        .await;
    assert!(text(&r).contains("role `finance`"), "{}", text(&r));
    let mut link = None;
    for _ in 0..100 {
        let mail = outbox_mails(&w)
            .into_iter()
            .find(|m| m.contains("finance@example.com"));
        if let Some(m) = mail {
            // the summary leads: the subject, and the body's first line
            let lines = m.replace("\r\n", "\n");
            assert!(
                lines.contains("Subject: [Airlock] Approve? Refund $200.00 on order A-1001 (refund_order)")
                    && lines.contains("\n\nRefund $200.00 on order A-1001 (refund_order)\n\nAirlock needs a decision from role finance, by "),
                "{m}"
            );
            let start = m.find("http://").expect("link");
            link = m[start..].split_whitespace().next().map(String::from);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let link = link.expect("approval mail in the outbox");
    let (status, page) = crate::smtp::decide(
        &link,
        "modify",
        &[(
            "arguments",
            r#"{"order_id": "A-1001", "amount_cents": 50, "reason": "late"}"#,
        )],
    );
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("would need approval by role <code>cfo</code>, not <code>finance</code>"),
        "{page}"
    );
    agent.close().await;
    assert!(w.executed("executed.jsonl").is_empty());
}
