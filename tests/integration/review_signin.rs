//! The review side at the approvals' bar: a held call whose review role signs in is released
//! only by its reviewer signed in with the company's provider (the real `oidc-provider`); a
//! paused scope whose role needs a TOTP code resumes only with one; the CLI never decides what
//! needs either (it prints the person's own page, and the gate refuses its token anyway); and a
//! decision records the hash of what its reviewer saw, refusing a stale one.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::review::held_id;
use crate::smtp::{free_port, get, post};
use crate::support::signin::{Browser, Provider, SECRET_ENV, outbox_links};
use crate::support::{World, is_error, seen_in, text};

/// The review world (the demo shop, `echo` described by no manifest, [review] role = ops) with
/// ops = ann, who signs in with the provider, and its pages on `web_port`.
fn signing_in_world(web_port: u16, provider: &Provider) -> World {
    let w = crate::review::world();
    let policy = std::fs::read_to_string(w.path("p/policy.toml")).expect("policy");
    let ops = "ops      = { emails = [\"ops-approvers@example.com\"] }";
    assert!(policy.contains(ops), "{policy}");
    w.write(
        "p/policy.toml",
        &policy.replace(
            ops,
            "ops      = { emails = [\"ann@example.com\"], sign_in = \"oidc\" }",
        ),
    );
    let config = std::fs::read_to_string(w.path("airlock.toml")).expect("config");
    let config = config.replace("127.0.0.1:0", &format!("127.0.0.1:{web_port}"));
    w.write(
        "airlock.toml",
        &format!(
            "{config}\n[sign_in]\nissuer = {:?}\nclient_id = \"airlock\"\nclient_secret_env = {:?}\n",
            provider.issuer, SECRET_ENV.0
        ),
    );
    w
}

