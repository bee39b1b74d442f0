//! Deciders who are who they say: a role that signs in with the company's OpenID provider (the
//! real `oidc-provider`, driven by a cookie-keeping HTTP client as a person's browser), and
//! classes that need a TOTP code with the decision. The real binary throughout; mail goes to the
//! `.eml` outbox.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::smtp::{approval_id, field, free_port, get, post};
use crate::support::signin::{Browser, Hop, Provider, SECRET_ENV, outbox_links};
use crate::support::{Agent, World, is_error, text};

const FINANCE: &str = r#"{ path = "approve", role = "finance", timeout = "30m" }"#;

/// The demo shop, `financial` decided by role `finance` (ann) with `finance_role` extra keys,
/// pages on `web_port`, mail to the outbox, and `extra` config (e.g. `[sign_in]`).
fn world(web_port: u16, financial: &str, finance_role: &str, extra: &str) -> World {
    let w = World::empty();
    w.write(
        "p/policy.toml",
        &format!(
            "version = \"signin-test\"\n[classes]\nread_only = {{ path = \"allow\" }}\nfinancial = {financial}\n\
             internal_reversible = {{ path = \"allow\", require_reversal = true, role = \"ops\" }}\n\
             customer_facing = {{ path = \"conditional\", require_evidence = true, role = \"ops\" }}\n\
             destructive = {{ path = \"deny\" }}\n\
             [roles]\nfinance = {{ emails = [\"ann@example.com\"]{finance_role} }}\nops = {{ emails = [\"ops@example.com\"] }}\n"
        ),
    );
    w.write_config(&format!(
        "[gate]\nmanifests = {m:?}\npolicies = \"p\"\nledger = \"ledger.redb\"\nactor = \"agent:test\"\nmax_wait = \"2m\"\n\
         [mail]\noutbox = \"outbox\"\n[web]\nbind = \"127.0.0.1:{web_port}\"\n{extra}\n{shop}",
        m = format!("{}/tool-manifests", crate::support::REPO),
        shop = w.shop_server("shop", "", "executed.jsonl"),
    ));
    w
}

fn refund(agent: &Arc<Agent>, amount: u64) -> tokio::task::JoinHandle<rmcp::model::CallToolResult> {
    let a = agent.clone();
    tokio::spawn(async move {
        a.call("refund_order", json!({"order_id": "A-1001", "amount_cents": amount, "reason": "damaged"}))
            .await
    })
}

async fn finish(agent: Arc<Agent>) {
    if let Ok(a) = Arc::try_unwrap(agent) {
        a.close().await;
    }
}

/// The form of a page (nonce, rendered_at, seen) with `action` and `extra` fields.
pub(crate) fn form(page: &str, action: &str, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("nonce", field(page, "nonce")),
        ("rendered_at", field(page, "rendered_at")),
        ("seen", field(page, "seen")),
        ("action", action.to_string()),
    ];
    f.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    f
}

pub(crate) fn pairs<'a>(f: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    f.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// `link_refused` rows of one attempt kind.
fn refusals<'a>(rows: &'a [Value], attempt: &str) -> Vec<&'a Value> {
    rows.iter()
        .filter(|r| r["kind"] == "link_refused" && r["body"]["attempt"] == attempt)
        .collect()
}

pub(crate) struct SignInWorld {
    pub w: World,
    pub provider: Provider,
    pub web_port: u16,
}

fn sign_in_world() -> SignInWorld {
    sign_in_world_as(", sign_in = \"oidc\"")
}

/// The demo shop, `financial` approved by `finance` (ann) with `finance_role` extra keys, and
/// the real provider as `[sign_in]`.
pub(crate) fn sign_in_world_as(finance_role: &str) -> SignInWorld {
    let web_port = free_port();
    let provider = Provider::start(&format!("http://127.0.0.1:{web_port}/signin/callback"));
    let w = world(
        web_port,
        FINANCE,
        finance_role,
        &format!(
            "[sign_in]\nissuer = {:?}\nclient_id = \"airlock\"\nclient_secret_env = {:?}\n",
            provider.issuer, SECRET_ENV.0
        ),
    );
    SignInWorld { w, provider, web_port }
}

