//! Approval channels: signed webhooks (Standard Webhooks), delivered to a receiver that verifies
//! them with the scheme's reference library (`tests/peers/channel_receiver.py`).

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::smtp::{Smtp, decide};
use crate::support::{Agent, Receiver, World, is_error, python, text};

/// A Standard Webhooks secret (the scheme's own example).
pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Another secret, which the receiver does not know.
const FORGER: &str = "whsec_YSBmb3JnZWQga2V5LCBub3QgdGhlIHJlYWwgb25lISE=";

/// Posts one event signed with argv[2] and the same event signed with argv[3] to argv[1],
/// signed by the reference library; prints the two status codes.
const SIGN_AND_POST: &str = r#"
import json, sys, urllib.error, urllib.request
from datetime import datetime, timezone
from standardwebhooks import Webhook
url, secret, forger = sys.argv[1:4]
body = json.dumps({"type": "approval.opened", "data": {"approval_id": "a1"}})
now = datetime.now(timezone.utc)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
statuses = []
for msg_id, key in (("msg_signed", secret), ("msg_forged", forger)):
    headers = {"content-type": "application/json", "webhook-id": msg_id,
               "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(key).sign(msg_id, now, body)}
    request = urllib.request.Request(url, body.encode(), headers, method="POST")
    try:
        with opener.open(request, timeout=30) as answer:
            statuses.append(answer.status)
    except urllib.error.HTTPError as answer:
        statuses.append(answer.code)
print(json.dumps(statuses))
"#;

#[ignore = "needs standardwebhooks; scripts/test runs it"]
#[test]
fn the_receiver_verifies_a_standard_webhook_signed_by_python_and_refuses_a_forged_one() {
    let receiver = Receiver::start(SECRET);
    let out = Command::new(python())
        .args(["-c", SIGN_AND_POST, &receiver.url("/hooks/airlock"), SECRET, FORGER])
        .output()
        .expect("python (the peers' virtual environment)");
    assert!(
        out.status.success(),
        "the signing snippet failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let statuses: Value = serde_json::from_slice(&out.stdout).expect("the statuses as JSON");
    assert_eq!(statuses, json!([200, 401]));

    let entries = receiver.wait_for(2, Duration::from_secs(10));
    let (signed, forged) = (&entries[0], &entries[1]);
    assert_eq!(signed["path"], "/hooks/airlock");
    assert_eq!(signed["headers"]["webhook-id"], "msg_signed");
    assert_eq!(signed["body"]["data"]["approval_id"], "a1");
    assert_eq!(signed["verified"], true, "{signed}");
    assert_eq!(signed["error"], Value::Null);
    assert_eq!((&signed["attempt"], &signed["status"]), (&json!(1), &json!(200)));
    assert_eq!(forged["headers"]["webhook-id"], "msg_forged");
    assert_eq!(forged["verified"], false, "{forged}");
    assert!(
        forged["error"].as_str().unwrap_or("").contains("No matching signature"),
        "{forged}"
    );
    assert_eq!((&forged["attempt"], &forged["status"]), (&json!(1), &json!(401)));
}

/// The variable `airlock serve` reads the channel's secret from in these tests.
pub(crate) const VAR: &str = "AIRLOCK_TEST_WEBHOOK_OPS";

const APPROVE_30M: &str =
    r#"{ path = "approve", role = "finance", timeout = "30m", on_timeout = "deny" }"#;

/// The approvals world with role `finance` announcing on `channels` (as the policy writes
/// them), defined by `defined` (`[[channel]]` tables appended to airlock.toml).
fn finance_with(smtp_port: u16, channels: &str, defined: &str) -> World {
    finance_rule_with(smtp_port, APPROVE_30M, channels, defined)
}

/// [`finance_with`], the class `financial` being `rule`.
pub(crate) fn finance_rule_with(smtp_port: u16, rule: &str, channels: &str, defined: &str) -> World {
    let w = World::approvals(smtp_port, rule);
    let policy = std::fs::read_to_string(w.path("p/policy.toml")).expect("policy");
    let with = policy.replace(
        "escalate_to = \"cfo\" }",
        &format!("escalate_to = \"cfo\", channels = {channels} }}"),
    );
    assert_ne!(policy, with, "the finance role names its channels");
    w.write("p/policy.toml", &with);
    let cfg = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!("{cfg}\n{defined}"));
    w
}

/// The approvals world with role `finance` announcing on `webhook:ops`, posted to `url`.
fn with_channel(smtp_port: u16, url: &str) -> World {
    finance_with(
        smtp_port,
        r#"["webhook:ops"]"#,
        &format!("[[channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = {url:?}\nsecret_env = \"{VAR}\"\n"),
    )
}

/// At least `n` requests at the receiver, polled without blocking the test's runtime.
pub(crate) async fn received(receiver: &Receiver, n: usize) -> Vec<Value> {
    for _ in 0..600 {
        let entries = receiver.entries();
        if entries.len() >= n {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiver.wait_for(n, Duration::ZERO)
}

fn refund() -> Value {
    json!({"order_id": "A-1001", "amount_cents": 500, "reason": "damaged parcel"})
}

/// Start a refund that waits for approval; the mail to ann, and the agent's pending answer.
async fn refund_waiting(
    w: &World,
    smtp: &Smtp,
) -> (
    Arc<Agent>,
    tokio::task::JoinHandle<rmcp::model::CallToolResult>,
    crate::smtp::Received,
) {
    let agent = Arc::new(w.agent_with_env(&[(VAR, SECRET)]).await);
    let a = agent.clone();
    let waiting = tokio::spawn(async move { a.call("refund_order", refund()).await });
    let mail = smtp.wait_for("ann@example.com", "refund_order", 1).await;
    (agent, waiting, mail)
}

async fn close(agent: Arc<Agent>) {
    if let Ok(a) = Arc::try_unwrap(agent) {
        a.close().await;
    }
}

fn kinds<'a>(rows: &'a [Value], kind: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["kind"] == kind).collect()
}

#[ignore = "needs aiosmtpd and standardwebhooks; scripts/test runs it"]
#[tokio::test]
async fn an_approval_reaches_a_signed_webhook_and_its_decision_follows_in_order() {
    let receiver = Receiver::start(SECRET);
    let smtp = Smtp::start();
    let w = with_channel(smtp.port, &receiver.url("/hooks/ops"));
    let (agent, waiting, mail) = refund_waiting(&w, &smtp).await;

    let opened = &received(&receiver, 1).await[0];
    assert_eq!(opened["verified"], true, "{opened:#}");
    assert_eq!(opened["path"], "/hooks/ops");
    let body = &opened["body"];
    assert_eq!(body["type"], "approval.opened", "{body:#}");
    let data = &body["data"];
    assert_eq!(data["role"], "finance");
    assert_eq!(data["summary"], "Refund $5.00 on order A-1001");
    assert_eq!(data["class"], "financial");
    assert_eq!(data["actor"], "agent:test");
    assert_eq!(data["approval_id"], crate::smtp::approval_id(&mail.link()));
    assert!(!body.to_string().contains("damaged parcel"), "never the arguments: {body:#}");
    assert!(!body.to_string().contains("/a/"), "never a link that decides: {body:#}");

    let (status, page) = decide(&mail.link(), "approve", &[]);
    assert_eq!(status, 200, "{page}");
    let result = waiting.await.expect("the call");
    assert!(!is_error(&result), "{}", text(&result));

    let all = received(&receiver, 3).await;
    let types: Vec<&str> = all.iter().map(|e| e["body"]["type"].as_str().unwrap_or("")).collect();
    assert_eq!(types, ["approval.opened", "approval.decided", "approval.closed"]);
    assert!(all.iter().all(|e| e["verified"] == true), "{all:#?}");
    assert_eq!(all[1]["body"]["data"]["approver"], "ann@example.com");
    assert_eq!(all[1]["body"]["data"]["choice"], "approve");
    let ids: BTreeSet<&str> = all.iter().map(|e| e["headers"]["webhook-id"].as_str().unwrap_or("")).collect();
    assert_eq!(ids.len(), 3, "one id per event: {ids:?}");

    close(agent).await;
    let rows = w.ledger_rows().await;
    let delivered = kinds(&rows, "channel_delivered");
    let said: Vec<(&str, &str)> = delivered
        .iter()
        .map(|r| (r["body"]["channel"].as_str().unwrap_or(""), r["body"]["event"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        said,
        [("webhook:ops", "approval.opened"), ("webhook:ops", "approval.decided"), ("webhook:ops", "approval.closed")]
    );
    for (row, entry) in delivered.iter().zip(&all) {
        assert_eq!(row["body"]["delivery"], entry["headers"]["webhook-id"]);
        let source = row["body"]["source_seq"].as_u64().expect("source_seq");
        assert!(rows.iter().any(|r| r["seq"] == source), "the source row is in the ledger");
    }
}

#[ignore = "needs aiosmtpd and standardwebhooks; scripts/test runs it"]
#[tokio::test]
async fn a_failing_webhook_is_retried_under_one_id_and_each_attempt_is_recorded() {
    let receiver = Receiver::start(SECRET);
    let smtp = Smtp::start();
    let w = with_channel(smtp.port, &receiver.url("/hooks/ops?fail=2"));
    let (agent, waiting, mail) = refund_waiting(&w, &smtp).await;

    let tries = received(&receiver, 3).await;
    let ids: BTreeSet<&str> = tries.iter().map(|e| e["headers"]["webhook-id"].as_str().unwrap_or("")).collect();
    assert_eq!(ids.len(), 1, "one delivery, three attempts: {tries:#?}");
    assert!(tries.iter().all(|e| e["verified"] == true && e["body"]["type"] == "approval.opened"));
    let attempts: Vec<u64> = tries.iter().map(|e| e["attempt"].as_u64().unwrap_or(0)).collect();
    assert_eq!(attempts, [1, 2, 3]);

    let (status, page) = decide(&mail.link(), "deny", &[("comment", "not this one")]);
    assert_eq!(status, 200, "{page}");
    let result = waiting.await.expect("the call");
    assert!(is_error(&result), "denied: {}", text(&result));
    close(agent).await;
    let rows = w.ledger_rows().await;
    let failed: Vec<u64> = kinds(&rows, "channel_failed")
        .iter()
        .filter(|r| r["body"]["event"] == "approval.opened")
        .map(|r| r["body"]["attempt"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(failed, [1, 2]);
    let delivered = kinds(&rows, "channel_delivered");
    assert_eq!(delivered[0]["body"]["attempt"], 3);
    assert_eq!(delivered[0]["body"]["status"], 200);
    assert_eq!(delivered[0]["body"]["delivery"], tries[0]["headers"]["webhook-id"]);
}

#[ignore = "needs aiosmtpd and standardwebhooks; scripts/test runs it"]
#[tokio::test]
async fn a_webhook_that_refuses_for_good_is_given_up_shown_in_readyz_and_calls_still_run() {
    let receiver = Receiver::start(SECRET);
    let smtp = Smtp::start();
    let w = with_channel(smtp.port, &receiver.url("/hooks/ops?status=410"));
    let (agent, waiting, mail) = refund_waiting(&w, &smtp).await;
    received(&receiver, 1).await;
    let base = mail.link().split("/a/").next().expect("base").to_string();
    let mut ready = crate::ops::readyz(&base);
    for _ in 0..300 {
        if ready.1["warnings"].to_string().contains("webhook:ops") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready = crate::ops::readyz(&base);
    }
    let (status, body) = ready;
    assert_eq!(status, 200, "a failing channel does not stop calls: {body:#}");
    assert_eq!(body["ready"], true);
    let warning = body["warnings"][0].as_str().unwrap_or("");
    assert!(warning.contains("channel `webhook:ops` failing since") && warning.contains("answered 410"), "{body:#}");

    let (status, page) = decide(&mail.link(), "approve", &[]);
    assert_eq!(status, 200, "{page}");
    assert!(!is_error(&waiting.await.expect("the call")));
    close(agent).await;
    let rows = w.ledger_rows().await;
    let gave_up = kinds(&rows, "channel_gave_up");
    assert_eq!(gave_up[0]["body"]["event"], "approval.opened");
    assert_eq!(gave_up[0]["body"]["attempts"], 1, "a refusal is not retried");
    assert!(kinds(&rows, "channel_failed").is_empty());
}

/// `airlock serve` on `w` with the channel's secret, as a child the test can kill.
async fn killable(w: &World) -> (Agent, tokio::process::Child) {
    use rmcp::ServiceExt as _;
    let mut child = tokio::process::Command::new(crate::support::AIRLOCK)
        .arg("serve")
        .arg("--config")
        .arg(w.config())
        .env("AIRLOCK_LOG", "warn")
        .env(VAR, SECRET)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn airlock serve");
    let io = (
        child.stdout.take().expect("stdout"),
        child.stdin.take().expect("stdin"),
    );
    let client = ().serve(io).await.expect("MCP handshake with airlock");
    (Agent { client }, child)
}

#[ignore = "needs aiosmtpd and standardwebhooks; scripts/test runs it"]
#[tokio::test]
async fn an_event_not_yet_delivered_when_the_gate_is_killed_goes_after_the_restart_under_its_id() {
    let receiver = Receiver::start(SECRET);
    let smtp = Smtp::start();
    let w = with_channel(smtp.port, &receiver.url("/hooks/ops?status=503"));
    let (agent, mut child) = killable(&w).await;
    let agent = Arc::new(agent);
    let a = agent.clone();
    let waiting = tokio::spawn(async move { a.try_call("refund_order", refund()).await });
    let mail = smtp.wait_for("ann@example.com", "refund_order", 1).await;
    let first = received(&receiver, 1).await[0].clone();
    assert_eq!(first["status"], 503, "{first:#}");
    child.kill().await.expect("kill -9 airlock serve");
    let _ = waiting.await;
    drop(agent);
    let before = receiver.entries().len();

    // the receiver is mended; the gate starts again on the same ledger
    let cfg = std::fs::read_to_string(w.config()).expect("config");
    w.write("airlock.toml", &cfg.replace("/hooks/ops?status=503", "/hooks/ops"));
    let (agent, _child) = killable(&w).await;
    let after = received(&receiver, before + 1).await;
    let delivered = after[before..]
        .iter()
        .find(|e| e["status"] == 200)
        .expect("delivered after the restart");
    assert_eq!(delivered["headers"]["webhook-id"], first["headers"]["webhook-id"], "the same delivery");
    assert_eq!(delivered["body"]["type"], "approval.opened");
    assert_eq!(delivered["verified"], true);
    assert_eq!(
        delivered["body"]["data"]["approval_id"],
        crate::smtp::approval_id(&mail.link())
    );
    agent.close().await;
}

#[ignore = "needs standardwebhooks; scripts/test runs it"]
#[tokio::test]
async fn a_held_call_and_its_rejection_reach_the_review_roles_channel() {
    use crate::review::{REVIEWER, held_id};
    let receiver = Receiver::start(SECRET);
    let w = crate::review::world();
    let policy = std::fs::read_to_string(w.path("p/policy.toml")).expect("policy");
    let with = policy.replace(
        "ops      = { emails = [\"ops-approvers@example.com\"] }",
        "ops      = { emails = [\"ops-approvers@example.com\"], channels = [\"webhook:ops\"] }",
    );
    assert_ne!(policy, with, "the ops role names the channel");
    w.write("p/policy.toml", &with);
    let cfg = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!(
        "{cfg}\n[[channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = {:?}\nsecret_env = \"{VAR}\"\n",
        receiver.url("/hooks/ops")
    ));
    let agent = w.agent_with_env(&[(VAR, SECRET)]).await;
    let held = agent.call("echo", json!({"text": "the agent's own words 7781"})).await;
    assert!(is_error(&held), "held: {}", text(&held));
    let id = held_id(&held);

    let created = &received(&receiver, 1).await[0];
    assert_eq!(created["verified"], true, "{created:#}");
    let data = &created["body"]["data"];
    assert_eq!(created["body"]["type"], "held.created", "{created:#}");
    assert_eq!((data["tool"].as_str(), data["call_id"].as_str()), (Some("echo"), Some(id.as_str())));
    assert_eq!(data["roles"], json!(["ops"]));
    assert!(!created["body"].to_string().contains("7781"), "never the arguments: {created:#}");

    let out = w.airlock(&["quarantine", "reject", &id, "--reason", "not now", "--as", REVIEWER]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rejected = &received(&receiver, 2).await[1];
    assert_eq!(rejected["body"]["type"], "held.rejected", "{rejected:#}");
    assert_eq!(rejected["body"]["data"]["by"], REVIEWER);
    assert_eq!(rejected["body"]["data"]["reason"], "not now");
    assert_eq!(rejected["verified"], true);
    agent.close().await;
}

/// The approvals world with role `finance` announcing on Slack and Teams, both at the receiver
/// (which checks Slack's payload with Slack's SDK and the card against the Adaptive Card schema).
fn with_chats(smtp_port: u16, receiver: &Receiver) -> World {
    finance_with(
        smtp_port,
        r#"["slack:finance", "teams:finance"]"#,
        &format!(
            "[[channel]]\nname = \"finance\"\nkind = \"slack\"\nurl_env = \"AIRLOCK_TEST_SLACK_URL\"\n\n\
             [[channel]]\nname = \"finance\"\nkind = \"teams\"\nurl = {:?}\n",
            receiver.url("/teams/finance")
        ),
    )
}

/// The entries that reached `path`, in order.
fn at<'a>(entries: &'a [Value], path: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["path"] == path).collect()
}

#[ignore = "needs aiosmtpd, standardwebhooks and slack-sdk; scripts/test runs it"]
#[tokio::test]
async fn slack_and_teams_get_valid_messages_with_each_approvers_own_button_and_the_decision_follows() {
    let receiver = Receiver::start(SECRET);
    let smtp = Smtp::start();
    let w = with_chats(smtp.port, &receiver);
    let slack_url = receiver.url("/slack/finance");
    let agent = Arc::new(
        w.agent_with_env(&[("AIRLOCK_TEST_SLACK_URL", slack_url.as_str())])
            .await,
    );
    let a = agent.clone();
    let waiting = tokio::spawn(async move { a.call("refund_order", refund()).await });
    let ann = smtp.wait_for("ann@example.com", "refund_order", 1).await;
    let bob = smtp.wait_for("bob@example.com", "refund_order", 1).await;

    let first = received(&receiver, 2).await;
    let slack = at(&first, "/slack/finance")[0]["body"].clone();
    let teams = at(&first, "/teams/finance")[0]["body"].clone();
    for e in &first {
        assert_eq!(e["schema_errors"], json!([]), "a valid {} payload: {e:#}", e["path"]);
        assert_eq!(e["status"], 200);
    }
    let blocks = slack["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert!(blocks[0]["text"]["text"].as_str().unwrap_or("").starts_with("Approve? Refund $5.00 on order A-1001"));
    let buttons = &blocks.last().expect("actions")["elements"];
    let urls: Vec<&str> = buttons.as_array().expect("buttons").iter().filter_map(|b| b["url"].as_str()).collect();
    assert_eq!(urls, [ann.link(), bob.link()], "each approver's button is their own link");
    let card = &teams["attachments"][0]["content"];
    let actions: Vec<&str> = card["actions"].as_array().expect("actions").iter().filter_map(|b| b["url"].as_str()).collect();
    assert_eq!(actions, [ann.link(), bob.link()]);
    assert!(!slack.to_string().contains("damaged parcel") && !teams.to_string().contains("damaged parcel"), "never the arguments");

    let (status, page) = decide(&ann.link(), "approve", &[]);
    assert_eq!(status, 200, "{page}");
    assert!(!is_error(&waiting.await.expect("the call")));
    let all = received(&receiver, 6).await;
    let slack_titles: Vec<String> = at(&all, "/slack/finance")
        .iter()
        .map(|e| e["body"]["blocks"][0]["text"]["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(slack_titles[1], "Approved by ann@example.com", "{slack_titles:?}");
    assert_eq!(slack_titles[2], "Approval closed");
    let teams_titles: Vec<&str> = at(&all, "/teams/finance")
        .iter()
        .map(|e| e["body"]["attachments"][0]["content"]["body"][0]["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(teams_titles[1..], ["Approved by ann@example.com", "Approval closed"]);
    assert!(all.iter().all(|e| e["schema_errors"] == json!([])), "{all:#?}");
    close(agent).await;
}

#[ignore = "needs aiosmtpd and standardwebhooks; scripts/test runs it"]
#[tokio::test]
async fn a_policy_edit_that_takes_the_channel_from_the_role_stops_the_retries_of_its_waiting_event() {
    let receiver = Receiver::start(SECRET);
    let smtp = Smtp::start();
    let w = with_channel(smtp.port, &receiver.url("/hooks/ops?status=503"));
    let (agent, waiting, mail) = refund_waiting(&w, &smtp).await;
    received(&receiver, 1).await;

    // the operator takes the failing channel from the role; the edit is live
    let policy = std::fs::read_to_string(w.path("p/policy.toml")).expect("policy");
    let edited = policy
        .replace("version = \"test-approvals\"", "version = \"test-approvals.2\"")
        .replace(", channels = [\"webhook:ops\"]", "");
    assert_ne!(policy, edited);
    w.write("p/policy.toml", &edited);
    // the policy directory is looked at every second
    tokio::time::sleep(Duration::from_secs(3)).await;

    // no role names the channel now: its waiting event is not posted again (retries were at
    // 1, 2, 4, 8 s; 12 s cover at least one more)
    let before = receiver.entries().len();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after = receiver.entries();
    assert_eq!(after.len(), before, "retried after the channel was taken from the role: {after:#?}");

    let (status, page) = decide(&mail.link(), "approve", &[]);
    assert_eq!(status, 200, "{page}");
    assert!(!is_error(&waiting.await.expect("the call")));
    close(agent).await;
    let rows = w.ledger_rows().await;
    assert_eq!(kinds(&rows, "policy_loaded").len(), 1, "the edit was live");
    let gave_up = kinds(&rows, "channel_gave_up");
    assert_eq!(gave_up.len(), 1, "the waiting event is given up on, on the record: {gave_up:#?}");
    assert_eq!(gave_up[0]["body"]["event"], "approval.opened");
    assert!(kinds(&rows, "channel_delivered").is_empty());
}