/// The personal review link the CLI prints for `email`.
fn review_link(w: &World, email: &str) -> String {
    let out = w.airlock(&["quarantine", "list", "--json", "--as", email]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v["review_url"].as_str().expect("review url").to_string()
}

fn rows_of<'a>(rows: &'a [Value], kind: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["kind"] == kind).collect()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[ignore = "needs npm oidc-provider; scripts/test runs it"]
#[tokio::test]
async fn a_held_call_whose_review_role_signs_in_is_released_only_by_its_reviewer_signed_in() {
    let web_port = free_port();
    let provider = Provider::start(&format!("http://127.0.0.1:{web_port}/signin/callback"));
    let w = signing_in_world(web_port, &provider);
    let agent = Arc::new(w.agent_with_env(&[SECRET_ENV]).await);
    let r = agent.call("echo", json!({"text": "signed"})).await;
    assert!(is_error(&r), "held: {}", text(&r));
    let id = held_id(&r);
    let link = review_link(&w, "ann@example.com");

    // The CLI does not decide for a role that signs in: it prints ann's own page, and fails.
    let out = w.airlock(&["quarantine", "release", &id, "--as", "ann@example.com"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("/review/"), "the personal page: {}", stdout(&out));
    assert!(
        stderr(&out).contains("signing in with the company account")
            && stderr(&out).contains("nothing was decided"),
        "{}",
        stderr(&out)
    );
    // The personal link leads to the provider first.
    let mut ann = Browser::new();
    let first = ann.get(&link);
    assert_eq!(first.status, 303, "{}", first.body);
    let to = first.location.clone().expect("a redirect");
    assert!(to.starts_with(&format!("{}/auth?", provider.issuer)), "{to}");
    // what the page shows is not readable around it either: the JSON state and the stats
    for behind in ["state", "stats"] {
        let other = Browser::new().get(&format!("{link}/{behind}"));
        assert_eq!(other.status, 303, "/{behind} without signing in: {}", other.body);
    }

    // Someone else signed in on ann's link: refused, recorded, no page.
    let mut eve = Browser::new();
    let login = eve.go(&link);
    let refused = eve.log_in(&login, "eve", None);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("but the link is for ann@example.com"), "{}", refused.body);
    assert_eq!(eve.get(&link).status, 303, "still not signed in");

    // Ann signs in and sees the page; the session covers this link's page only.
    let login = ann.follow(first, None);
    let page = ann.log_in(&login, "ann", None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Signed in as ann@example.com"), "{}", page.body);
    let token = link.rsplit('/').next().expect("token");
    let session = ann
        .hops
        .iter()
        .flat_map(|h| h.set_cookies.iter())
        .find(|c| c.starts_with("airlock_session="))
        .expect("a session cookie")
        .clone();
    assert!(session.contains(&format!("Path=/review/{token}")) && session.contains("HttpOnly"), "{session}");
    let seen = seen_in(&page.body, &id);

    // and the gate refuses a CLI token for it whatever the CLI does
    let key = airlock::approval::link::LinkKey::load_or_create(&w.path("airlock.key")).expect("key");
    let now = airlock::instant::now();
    let cli = airlock::reviewer::Reviewer::new("ann@example.com", "cli", Some("ops".into()), now, airlock::reviewer::CLI_LIFETIME);
    let base = link.split("/review/").next().expect("base").to_string();
    let (status, body) = post(
        &format!("{base}/review/{}/held/{id}", cli.token(&key)),
        &[("action", "release"), ("seen", seen.as_str())],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("which a command line cannot give"), "{body}");

    // The same form without the session (another browser) is refused.
    let release = [("action", "release"), ("seen", seen.as_str())];
    let (status, body) = post(&format!("{link}/held/{id}"), &release);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Sign in first") || body.contains("not signed in as ann@example.com"), "{body}");
    assert!(w.executed("executed.jsonl").is_empty(), "nothing ran");

    let done = ann.post(&format!("{link}/held/{id}"), &release);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Released"), "{}", done.body);
    assert_eq!(w.executed("executed.jsonl"), ["echo"]);
    if let Ok(a) = Arc::try_unwrap(agent) {
        a.close().await;
    }

    let rows = w.ledger_rows().await;
    let released = rows_of(&rows, "held_released");
    assert_eq!(released.len(), 1);
    let body = &released[0]["body"];
    assert_eq!(body["by"], "ann@example.com");
    assert_eq!(
        body["auth"],
        json!({"via": "oidc", "os_user": null, "second_factor": null, "subject": "ann", "issuer": provider.issuer})
    );
    assert_eq!(body["seen_sha256"], seen.as_str());
    assert_eq!(body["seen_of"], "page");
    let refused: Vec<String> = rows_of(&rows, "decision_refused")
        .iter()
        .map(|r| format!("{} {}", r["body"]["attempt"], r["body"]["reason"]))
        .collect();
    assert_eq!(refused.len(), 3, "the CLI token, eve's sign-in, the form without a session: {refused:?}");
    assert!(refused.iter().any(|r| r.contains("signed in as eve@example.com")), "{refused:?}");
}

#[tokio::test]
async fn a_release_whose_seen_hash_is_stale_is_refused_and_the_cli_records_the_json_it_saw() {
    let w = crate::review::world();
    let agent = w.agent().await;
    let id = held_id(&agent.call("echo", json!({"text": "looked at"})).await);
    let link = review_link(&w, crate::review::REVIEWER);
    let (status, page) = get(&link);
    assert_eq!(status, 200);
    let seen = seen_in(&page, &id);
    assert_eq!(seen.len(), 64, "a SHA-256: {seen}");
    // what another page showed (another call's block, or an edited one) is not what is held
    // another hash: the last hex digit changed (never to itself)
    let last = if seen.ends_with('0') { '1' } else { '0' };
    let stale = format!("{}{last}", &seen[..63]);
    for wrong in [stale.as_str(), ""] {
        let (status, body) = post(&format!("{link}/held/{id}"), &[("action", "release"), ("seen", wrong)]);
        assert!(status == 409 || status == 400, "{status} {body}");
        assert!(body.contains("changed since you looked") || body.contains("does not say what you saw"), "{body}");
    }
    let (status, body) = post(
        &format!("{link}/held/{id}"),
        &[("action", "release"), ("seen_json", &"0".repeat(64))],
    );
    assert_eq!(status, 409, "{body}");
    assert!(w.executed("executed.jsonl").is_empty(), "nothing ran");

    // the CLI sends the hash of the call's JSON as it fetched it
    let out = w.airlock(&["quarantine", "release", &id, "--as", crate::review::REVIEWER]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.executed("executed.jsonl"), ["echo"]);
    agent.close().await;
    let rows = w.ledger_rows().await;
    let released = rows_of(&rows, "held_released");
    assert_eq!(released.len(), 1);
    assert_eq!(released[0]["body"]["seen_of"], "json");
    assert_eq!(released[0]["body"]["seen_sha256"].as_str().map(str::len), Some(64));
    assert_ne!(released[0]["body"]["seen_sha256"], seen.as_str(), "the JSON's hash, not the page's");
    assert!(rows_of(&rows, "decision_refused").is_empty(), "a stale form is refused before anyone is judged");
}

/// The drift world, with ops's second factor a TOTP code; ops enrolled. Returns ops's
/// authenticator.
fn totp_pause_world() -> (World, totp_rs::TOTP) {
    let w = crate::drift::world("outbox = \"outbox\"");
    let policy = std::fs::read_to_string(w.path("p/policy.toml")).expect("policy");
    let ops = "ops = { emails = [\"ops@example.com\"] }";
    assert!(policy.contains(ops), "{policy}");
    w.write(
        "p/policy.toml",
        &policy.replace(ops, "ops = { emails = [\"ops@example.com\"], second_factor = \"totp\" }"),
    );
    let out = w.airlock(&["approver", "enroll", "ops@example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let uri = stdout(&out)
        .lines()
        .find(|l| l.starts_with("otpauth://totp/"))
        .expect("an otpauth URI")
        .to_string();
    (w, totp_rs::TOTP::from_url(&uri).expect("a TOTP URI"))
}

#[tokio::test]
async fn a_pause_whose_role_needs_a_totp_code_resumes_only_with_one_and_never_from_the_cli() {
    let (w, t) = totp_pause_world();
    let agent = w.agent().await;
    for n in 0..3 {
        let _ = agent.call("tag_order", json!({"order_id": "A-1001", "tag": format!("t{n}")})).await;
    }
    let scope = "class:internal_reversible@agent:test";
    let mut link = None;
    for _ in 0..100 {
        link = outbox_links(&w, "ops@example.com", 1).await.into_iter().find(|l| l.contains("/p/"));
        if link.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let link = link.expect("a pause link in the outbox");
    let (status, page) = get(&link);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("name=\"totp\""), "the page asks for the code: {page}");

    // the CLI prints ops's pause page and resumes nothing
    let out = w.airlock(&["drift", "resume", scope, "--as", "ops@example.com"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("/p/"), "{}", stdout(&out));
    assert!(stderr(&out).contains("authenticator app"), "{}", stderr(&out));
    // no code: refused
    let (status, body) = post(&link, &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("No code was entered"), "{body}");
    let still = w.airlock(&["drift", "list", "--json"]);
    assert!(stdout(&still).contains(scope), "still paused: {}", stdout(&still));

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let (status, body) = post(&link, &[("totp", &t.generate(now))]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Autopilot resumed"), "{body}");
    let r = agent.call("tag_order", json!({"order_id": "A-1001", "tag": "after"})).await;
    assert!(!is_error(&r), "autopilot runs again: {}", text(&r));
    agent.close().await;

    let rows = w.ledger_rows().await;
    let resumed = rows_of(&rows, "autopilot_resumed");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0]["body"]["by"], "ops@example.com");
    assert_eq!(resumed[0]["body"]["auth"]["via"], "link");
    assert_eq!(resumed[0]["body"]["auth"]["second_factor"], "totp");
    let refused = rows_of(&rows, "decision_refused");
    let attempts: Vec<&Value> = refused.iter().map(|r| &r["body"]["attempt"]).collect();
    assert_eq!(attempts, [&json!("second_factor")], "the POST without a code: {refused:?}");
}