#[ignore = "needs npm oidc-provider; scripts/test runs it"]
#[tokio::test]
async fn signing_in_as_the_approver_lets_them_decide_and_the_decision_row_says_how() {
    let SignInWorld { w, provider, web_port } = sign_in_world();
    let agent = Arc::new(w.agent_with_env(&[SECRET_ENV]).await);
    let waiting = refund(&agent, 500);
    let link = outbox_links(&w, "ann@example.com", 1).await.remove(0);
    let id = approval_id(&link);

    // The link leads to the provider: code flow, PKCE S256, state and nonce.
    let mut browser = Browser::new();
    let first = browser.get(&link);
    assert_eq!(first.status, 303, "{}", first.body);
    let to = first.location.clone().expect("a redirect");
    assert!(to.starts_with(&format!("{}/auth?", provider.issuer)), "{to}");
    for part in ["response_type=code", "client_id=airlock", "code_challenge_method=S256", "state=", "nonce=", "scope=openid+email"] {
        assert!(to.contains(part), "{to} lacks {part}");
    }
    assert!(first.set_cookies.iter().any(|c| c.starts_with("airlock_signin=") && c.contains("HttpOnly")), "{:?}", first.set_cookies);
    assert!(w.executed("executed.jsonl").is_empty(), "nothing runs on GET");

    let login = browser.follow(first, None);
    let page = browser.log_in(&login, "ann", None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url, link, "back on the approval page");
    assert!(page.body.contains("Signed in as ann@example.com"), "{}", page.body);
    let session = browser
        .hops
        .iter()
        .flat_map(|h| h.set_cookies.iter())
        .find(|c| c.starts_with("airlock_session="))
        .expect("a session cookie")
        .clone();
    for part in ["HttpOnly", "SameSite=Lax", &format!("Path=/a/{id}/"), "Max-Age=900"] {
        assert!(session.contains(part), "{session} lacks {part}");
    }
    assert!(!session.contains("Secure"), "plain http pages: {session}");

    // The same form without the session (another browser, a forwarded page) is refused.
    let f = form(&page.body, "approve", &[]);
    let (status, refused) = post(&link, &pairs(&f));
    assert_eq!(status, 403, "{refused}");
    assert!(refused.contains("Sign in first") && refused.contains("open the link from your email again"), "{refused}");
    assert!(w.executed("executed.jsonl").is_empty());

    let done = browser.post(&link, &pairs(&f));
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Approved"), "{}", done.body);
    let result = waiting.await.expect("agent task");
    assert!(!is_error(&result), "{}", text(&result));
    finish(agent).await;
    assert_eq!(w.executed("executed.jsonl"), ["refund_order"]);

    let rows = w.ledger_rows().await;
    let decision = rows.iter().find(|r| r["kind"] == "decision").expect("decision row");
    assert_eq!(
        decision["body"]["auth"],
        json!({"via": "oidc", "second_factor": null, "subject": "ann", "issuer": provider.issuer})
    );
    let refused = refusals(&rows, "sign_in");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0]["body"]["reason"].as_str().unwrap_or("").contains("not signed in as ann@example.com"));
    let _ = web_port;
}

#[ignore = "needs npm oidc-provider; scripts/test runs it"]
#[tokio::test]
async fn signing_in_as_someone_else_is_refused_recorded_and_nothing_runs() {
    let SignInWorld { w, provider: _provider, .. } = sign_in_world();
    let agent = Arc::new(w.agent_with_env(&[SECRET_ENV]).await);
    let waiting = refund(&agent, 700);
    let link = outbox_links(&w, "ann@example.com", 1).await.remove(0);

    let mut browser = Browser::new();
    let login = browser.go(&link);
    let page = browser.log_in(&login, "eve", None);
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains("Signed in as eve@example.com (subject eve), but the link is for ann@example.com")
            && page.body.contains("sign out of your provider"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("name=\"nonce\""), "no form");
    // The page again: back to the provider, never the form.
    assert_eq!(browser.get(&link).status, 303);
    assert!(w.executed("executed.jsonl").is_empty());
    waiting.abort();
    finish(agent).await;

    let rows = w.ledger_rows().await;
    assert!(rows.iter().all(|r| r["kind"] != "decision"), "no decision");
    let refused = refusals(&rows, "sign_in");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["body"]["approver"], "ann@example.com");
    assert!(refused[0]["body"]["reason"].as_str().unwrap_or("").contains("signed in as eve@example.com"));
}

