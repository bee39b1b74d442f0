//! Revealing redacted values to the one who decides: a role with `reveal_redacted = true` (it
//! signs in with the real `oidc-provider`) sees the card on the approval page once signed in —
//! never in mail, never before signing in, never as someone else — and the tool server gets it
//! whole, while the ledger keeps only the marker.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::signin::{SignInWorld, form, pairs, sign_in_world_as};
use crate::support::signin::{Browser, SECRET_ENV, outbox_links};
use crate::support::{World, is_error, outbox_mails, text};

const CARD: &str = "4111111111111111";
/// A long fragment of it: nothing but the signed-in approver's page may carry even this much.
const FRAGMENT: &str = "41111111";

fn shows_none(what: &str, text: &str) {
    assert!(!text.contains(FRAGMENT), "{what} shows the card: {text}");
}

/// Every mail in the world's `.eml` outbox, quoted-printable soft breaks and `=3D` undone.
fn outbox(w: &World) -> String {
    outbox_mails(w).join("\n")
}

#[ignore = "needs npm oidc-provider; scripts/test runs it"]
#[tokio::test]
async fn a_role_that_may_reveal_sees_the_card_only_once_signed_in_and_never_in_mail_or_ledger() {
    let SignInWorld {
        w,
        provider: _provider,
        ..
    } = sign_in_world_as(", sign_in = \"oidc\", reveal_redacted = true");
    let check = w.airlock(&["check", "--offline"]);
    assert!(check.status.success(), "{check:?}");
    let agent = Arc::new(w.agent_with_env(&[SECRET_ENV]).await);
    let call = {
        let a = agent.clone();
        let args = json!({"order_id": "A-1001", "amount_cents": 4200, "reason": "card replaced", "card_number": CARD});
        tokio::spawn(async move { a.call("refund_order", args).await })
    };
    let link = outbox_links(&w, "ann@example.com", 1).await.remove(0);

    // the mail: the marker, never the card
    let mail = outbox(&w);
    assert!(mail.contains("card_number: [redacted "), "{mail}");
    shows_none("the mail", &mail);

    // before signing in: only the way to the provider
    let mut stranger = Browser::new();
    let first = stranger.get(&link);
    assert_eq!(first.status, 303, "{}", first.body);
    shows_none("the redirect", &format!("{first:?}"));

    // signed in as someone else (eve): refused, no form, no card
    let login = stranger.follow(first, None);
    let eve = stranger.log_in(&login, "eve", None);
    assert_eq!(eve.status, 403, "{}", eve.body);
    assert!(
        !eve.body.contains("name=\"nonce\""),
        "no form: {}",
        eve.body
    );
    shows_none("eve's page", &eve.body);

    // the approver, signed in through the provider: the card, whole, in the arguments shown;
    // the edit form keeps the marker (what an edit submits never carries the value back)
    let mut browser = Browser::new();
    let login = browser.go(&link);
    let page = browser.log_in(&login, "ann", None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url, link, "back on the approval page");
    assert!(
        page.body.contains("Signed in as ann@example.com"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(CARD),
        "the approver sees the card: {}",
        page.body
    );
    let edit = &page.body[page.body.find("id=\"arguments\"").expect("the edit form")..];
    let edit = &edit[..edit.find("</textarea>").expect("its end")];
    assert!(edit.contains("$redacted"), "{edit}");
    shows_none("the edit form", edit);

    // approved from that page: the tool server gets the card whole
    let f = form(&page.body, "approve", &[]);
    let done = browser.post(&link, &pairs(&f));
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Approved"), "{}", done.body);
    shows_none("the answer page", &done.body);
    let result = call.await.expect("agent task");
    assert!(!is_error(&result), "{}", text(&result));
    assert_eq!(text(&result), "refunded 4200 cents on A-1001");
    shows_none("the agent's result", &text(&result));
    let executed = std::fs::read_to_string(w.path("executed.jsonl")).expect("executed log");
    let ran: Vec<Value> = executed
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(ran.len(), 1, "{executed}");
    assert_eq!(ran[0]["arguments"]["card_number"], CARD);

    // once it ran, the seal is destroyed: the approver's page shows the marker again
    let after = browser.get(&link);
    assert_eq!(after.status, 200, "{}", after.body);
    assert!(after.body.contains("[redacted "), "{}", after.body);
    shows_none("the page after the run", &after.body);
    if let Ok(a) = Arc::try_unwrap(agent) {
        a.close().await;
    }

    // the record: the marker, the sign-in, the seal's end — never the card
    let rows = w.ledger_rows().await;
    shows_none(
        "the JSONL export",
        &rows.iter().map(Value::to_string).collect::<String>(),
    );
    let proposal = rows
        .iter()
        .find(|r| r["kind"] == "proposal")
        .expect("proposal");
    assert_eq!(proposal["body"]["redacted"], json!(["/card_number"]));
    assert!(
        proposal["body"]["arguments"]["card_number"]["$redacted"].is_object(),
        "{proposal}"
    );
    let decision = rows
        .iter()
        .find(|r| r["kind"] == "decision")
        .expect("decision");
    assert_eq!(decision["body"]["auth"]["via"], "oidc", "{decision}");
    assert!(
        rows.iter().any(|r| r["kind"] == "sealed_destroyed"),
        "the seal's end is recorded"
    );
    let csv = w.airlock(&["ledger", "export", "--format", "csv"]);
    assert!(csv.status.success(), "{csv:?}");
    shows_none("the CSV export", &String::from_utf8_lossy(&csv.stdout));
    if w.database.is_none() {
        let file = std::fs::read(w.path("ledger.redb")).expect("ledger file");
        shows_none("the ledger file", &String::from_utf8_lossy(&file));
    }
    shows_none("the outbox at the end", &outbox(&w));
}
