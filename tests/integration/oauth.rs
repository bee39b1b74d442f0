//! OAuth agents over streamable HTTP: a JWT access token from a real authorization server
//! (`oidc-provider`, client credentials with a resource indicator) admits the agent as
//! `oauth:<client id>`; the official Python SDK finds its way by the spec alone (401, resource
//! metadata, the issuer's metadata, the token endpoint); every bad token is refused with its
//! reason and nothing is forwarded; `[[agent]]` tokens keep working beside it.

use serde_json::{Value, json};

use crate::agents::{self, Serving, token};
use crate::smtp::{approval_id, free_port, http};
use crate::support::oauth::AuthServer;
use crate::support::signin::outbox_links;
use crate::support::{self, Peer, REPO, World, proposals, require};

/// The demo shop over HTTP on `port`, OAuth agents from `issuer` (scope `mcp:tools` required;
/// `oauth:reader` may only read), and one static agent `agent:a`, whose token is returned.
fn world(port: u16, issuer: &str) -> (World, String) {
    let w = World::demo();
    let (a, a_entry) = token("agent:a");
    let policy = std::fs::read_to_string(format!("{REPO}/policies/default.toml")).expect("policy");
    w.write(
        "p/policy.toml",
        &format!("{policy}\n[actors]\n\"oauth:reader\" = {{ classes = [\"read_only\"] }}\n"),
    );
    let config = std::fs::read_to_string(w.config())
        .expect("config")
        .replace(&format!("policies = {:?}", format!("{REPO}/policies")), "policies = \"p\"");
    w.write_config(&format!(
        "{config}\n[http]\nbind = \"127.0.0.1:{port}\"\n\n[oauth]\nissuer = {issuer:?}\nresource = \"{}\"\nscopes = [\"mcp:tools\"]\n\n{a_entry}",
        resource(port)
    ));
    (w, a)
}

fn resource(port: u16) -> String {
    format!("http://127.0.0.1:{port}/mcp")
}

fn serve(w: &World, port: u16) -> Serving {
    agents::serve(w, &[], &format!("http://127.0.0.1:{port}"))
}

/// The Python SDK agent with `args`, making `calls`.
fn python_agent(args: &[&str], calls: Value) -> Value {
    support::python_agent_answer(support::python_agent(args, &calls))
}