#[ignore = "needs npm oidc-provider; scripts/test runs it"]
#[tokio::test]
async fn a_tampered_or_replayed_state_is_refused_and_recorded() {
    let SignInWorld { w, web_port, provider: _provider } = sign_in_world();
    let agent = Arc::new(w.agent_with_env(&[SECRET_ENV]).await);
    let waiting = refund(&agent, 900);
    let link = outbox_links(&w, "ann@example.com", 1).await.remove(0);
    let callback = format!("http://127.0.0.1:{web_port}/signin/callback");

    let mut browser = Browser::new();
    let login = browser.go(&link);
    let back: Hop = browser.log_in(&login, "ann", Some(&callback));
    let answer = back.location.expect("the provider's answer");
    assert!(answer.contains("code=") && answer.contains("state="), "{answer}");
    let tampered = answer.replacen("state=", "state=x", 1);
    let refused = browser.get(&tampered);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("does not match") && refused.body.contains("open the link from your email again"), "{}", refused.body);
    // The untampered answer, replayed: that sign-in is gone.
    let replayed = browser.get(&answer);
    assert_eq!(replayed.status, 403, "{}", replayed.body);
    assert!(replayed.body.contains("unknown, already used"), "{}", replayed.body);
    assert!(refused.set_cookies.iter().all(|c| !c.starts_with("airlock_session=")));
    // and no session came of either
    assert_eq!(browser.get(&link).status, 303);
    assert!(w.executed("executed.jsonl").is_empty());
    waiting.abort();
    finish(agent).await;

    let rows = w.ledger_rows().await;
    assert!(rows.iter().all(|r| r["kind"] != "decision"));
    let refused = refusals(&rows, "sign_in");
    assert_eq!(refused.len(), 1, "the tampered answer names its sign-in's approval: {refused:?}");
    assert!(refused[0]["body"]["reason"].as_str().unwrap_or("").contains("state does not match"));
}

// ----- TOTP -----

const WITH_TOTP: &str = r#"{ path = "approve", role = "finance", timeout = "30m", second_factor = "totp" }"#;

/// Enrol ann and return her authenticator (from the printed otpauth URI).
fn enroll(w: &World) -> totp_rs::TOTP {
    let out = w.airlock(&["approver", "enroll", "ann@example.com"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let uri = stdout.lines().find(|l| l.starts_with("otpauth://totp/")).expect("an otpauth URI");
    totp_rs::TOTP::from_url(uri).expect("a TOTP URI")
}

fn code(t: &totp_rs::TOTP, offset: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    t.generate(now + offset)
}

#[tokio::test]
async fn enrolment_prints_an_otpauth_uri_and_keeps_the_secret_in_a_private_file_only() {
    let w = world(free_port(), WITH_TOTP, "", "");
    let t = enroll(&w);
    assert_eq!(t.account_name, "ann@example.com");
    assert_eq!((t.digits, t.step), (6, 30));
    let file = w.path("airlock.totp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).expect("secrets file").permissions().mode() & 0o777, 0o600);
    }
    assert!(std::fs::read_to_string(&file).expect("read").contains(&t.get_secret_base32()));
    let again = w.airlock(&["approver", "enroll", "ann@example.com"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already enrolled"), "{}", String::from_utf8_lossy(&again.stderr));
    // and never in the ledger
    let agent = Arc::new(w.agent().await);
    let waiting = refund(&agent, 300);
    let link = outbox_links(&w, "ann@example.com", 1).await.remove(0);
    let (_, page) = get(&link);
    let f = form(&page, "approve", &[("totp", &code(&t, 0))]);
    assert_eq!(post(&link, &pairs(&f)).0, 200);
    assert!(!is_error(&waiting.await.expect("agent task")));
    finish(agent).await;
    let ledger = w.airlock(&["ledger", "export"]);
    assert!(!String::from_utf8_lossy(&ledger.stdout).contains(&t.get_secret_base32()));
}

#[tokio::test]
async fn a_decision_with_the_code_runs_and_the_same_code_is_refused_the_next_time() {
    let w = world(free_port(), WITH_TOTP, "", "");
    let t = enroll(&w);
    let agent = Arc::new(w.agent().await);
    let first = refund(&agent, 100);
    let second = refund(&agent, 200);
    let links = outbox_links(&w, "ann@example.com", 2).await;

    let (_, page) = get(&links[0]);
    assert!(page.contains("name=\"totp\""), "the page asks for the code");
    let used = code(&t, 0);
    let f = form(&page, "approve", &[("totp", &used)]);
    let (status, body) = post(&links[0], &pairs(&f));
    assert_eq!(status, 200, "{body}");

    let (_, page) = get(&links[1]);
    let f = form(&page, "approve", &[("totp", &used)]);
    let (status, body) = post(&links[1], &pairs(&f));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("already used") && body.contains("wait for the next code"), "{body}");
    // the next code (one step ahead is accepted) decides it
    let f = form(&page, "approve", &[("totp", &code(&t, 30))]);
    let (status, body) = post(&links[1], &pairs(&f));
    assert_eq!(status, 200, "{body}");
    for r in [first, second] {
        assert!(!is_error(&r.await.expect("agent task")));
    }
    finish(agent).await;
    assert_eq!(w.executed("executed.jsonl").len(), 2);

    let rows = w.ledger_rows().await;
    let decisions: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "decision").collect();
    assert_eq!(decisions.len(), 2);
    for d in decisions {
        assert_eq!(d["body"]["auth"], json!({"via": "link", "second_factor": "totp", "subject": null, "issuer": null}));
    }
    let refused = refusals(&rows, "second_factor");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0]["body"]["reason"].as_str().unwrap_or("").contains("already used"));
}

