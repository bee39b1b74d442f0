//! Drift pause: autopilot calls past a rate limit are held and pause their scope; the role is
//! mailed a resume link; a reviewer resumes from the page or the CLI; counters and pauses survive
//! a restart.

use serde_json::{Value, json};

use crate::smtp::{Smtp, get, post};
use crate::support::{REPO, World, decision, is_error, text};

/// The demo shop; `internal_reversible` allows 2 calls an hour per actor, and refunds run on
/// autopilot up to 10,000 cents a day in total (a `[[tool.limit]]` in the manifest).
pub(crate) fn world(mail: &str) -> World {
    let w = World::empty();
    let manifests = std::fs::read_to_string(format!("{REPO}/tool-manifests/demo_shop.toml"))
        .expect("manifests");
    let refund_reversal = "reversal = \"none: refunds cannot be clawed back\"\n";
    assert!(manifests.contains(refund_reversal));
    w.write(
        "m/shop.toml",
        &manifests.replace(
            refund_reversal,
            &format!("{refund_reversal}\n[[tool.limit]]\nwindow = \"1d\"\nsum = \"/amount_cents\"\nmax_total = 10000\nper = \"all\"\n"),
        ),
    );
    w.write(
        "p/policy.toml",
        "version = \"drift-test\"\n[classes]\nread_only = { path = \"allow\" }\n\
         internal_reversible = { path = \"allow\", role = \"ops\", limits = [{ window = \"1h\", max_calls = 2 }] }\n\
         customer_facing = { path = \"deny\" }\nfinancial = { path = \"allow\", role = \"finance\" }\ndestructive = { path = \"deny\" }\n\
         [roles]\nops = { emails = [\"ops@example.com\"] }\nfinance = { emails = [\"finance@example.com\"] }\n",
    );
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = \"p\"\nledger = \"l.redb\"\nactor = \"agent:test\"\nmax_wait = \"1s\"\n[web]\nbind = \"127.0.0.1:0\"\n[mail]\nfrom = \"airlock@example.com\"\n{mail}\n\n{}",
        w.shop_server("shop", "", "executed.jsonl")
    ));
    w
}

fn codes(r: &rmcp::model::CallToolResult) -> Vec<String> {
    decision(r)["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["code"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn tag(n: usize) -> Value {
    json!({"order_id": "A-1001", "tag": format!("t{n}")})
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn a_breach_pauses_autopilot_mails_the_role_and_resuming_from_the_link_lets_calls_run() {
    let smtp = Smtp::start();
    let w = world(&format!("smtp = \"smtp://127.0.0.1:{}\"", smtp.port));
    let agent = w.agent().await;
    for n in 0..2 {
        let r = agent.call("tag_order", tag(n)).await;
        assert!(!is_error(&r), "within the limit: {}", text(&r));
    }
    let crossed = agent.call("tag_order", tag(2)).await;
    assert!(is_error(&crossed));
    assert_eq!(decision(&crossed)["verdict"], "quarantine");
    assert!(
        codes(&crossed).contains(&"limit_reached".to_string()),
        "{:?}",
        codes(&crossed)
    );
    assert!(
        text(&crossed).contains("held for review"),
        "{}",
        text(&crossed)
    );
    let paused = agent.call("tag_order", tag(3)).await;
    assert!(
        codes(&paused).contains(&"autopilot_paused".to_string()),
        "{}",
        text(&paused)
    );
    assert_eq!(
        w.executed("executed.jsonl").len(),
        2,
        "only the calls within the limit ran"
    );
    // another class is not paused
    assert!(!is_error(
        &agent.call("search_orders", json!({"query": ""})).await
    ));

    let list = w.airlock(&["drift", "list", "--json"]);
    let pauses: Value = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(
        pauses[0]["scope"], "class:internal_reversible@agent:test",
        "{pauses}"
    );

    // the role gets a link; the page shows the pause and resumes it
    let mail = smtp
        .wait_for("ops@example.com", "Autopilot paused", 1)
        .await;
    let link = mail.link();
    assert!(link.contains("/p/"), "{link}");
    // the pause's link opens that pause only, not the review page
    let (base, rest) = link.split_once("/p/").expect("a pause link");
    let token = rest.rsplit('/').next().expect("its token");
    assert_eq!(get(&format!("{base}/review/{token}")).0, 404);
    let (status, page) = get(&link);
    assert_eq!(status, 200);
    assert!(
        page.contains("class:internal_reversible@agent:test") && page.contains("Resume autopilot"),
        "{page}"
    );
    let (status, body) = post(&link, &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Autopilot resumed"), "{body}");
    assert_eq!(get(&link).0, 404, "a used resume link is spent");

    let r = agent.call("tag_order", tag(4)).await;
    assert!(!is_error(&r), "autopilot runs again: {}", text(&r));
    assert_eq!(
        w.executed("executed.jsonl").len(),
        4,
        "2 before, the search, and 1 after"
    );
    agent.close().await;
    let rows = w.ledger_rows().await;
    assert_eq!(
        rows.iter()
            .filter(|r| r["kind"] == "autopilot_resumed")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_daily_amount_total_survives_restarts_and_the_cli_resumes_it() {
    let w = world("outbox = \"outbox\"");
    let refund =
        |cents: u64| json!({"order_id": "A-1001", "amount_cents": cents, "reason": "late"});
    let agent = w.agent().await;
    assert!(!is_error(&agent.call("refund_order", refund(6000)).await));
    agent.close().await;
    w.wait_for_ledger().await;

    // a new process: the 6,000 already counted makes 5,000 more cross the 10,000 total
    let agent = w.agent().await;
    let r = agent.call("refund_order", refund(5000)).await;
    assert!(
        codes(&r).contains(&"limit_reached".to_string()),
        "{}",
        text(&r)
    );
    agent.close().await;
    w.wait_for_ledger().await;

    // and the pause outlives the process that started it
    let agent = w.agent().await;
    let r = agent.call("refund_order", refund(1)).await;
    assert!(
        codes(&r).contains(&"autopilot_paused".to_string()),
        "{}",
        text(&r)
    );
    // the refund limit's role is the class's (finance): ops may not resume it, finance may
    let scope = "tool:shop/refund_order";
    let out = w.airlock(&["drift", "resume", scope, "--as", "ops@example.com"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("only a member of role finance may decide this"),
        "{said}"
    );
    let out = w.airlock(&["drift", "resume", scope, "--as", "finance@example.com"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = w.airlock(&["drift", "resume", scope, "--as", "finance@example.com"]);
    assert!(!out.status.success(), "nothing left to resume");
    let r = agent.call("refund_order", refund(5000)).await;
    assert!(
        !is_error(&r),
        "counters start afresh after a resume: {}",
        text(&r)
    );
    assert_eq!(
        w.executed("executed.jsonl"),
        ["refund_order", "refund_order"]
    );
    agent.close().await;
}