/// POST a JSON-RPC message to `/mcp` with a bearer token (or none): status, WWW-Authenticate,
/// body.
fn post(mcp: &str, bearer: Option<&str>, body: &Value) -> (u16, String, String) {
    let mut req = http()
        .post(mcp)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream");
    if let Some(t) = bearer {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = req.send(body.to_string()).expect("POST");
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (r.status().as_u16(), challenge, text)
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

#[ignore = "needs oidc-provider, Node.js and the MCP Python SDK; scripts/test runs it"]
#[tokio::test]
async fn an_oauth_agent_calls_through_the_gate_as_its_client_beside_a_static_agent() {
    require(Peer::OidcProvider);
    require(Peer::PythonSdk);
    let port = free_port();
    let auth = AuthServer::start(&resource(port));
    let (w, a) = world(port, &auth.issuer);
    let s = serve(&w, port);
    let mcp = format!("{}/mcp", s.base);

    // the metadata, outside the token check, at the root and the path-suffixed form
    for path in ["", "/mcp"] {
        let (status, body) =
            crate::smtp::get(&format!("{}/.well-known/oauth-protected-resource{path}", s.base));
        assert_eq!(status, 200, "{path}: {body}");
        let doc: Value = serde_json::from_str(&body).expect("metadata JSON");
        assert_eq!(doc["resource"], json!(resource(port)));
        assert_eq!(doc["authorization_servers"], json!([auth.issuer]));
        assert_eq!(doc["scopes_supported"], json!(["mcp:tools"]));
    }
    // no token: 401 naming where the metadata is
    let (status, challenge, _) = post(&mcp, None, &initialize());
    assert_eq!(status, 401);
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools\"", s.base)
    );

    // the SDK's client-credentials provider: discovery from the 401, a token for the resource
    let as_client = |client: &str, calls: Value| {
        let creds = format!("{client}:{client}-secret");
        python_agent(
            &["--url", &mcp, "--oauth-client", &creds, "--oauth-issuer", &auth.issuer, "--oauth-scope", "mcp:tools mcp:read"],
            calls,
        )
    };
    let got = as_client(
        "agent-1",
        json!([
            {"name": "search_orders", "arguments": {"query": "A-1001"}},
            {"name": "tag_order", "arguments": {"order_id": "A-1001", "tag": "vip"}},
            {"name": "refund_order", "arguments": {"order_id": "A-1001", "amount_cents": 500, "reason": "late"}},
        ]),
    );
    assert!(got["tools"].as_array().is_some_and(|t| t.contains(&json!("tag_order"))), "{got}");
    assert_eq!(got["results"][0]["isError"], false, "{got}");
    assert_eq!(got["results"][1]["isError"], false, "{got}");
    // the refund waits for finance; its approval is agent-1's alone
    let links = outbox_links(&w, "finance-approvers@example.com", 1).await;
    let id = approval_id(&links[0]);
    let status = json!([{"name": "airlock_status", "arguments": {"approval_id": id}}]);
    let mine = as_client("agent-1", status.clone());
    let text = mine["results"][0]["text"].as_str().unwrap_or("");
    assert!(text.contains("waiting for approval") && text.contains(&id), "{mine}");
    let theirs = as_client("reader", status);
    assert!(
        theirs["results"][0]["text"].as_str().unwrap_or("").contains("no approval or held call"),
        "{theirs}"
    );
    // the policy's [actors] holds for an OAuth actor
    let limited = as_client(
        "reader",
        json!([
            {"name": "search_orders", "arguments": {"query": ""}},
            {"name": "tag_order", "arguments": {"order_id": "A-1001", "tag": "x"}},
        ]),
    );
    assert_eq!(limited["results"][0]["isError"], false, "{limited}");
    assert!(
        limited["results"][1]["text"].as_str().unwrap_or("").contains("may not use class `internal_reversible`"),
        "{limited}"
    );
    // a static token still works beside OAuth
    let stat = python_agent(
        &["--url", &mcp, "--token", &a],
        json!([{"name": "search_orders", "arguments": {"query": "A-1002"}}]),
    );
    assert_eq!(stat["results"][0]["isError"], false, "{stat}");
    drop(s);

    let rows = w.ledger_rows().await;
    assert_eq!(
        proposals(&rows),
        [
            ("oauth:agent-1", "search_orders"),
            ("oauth:agent-1", "tag_order"),
            ("oauth:agent-1", "refund_order"),
            ("oauth:reader", "search_orders"),
            ("oauth:reader", "tag_order"),
            ("agent:a", "search_orders"),
        ]
    );
    assert_eq!(
        w.executed("executed.jsonl"),
        ["search_orders", "tag_order", "search_orders", "search_orders"]
    );
}