#[tokio::test]
async fn wrong_codes_are_refused_and_recorded_and_five_lock_the_approver_out() {
    let w = world(free_port(), WITH_TOTP, "", "");
    let t = enroll(&w);
    let agent = Arc::new(w.agent().await);
    let waiting = refund(&agent, 400);
    let link = outbox_links(&w, "ann@example.com", 1).await.remove(0);
    let (_, page) = get(&link);
    // a code valid at no step near now (the test may cross a step or two)
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let near: Vec<String> = (0..8).map(|i| t.generate(now - 90 + i * 30)).collect();
    let wrong = (0..100).map(|n| format!("{n:06}")).find(|c| !near.contains(c)).expect("a wrong code");

    let f = form(&page, "approve", &[]);
    let (status, body) = post(&link, &pairs(&f));
    assert_eq!(status, 403);
    assert!(body.contains("No code was entered"), "{body}");
    for left in (1..=4).rev() {
        let f = form(&page, "approve", &[("totp", &wrong)]);
        let (status, body) = post(&link, &pairs(&f));
        assert_eq!(status, 403, "{body}");
        assert!(body.contains(&format!("The code is wrong ({left} tries left)")), "{body}");
    }
    let f = form(&page, "approve", &[("totp", &wrong)]);
    let (status, body) = post(&link, &pairs(&f));
    assert_eq!(status, 403);
    assert!(body.contains("Five wrong codes") && body.contains("ask another member of the role"), "{body}");
    let f = form(&page, "approve", &[("totp", &code(&t, 0))]);
    let (status, body) = post(&link, &pairs(&f));
    assert_eq!(status, 403, "locked out, even with the right code: {body}");
    assert!(body.contains("Five wrong codes"), "{body}");
    assert!(w.executed("executed.jsonl").is_empty());
    waiting.abort();
    finish(agent).await;

    let rows = w.ledger_rows().await;
    assert!(rows.iter().all(|r| r["kind"] != "decision"));
    let refused = refusals(&rows, "second_factor");
    assert_eq!(refused.len(), 7, "every failure is a row: {refused:?}");
    assert!(refused.iter().all(|r| r["body"]["approver"] == "ann@example.com"));
}

#[tokio::test]
async fn check_refuses_a_role_that_signs_in_without_a_provider_and_a_plain_http_issuer_elsewhere() {
    let w = world(free_port(), FINANCE, ", sign_in = \"oidc\"", "");
    let out = w.airlock(&["check", "--offline"]);
    let err = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("roles.finance.sign_in") && err.contains("has no [sign_in]"), "{err}");

    let w = world(
        free_port(),
        FINANCE,
        ", sign_in = \"oidc\"",
        "[sign_in]\nissuer = \"http://login.example.com\"\nclient_id = \"airlock\"\nclient_secret_env = \"not a name\"\n",
    );
    let out = w.airlock(&["check", "--offline"]);
    let err = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("sign_in.issuer") && err.contains("plain http on another machine"), "{err}");
    assert!(err.contains("sign_in.client_secret_env"), "{err}");
}
