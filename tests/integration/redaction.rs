//! Redaction that keeps the proof: a manifest's `redact` fields never reach mail, pages, the
//! ledger, exports or logs — a marker with a keyed digest stands there, the chain covers a salted
//! commitment — yet the tool server gets the value whole, also after a `kill -9`, and the sealed
//! value is destroyed once the call has run.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::smtp::{Smtp, approval_id, decide, get};
use crate::support::{REPO, World, is_error, text};

const CARD: &str = "4111111111111111";
/// A long fragment of it: nothing shown may carry even this much.
const FRAGMENT: &str = "41111111";
const APPROVE_30M: &str = "{ path = \"approve\", role = \"finance\", timeout = \"30m\" }";

fn refund() -> Value {
    json!({"order_id": "A-1001", "amount_cents": 4200, "reason": "card replaced", "card_number": CARD})
}

/// Every approval state as stored (the gate stopped), as text.
fn approval_states(w: &World) -> Vec<String> {
    let cfg = airlock::config::load_config(&w.config()).expect("config");
    let ledger = airlock::ledger::Ledger::open_at(&cfg.ledger, None).expect("ledger");
    let states = ledger.approvals().expect("approvals");
    states
        .into_iter()
        .map(|(_, bytes)| String::from_utf8_lossy(&bytes).into_owned())
        .collect()
}

/// A gate (logging to `gate1.log`) asked for the refund, which waits for ann's approval; then the
/// gate is killed (`kill -9`) with the approval open. Returns ann's link.
async fn refund_waits_then_gate_dies(w: &World, smtp: &Smtp) -> String {
    let (agent, mut child) = w.logged_agent("gate1.log").await;
    let agent = Arc::new(agent);
    let call = {
        let a = agent.clone();
        tokio::spawn(async move { a.try_call("refund_order", refund()).await })
    };
    let link = smtp.wait_for("ann@example.com", "refund_order", 1).await.link();
    child.kill().await.expect("kill -9");
    assert!(call.await.expect("agent task").is_err());
    link
}