#[ignore = "needs oidc-provider and Node.js; scripts/test runs it"]
#[tokio::test]
async fn each_bad_token_is_refused_with_its_reason_and_nothing_is_forwarded() {
    require(Peer::OidcProvider);
    let port = free_port();
    let auth = AuthServer::start(&resource(port));
    let (w, _) = world(port, &auth.issuer);
    let s = serve(&w, port);
    let mcp = format!("{}/mcp", s.base);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "tag_order", "arguments": {"order_id": "A-1001", "tag": "x"}}});
    let meta = format!("resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"", s.base);

    // controls: a token the script signed with the provider's key, and one the provider issued
    for good in [auth.minted("valid"), auth.token("agent-1", "mcp:tools", &resource(port))] {
        let (status, _, body) = post(&mcp, Some(&good), &initialize());
        assert_eq!(status, 200, "{body}");
    }
    let issuer = auth.issuer.clone();
    let cases = [
        ("expired", "the token expired".to_string()),
        ("not_yet_valid", "the token is not valid yet".into()),
        ("wrong_issuer", format!("the token was not issued by {issuer}")),
        ("wrong_audience", format!("its `aud` must be {}", resource(port))),
        ("unsigned", "the token is unsigned (alg `none`)".into()),
        ("tampered", "the signature does not verify".into()),
        ("wrong_key", "the signature does not verify".into()),
        ("unknown_key", "publishes no signing key `other-key`".into()),
        ("no_actor", "the token has no `sub` claim".into()),
        ("shared_secret", "is signed with `HS256`, a shared secret".into()),
    ];
    for (name, reason) in &cases {
        let bad = auth.minted(name);
        for body in [initialize(), call.clone()] {
            let (status, challenge, text) = post(&mcp, Some(&bad), &body);
            assert_eq!(status, 401, "{name}: {text}");
            assert!(challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""), "{name}: {challenge}");
            assert!(challenge.contains(reason) && challenge.ends_with(&meta), "{name}: {challenge}");
            assert!(text.contains(reason), "{name}: the body says why too: {text}");
        }
    }
    // a token of neither kind
    let (status, challenge, _) = post(&mcp, Some("alk_0000"), &call);
    assert_eq!(status, 401);
    assert!(challenge.contains("neither an [[agent]] token nor a JWT access token"), "{challenge}");
    // a real token without the required scope: 403, naming the scope
    let narrow = auth.token("narrow", "mcp:read", &resource(port));
    let (status, challenge, text) = post(&mcp, Some(&narrow), &call);
    assert_eq!(status, 403, "{text}");
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\", scope=\"mcp:tools\"") && challenge.ends_with(&meta),
        "{challenge}"
    );
    assert!(text.contains("lacks scope mcp:tools"), "{text}");
    drop(s);

    let rows = w.ledger_rows().await;
    assert!(proposals(&rows).is_empty(), "nothing reached the gate: {:?}", proposals(&rows));
    assert!(w.executed("executed.jsonl").is_empty());
}

#[test]
fn without_the_issuers_keys_no_token_is_admitted() {
    // nothing listens at the issuer: its keys cannot be fetched
    let (port, issuer_port) = (free_port(), free_port());
    let (w, a) = world(port, &format!("http://127.0.0.1:{issuer_port}"));
    let s = serve(&w, port);
    let mcp = format!("{}/mcp", s.base);
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let jwt = format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "RS256", "typ": "at+jwt", "kid": "k"})),
        b64(&json!({"sub": "agent-1"}))
    );
    let (status, challenge, text) = post(&mcp, Some(&jwt), &initialize());
    assert_eq!(status, 503, "{text}");
    assert!(challenge.is_empty(), "not the token's fault: {challenge}");
    assert!(
        text.contains("bearer tokens cannot be checked now") && text.contains(&format!("127.0.0.1:{issuer_port}")),
        "{text}"
    );
    // the metadata is still served, and a static token still works
    let (status, _) = crate::smtp::get(&format!("{}/.well-known/oauth-protected-resource", s.base));
    assert_eq!(status, 200);
    let (status, _, text) = post(&mcp, Some(&a), &initialize());
    assert_eq!(status, 200, "{text}");
}

#[test]
fn check_refuses_a_name_oauth_agents_carry_in_any_role_and_oauth_alone_serves_http() {
    let w = World::empty();
    w.write_config("[gate]\nmanifests = \"m\"\npolicies = \"p\"\n\n[http]\nbind = \"127.0.0.1:8790\"\n\n[oauth]\nissuer = \"https://login.example.com\"\nresource = \"https://airlock.example.com/mcp\"\nactor_prefix = \"idp:\"\n");
    std::fs::create_dir_all(w.path("m")).expect("mkdir");
    w.write("p/p.toml", "version = \"v\"\n[classes]\nfinancial = { path = \"approve\", role = \"finance\" }\n[roles]\nfinance = { emails = [\"ann@example.com\", \"IDP:ann@example.com\"] }\n[review]\nrole = \"finance\"\n");
    let out = w.airlock(&["check", "--offline"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let expected = "roles.finance.emails: `IDP:ann@example.com` starts with `idp:`, the name of OAuth agents ([oauth] actor_prefix), and role `finance` decides: agents never decide";
    assert!(said.contains(expected), "missing `{expected}` in:\n{said}");
    assert!(!said.contains("http.bind"), "no [[agent]] is needed beside [oauth]:\n{said}");
}