fn shows_none(what: &str, text: &str) {
    assert!(!text.contains(FRAGMENT), "{what} shows the card: {text}");
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn a_redacted_card_is_shown_nowhere_runs_whole_after_a_crash_and_its_seal_is_destroyed() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let (agent, mut child) = w.logged_agent("gate1.log").await;
    let agent = Arc::new(agent);
    let call = {
        let a = agent.clone();
        tokio::spawn(async move { a.try_call("refund_order", refund()).await })
    };
    // the approver's mail and page: a marker, never the card
    let mail = smtp.wait_for("ann@example.com", "refund_order", 1).await;
    shows_none("the mail", &format!("{}\n{}", mail.subject, mail.body));
    assert!(mail.body.contains("| card_number: [redacted "), "{}", mail.body);
    let link = mail.link();
    let (status, page) = get(&link);
    assert_eq!(status, 200);
    shows_none("the page", &page);
    assert!(page.contains("[redacted "), "{page}");

    // the gate dies while the approval waits; the value is sealed in its state, not in clear
    child.kill().await.expect("kill -9");
    assert!(call.await.expect("agent task").is_err());
    drop(agent);
    let states = approval_states(&w);
    assert_eq!(states.len(), 1);
    assert!(states[0].contains("\"sealed\""), "{}", states[0]);
    shows_none("the stored state", &states[0]);

    // a new gate; the approver approves; the tool server gets the card whole
    let (agent2, _child2) = w.logged_agent("gate2.log").await;
    assert_eq!(decide(&link, "approve", &[]).0, 200);
    let answer = agent2.status_until(&approval_id(&link), "refunded").await;
    assert!(answer.contains("refunded 4200 cents on A-1001"), "{answer}");
    let executed = std::fs::read_to_string(w.path("executed.jsonl")).expect("executed log");
    assert!(executed.contains(CARD), "the tool server got the card as sent: {executed}");
    agent2.close().await;

    // the record: markers and the destruction, never the card; the chain verifies
    let rows = w.ledger_rows().await;
    let all: String = rows.iter().map(Value::to_string).collect();
    shows_none("the JSONL export", &all);
    let proposal = rows
        .iter()
        .find(|r| r["kind"] == "proposal" && r["body"]["tool"] == "refund_order")
        .expect("proposal");
    assert_eq!(proposal["body"]["redacted"], json!(["/card_number"]));
    let marker = &proposal["body"]["arguments"]["card_number"]["$redacted"];
    assert_eq!(marker["digest"].as_str().map(str::len), Some(64), "{proposal}");
    assert_eq!(marker["commitment"].as_str().map(str::len), Some(64));
    assert!(rows.iter().any(|r| r["kind"] == "sealed_destroyed"), "the seal's end is recorded");
    for args in [
        vec!["ledger", "export", "--format", "csv"],
        vec!["ledger", "show", proposal["call_id"].as_str().expect("call id")],
    ] {
        let out = w.airlock(&args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        shows_none(&args.join(" "), &String::from_utf8_lossy(&out.stdout));
    }
    let verify = w.airlock(&["ledger", "verify"]);
    assert!(verify.status.success(), "{verify:?}");
    // an auditor given the value and its salt proves it was the one used; another value fails
    let call_id = proposal["call_id"].as_str().expect("call id");
    let out = w.airlock(&["ledger", "prove", call_id, "/card_number", "--print-salt"]);
    let salt = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(salt.len(), 64, "{out:?}");
    let quoted = format!("\"{CARD}\"");
    let out = w.airlock(&["ledger", "prove", call_id, "/card_number", &quoted, "--salt", &salt]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("(proposal) commits to this value"), "{out:?}");
    let out = w.airlock(&["ledger", "prove", call_id, "/card_number", "\"4111111111111112\""]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // the sealed value is gone from the state, and no byte of the ledger holds the card
    let states = approval_states(&w);
    assert!(!states[0].contains("\"sealed\""), "{}", states[0]);
    if w.database.is_none() {
        let file = std::fs::read(w.path("ledger.redb")).expect("ledger file");
        assert!(!String::from_utf8_lossy(&file).contains(FRAGMENT), "the ledger file holds the card");
    }
    for log in ["gate1.log", "gate2.log"] {
        let text = std::fs::read_to_string(w.path(log)).expect("log");
        assert!(text.contains(" INFO "), "{log} holds the gate's log (AIRLOCK_LOG=debug)");
        shows_none(log, &text);
    }
}

#[tokio::test]
async fn a_refused_call_records_only_the_marker_and_keeps_nothing_sealed() {
    let w = World::demo();
    let manifests = std::fs::read_to_string(format!("{REPO}/tool-manifests/demo_shop.toml")).expect("manifests");
    let delete = "name   = \"delete_customer\"\n";
    assert!(manifests.contains(delete));
    w.write("m/shop.toml", &manifests.replace(delete, &format!("{delete}redact = [\"/email\"]\n")));
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&config.replace(&format!("manifests = {:?}", format!("{REPO}/tool-manifests")), "manifests = \"m\""));
    let agent = w.agent().await;
    let r = agent.call("delete_customer", json!({"email": "carol.secret@example.com"})).await;
    assert!(is_error(&r), "{}", text(&r));
    agent.close().await;
    let rows = w.ledger_rows().await;
    let all: String = rows.iter().map(Value::to_string).collect();
    assert!(!all.contains("carol.secret"), "{all}");
    assert!(all.contains("$redacted"), "{all}");
    assert!(!rows.iter().any(|r| r["kind"] == "sealed_destroyed"), "nothing was sealed");
    // explain and map say which fields are redacted
    let out = w.airlock(&["explain", "--tool", "delete_customer"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("redacted: /email"), "{out:?}");
    let out = w.airlock(&["map", "--json"]);
    let map: Value = serde_json::from_slice(&out.stdout).expect("map json");
    let row = map["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|r| r["tool"] == "delete_customer"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["redact"], json!(["/email"]), "{map}");
}

#[test]
fn a_redact_pointer_the_tool_does_not_have_fails_check_with_file_line_and_key() {
    let w = World::demo();
    let manifests = std::fs::read_to_string(format!("{REPO}/tool-manifests/demo_shop.toml")).expect("manifests");
    let wrong = manifests.replace("redact = [\"/card_number\"]", "redact = [\"/card_numbr\"]");
    assert_ne!(wrong, manifests);
    w.write("m/shop.toml", &wrong);
    let line = wrong.lines().position(|l| l.contains("/card_numbr")).expect("line") + 1;
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&config.replace(&format!("manifests = {:?}", format!("{REPO}/tool-manifests")), "manifests = \"m\""));
    let out = w.airlock(&["check"]);
    assert!(!out.status.success(), "{out:?}");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains(&format!("shop.toml:{line}")), "{said}");
    assert!(said.contains("tool shop/refund_order redact[0]"), "{said}");
    assert!(said.contains("/card_numbr"), "{said}");
}

/// The edit form's arguments as the page holds them (markers included).
fn form_arguments(page: &str) -> Value {
    let start = page.find("id=\"arguments\"").expect("the edit form");
    let text = &page[start..];
    let text = &text[text.find('>').expect("textarea") + 1..text.find("</textarea>").expect("end")];
    let text = text
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn an_approver_may_keep_a_redacted_value_by_its_marker_or_replace_it_and_the_record_says_which() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let agent = Arc::new(w.agent().await);
    let new_card = "5500005555555559";
    for (n, keep) in [(1, true), (2, false)] {
        // two different calls (an identical one would be answered by the first)
        let mut asked = refund();
        asked["amount_cents"] = json!(4200 + n);
        let call = {
            let a = agent.clone();
            tokio::spawn(async move { a.call("refund_order", asked).await })
        };
        let link = smtp.wait_for("ann@example.com", "refund_order", n).await.link();
        let (_, page) = get(&link);
        let mut args = form_arguments(&page);
        assert!(args["card_number"].get("$redacted").is_some(), "{args}");
        args["amount_cents"] = json!(1500);
        if !keep {
            args["card_number"] = json!(new_card);
        }
        let (status, page) = decide(&link, "modify", &[("arguments", &args.to_string())]);
        assert_eq!(status, 200, "{page}");
        let result = call.await.expect("agent task");
        assert_eq!(text(&result), "refunded 1500 cents on A-1001");
    }
    if let Ok(a) = Arc::try_unwrap(agent) {
        a.close().await;
    }
    // the first ran with the agent's card, the second with the approver's
    let executed = std::fs::read_to_string(w.path("executed.jsonl")).expect("log");
    let ran: Vec<Value> = executed.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(ran[0]["arguments"]["card_number"], CARD);
    assert_eq!(ran[1]["arguments"]["card_number"], new_card);
    let rows = w.ledger_rows().await;
    let all: String = rows.iter().map(Value::to_string).collect();
    shows_none("the ledger", &all);
    assert!(!all.contains("55000055"), "nor the approver's card");
    let modifies: Vec<&Value> = rows
        .iter()
        .filter(|r| r["kind"] == "decision" && r["body"]["choice"] == "modify")
        .collect();
    assert_eq!(modifies[0]["body"]["redacted"], json!({"kept": ["/card_number"], "replaced": []}));
    assert_eq!(modifies[1]["body"]["redacted"], json!({"kept": [], "replaced": ["/card_number"]}));
    // the envelope that ran says which, as the decision does
    let envelopes: Vec<&Value> = rows
        .iter()
        .filter(|r| r["kind"] == "envelope" && r["body"]["envelope"]["stage"] == 1)
        .collect();
    assert_eq!(envelopes.len(), 2, "{envelopes:?}");
    assert_eq!(envelopes[0]["body"]["envelope"]["redacted"], modifies[0]["body"]["redacted"]);
    assert_eq!(envelopes[1]["body"]["envelope"]["redacted"], modifies[1]["body"]["redacted"]);
    assert_eq!(rows.iter().filter(|r| r["kind"] == "sealed_destroyed").count(), 2);
}

#[tokio::test]
async fn a_held_call_keeps_its_redacted_value_sealed_until_released_then_runs_it_whole() {
    let w = crate::review::world();
    let policy = std::fs::read_to_string(w.path("p/policy.toml")).expect("policy");
    let held_by_condition = policy
        .lines()
        .map(|l| match l.starts_with("financial ") {
            true => "financial = { path = \"conditional\", role = \"finance\", on_fail = \"quarantine\", conditions = [{ pointer = \"/amount_cents\", max = 1000 }] }",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(policy, held_by_condition);
    w.write("p/policy.toml", &held_by_condition);
    let agent = w.agent().await;
    let r = agent.call("refund_order", refund()).await;
    assert!(is_error(&r), "{}", text(&r));
    let id = crate::review::held_id(&r);
    let listed = w.airlock(&["quarantine", "list", "--json", "--as", crate::review::REVIEWER]);
    shows_none("the review list", &String::from_utf8_lossy(&listed.stdout));
    let out = w.airlock(&["quarantine", "release", &id, "--as", crate::review::REVIEWER]);
    assert!(out.status.success(), "{out:?}");
    let executed = std::fs::read_to_string(w.path("executed.jsonl")).expect("executed log");
    assert!(executed.contains(CARD), "released, it ran with the card as sent: {executed}");
    agent.close().await;
    let rows = w.ledger_rows().await;
    let all: String = rows.iter().map(Value::to_string).collect();
    shows_none("the ledger", &all);
    let destroyed: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "sealed_destroyed").collect();
    assert_eq!(destroyed.len(), 1, "{all}");
    assert_eq!(destroyed[0]["body"]["why"], "released");
    let verify = w.airlock(&["ledger", "verify"]);
    assert!(verify.status.success(), "{verify:?}");
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn a_waiting_value_moves_along_the_key_chain_and_a_destroyed_one_cannot_be_opened_from_disk() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    // epochs of a second: the chain steps while the test watches
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write("airlock.toml", &config.replace("max_wait = \"2m\"\n", "max_wait = \"2m\"\nseal_ratchet = \"1s\"\n"));
    let link = refund_waits_then_gate_dies(&w, &smtp).await;
    // the value as first sealed, and the call it belongs to
    let state: Value = serde_json::from_str(&approval_states(&w)[0]).expect("state");
    let (first, call_id) = (state["sealed"].as_str().expect("sealed").to_string(), state["call_id"].as_str().expect("id").to_string());
    assert!(first.starts_with('e'), "sealed under an epoch of the chain: {first}");

    // a new gate steps the chain a few times while the approval waits, then it runs whole
    let sealed_epoch: u64 = first[1..first.find('.').expect("dot")].parse().expect("epoch");
    let (agent2, mut child2) = w.logged_agent("gate2.log").await;
    let file_epoch = || -> u64 {
        let chain = std::fs::read_to_string(w.path("airlock.seal.chain")).expect("chain file");
        // `v1 PERIOD EPOCH KEY`
        chain.split(' ').nth(2).and_then(|e| e.parse().ok()).expect("epoch")
    };
    let moved = || {
        let log = std::fs::read_to_string(w.path("gate2.log")).unwrap_or_default();
        log.contains("sealed values moved onto the key chain")
    };
    for _ in 0..300 {
        if moved() && file_epoch() > sealed_epoch {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(decide(&link, "approve", &[]).0, 200);
    let answer = agent2.status_until(&approval_id(&link), "refunded").await;
    assert!(answer.contains("refunded 4200 cents on A-1001"), "{answer}");
    let executed = std::fs::read_to_string(w.path("executed.jsonl")).expect("executed log");
    assert!(executed.contains(CARD), "the re-sealed value opened whole: {executed}");
    agent2.close().await;
    child2.kill().await.expect("stop");

    // the chain file has moved past the epoch the value was first sealed in: the keys on disk
    // cannot open that ciphertext, wherever a copy of it lingers
    assert!(
        file_epoch() > sealed_epoch,
        "the chain file moved past epoch {sealed_epoch}: {}",
        std::fs::read_to_string(w.path("gate2.log")).unwrap_or_default()
    );
    assert!(moved(), "the waiting value was sealed again");
    let on_disk = airlock::seal::Sealer::load_or_create(&w.path("airlock.seal.key"), std::time::Duration::from_secs(1)).expect("keys");
    let opened = on_disk.open(&call_id, &first);
    assert!(matches!(opened, Err(airlock::seal::SealError::Shredded(_))), "{opened:?}");
    let rows = w.ledger_rows().await;
    assert!(rows.iter().any(|r| r["kind"] == "sealed_destroyed"), "the seal's end is recorded");
}

#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn a_gate_that_cannot_open_a_sealed_value_refuses_to_approve_it_and_the_approval_waits() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, APPROVE_30M);
    let link = refund_waits_then_gate_dies(&w, &smtp).await;
    // the chain file lost (a replica started without a copy): a new gate makes its own
    std::fs::remove_file(w.path("airlock.seal.chain")).expect("chain file");
    let (agent2, mut child2) = w.logged_agent("gate2.log").await;
    let (status, page) = decide(&link, "approve", &[]);
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("cannot open the call&#39;s redacted values") || page.contains("cannot open the call's redacted values"), "{page}");
    assert!(page.contains("nothing was decided"), "{page}");
    // the approval still waits; the operator was told at start
    let (status, page) = get(&link);
    assert_eq!(status, 200);
    assert!(page.contains("Approve"), "still waiting: {page}");
    let log = std::fs::read_to_string(w.path("gate2.log")).expect("log");
    assert!(log.contains("sealed values cannot be opened by this gate"), "{log}");
    agent2.close().await;
    child2.kill().await.expect("stop");
    // nothing ran, nothing was decided or destroyed, the value is still sealed in the state
    let executed = std::fs::read_to_string(w.path("executed.jsonl")).unwrap_or_default();
    assert!(!executed.contains("refund"), "{executed}");
    let rows = w.ledger_rows().await;
    assert!(!rows.iter().any(|r| r["kind"] == "decision"), "no decision recorded");
    assert!(!rows.iter().any(|r| r["kind"] == "sealed_destroyed"));
    assert!(approval_states(&w)[0].contains("\"sealed\""));
}
