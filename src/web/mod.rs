//! Web: the approval pages, the review page and the pause pages, over real HTTP (axum).
//!
//! Owns routing, HTML rendering of the envelope (and the hash of exactly what was rendered), the
//! per-page nonce, and the security headers. A GET only shows; only a POST from the page's own form
//! (or the CLI, with a personal token for `--as`) acts, and no script is ever served. It must never build a
//! link from the request's Host header, and never decide anything itself: every decision goes to the
//! one [`crate::desk`] (approvals, held calls, paused scopes), which applies the authority rule.

mod envelope;
pub mod listen;
mod review;
mod signin;
mod stats;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};

use crate::approval::state::{Choice, Step};
use crate::approval::{DecisionForm, DeskError};
use crate::desk::Desk;
use crate::ledger::Ledger;
use crate::live::Live;
use crate::mcp::downstream::ToolServers;

pub use envelope::{envelope_html, heading_html, rendered_hash, view_hash};

/// How long a rendered page's form stays valid.
const PAGE_TTL_SECS: i64 = 24 * 3600;

/// What the pages act on.
pub struct Web {
    /// This gate's instance nonce (also in the runtime file), sent by `/healthz`.
    pub instance: String,
    /// The one desk every decision enters (approvals, held calls, paused scopes).
    pub desk: Arc<Desk>,
    pub live: Arc<Live>,
    pub servers: Arc<ToolServers>,
    pub ledger: Arc<Ledger>,
    /// Sign-in and second factors: who may decide.
    pub deciders: Arc<crate::auth::Deciders>,
    /// Opens redacted values for a role that may see them (`reveal_redacted`).
    pub sealer: Arc<crate::seal::Sealer>,
    /// The channels' health: failing ones are `/readyz` warnings.
    pub channels: Arc<crate::channel::Status>,
}

/// `view` with its redacted values put back when the approval's role may see them (it signs
/// in: the page is shown only after); as recorded otherwise, or when they cannot be opened.
fn revealed(web: &Web, mut view: crate::approval::View) -> crate::approval::View {
    let a = &view.approval;
    let (setup, _) = web.live.snapshot();
    let reveals = setup
        .policy
        .roles
        .get(&a.envelope.role)
        .is_some_and(|r| r.reveal_redacted);
    let Some(sealed) = a.sealed.as_deref().filter(|_| reveals) else {
        return view;
    };
    match web.sealer.open(&a.call_id, sealed) {
        Ok(secrets) => {
            let args = a
                .envelope
                .arguments
                .as_object()
                .cloned()
                .unwrap_or_default();
            view.revealed = Some(crate::redact::restore(&args, &secrets).0);
        }
        Err(e) => {
            tracing::warn!(approval = %a.id, error = %e, "redacted values cannot be opened; markers are shown")
        }
    }
    view
}

/// The router; tests and `serve` share it.
pub fn app(web: Arc<Web>) -> Router {
    // Every review route is behind a personal review link (who presents it), checked once here.
    let review = Router::new()
        .route("/review/{token}", get(review::page))
        .route("/review/{token}/state", get(review::state))
        .route("/review/{token}/stats", get(stats::page))
        .route("/review/{token}/classify", post(review::classify))
        .route("/review/{token}/held/{id}", post(review::held))
        .route("/review/{token}/resume", post(review::resume))
        .route_layer(middleware::from_fn_with_state(
            web.clone(),
            review::verify_link,
        ));
    Router::new()
        .route("/a/{id}/{slot}/{token}", get(show).post(decide))
        .route(crate::auth::CALLBACK, get(signin::callback))
        .merge(review)
        .route(
            "/p/{id}/{token}",
            get(review::pause_page).post(review::pause_resume),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(middleware::map_response(security_headers))
        .with_state(web)
}

/// Liveness and each tool server's state (JSON), with the instance nonce so the CLI knows it
/// reached this gate.
async fn healthz(State(web): State<Arc<Web>>) -> Response {
    let servers: serde_json::Map<String, serde_json::Value> = web
        .servers
        .status()
        .into_iter()
        // a word, not the error text (which may name URLs): details are in Airlock's log
        .map(|(name, state)| {
            let word = state.split(':').next().unwrap_or("unknown").to_string();
            (name, serde_json::Value::String(word))
        })
        .collect();
    // group commit so far: durable commits, the changes they carried, rows, and how many of
    // the commits a task awaiting its change made itself
    let (commits, changes, rows) = web.ledger.batching();
    let inline = web.ledger.inline_commits();
    let ledger =
        serde_json::json!({"commits": commits, "changes": changes, "rows": rows, "inline": inline});
    let mut r =
        axum::Json(serde_json::json!({"status": "ok", "servers": servers, "ledger": ledger}))
            .into_response();
    if let Ok(v) = HeaderValue::from_str(&web.instance) {
        r.headers_mut().insert("x-airlock-instance", v);
    }
    r
}

/// Readiness: 200 when the ledger can take rows, every tool server is running with its tools
/// listed and the checkpoint witness (if any) keeps up; 503 with the reasons otherwise (a load
/// balancer sends calls elsewhere).
async fn readyz(State(web): State<Arc<Web>>) -> Response {
    let mut reasons = Vec::new();
    let ledger = match web.ledger.health() {
        Ok(()) => "ok".to_string(),
        Err(why) => {
            reasons.push(format!("ledger: {why}"));
            "unavailable".to_string()
        }
    };
    if let Err(why) = web.ledger.checkpoints().health() {
        reasons.push(format!("checkpoint witness: {why}"));
    }
    let mut servers = serde_json::Map::new();
    for (name, state) in web.servers.status() {
        let word = state.split(':').next().unwrap_or("unknown").to_string();
        if word != "running" {
            reasons.push(format!("tool server `{name}` is {word}"));
        }
        servers.insert(name, serde_json::Value::String(word));
    }
    let ready = reasons.is_empty();
    // a channel that fails does not stop calls: the gate stays ready, the operator is told
    let warnings = web.channels.warnings();
    let body = serde_json::json!({"ready": ready, "ledger": ledger, "servers": servers, "reasons": reasons, "warnings": warnings});
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus text exposition of [`crate::metrics`], with the approval queue as it is now.
async fn metrics(State(web): State<Arc<Web>>) -> Response {
    let text = crate::metrics::global().render(&web.desk.approvals().pending_by_role().await);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

async fn show(
    State(web): State<Arc<Web>>,
    Path((id, slot, token)): Path<(String, usize, String)>,
    headers: HeaderMap,
) -> Response {
    let desk = web.desk.approvals();
    match desk.view(&id, slot, &token).await {
        Ok(view) => {
            // a role that signs in: through the provider first
            let session =
                match signin::signed_in_or_redirect(&web, &view, slot, &token, &headers).await {
                    Ok(s) => s,
                    Err(r) => return r,
                };
            let now = crate::instant::now().timestamp();
            let nonce = desk.key().nonce(&token, now);
            let fields = signin::form_fields(&web, &view, session.as_ref());
            let view = revealed(&web, view);
            Html(envelope::page(&view, now, &nonce, &fields)).into_response()
        }
        Err(e) => problem(&e),
    }
}

async fn decide(
    State(web): State<Arc<Web>>,
    Path((id, slot, token)): Path<(String, usize, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let desk = web.desk.approvals();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    // The link first (a bad one is refused and logged by the desk), then the form it rendered.
    let current = match desk.view(&id, slot, &token).await {
        Ok(v) => v,
        Err(e) => return problem(&e),
    };
    let rendered_at: i64 = field("rendered_at").parse().unwrap_or(0);
    let now = crate::instant::now().timestamp();
    if !desk.key().verify_nonce(field("nonce"), &token, rendered_at)
        || rendered_at > now + 60
        || now - rendered_at > PAGE_TTL_SECS
    {
        desk.log_form_refusal(
            &current.approval,
            slot,
            "the form's nonce is missing, forged or stale",
        )
        .await;
        return message_page(
            StatusCode::FORBIDDEN,
            "This form is not valid",
            "Open the link from your email again and decide from that page.",
        );
    }
    let choice = match field("action") {
        "approve" => Choice::Approve,
        "deny" => Choice::Deny,
        "modify" => Choice::Modify,
        "escalate" => Choice::Escalate,
        _ => {
            return message_page(
                StatusCode::BAD_REQUEST,
                "No decision",
                "Press Approve, Deny, Modify or Escalate.",
            );
        }
    };
    // What the approver saw must be what is current: a modify or escalation by someone else
    // changes the envelope (and invalidates this link).
    if field("seen") != view_hash(&revealed(&web, current.clone())) {
        return message_page(
            StatusCode::CONFLICT,
            "The request changed",
            "It changed since this page was opened. Open the newest link from your email.",
        );
    }
    // Who decides: signed in as the link's address, and the code, when required.
    let auth = match signin::authenticate(&web, &current, &headers, field("totp")).await {
        Ok(facts) => facts,
        Err(refused) => return refused,
    };
    let decision = DecisionForm {
        choice,
        comment: field("comment").trim().chars().take(2000).collect(),
        arguments: (choice == Choice::Modify).then(|| field("arguments").to_string()),
        seen: field("seen").to_string(),
    };
    match web
        .desk
        .decide_approval(&id, slot, &token, decision, &auth)
        .await
    {
        Ok(step) => {
            let (title, text) = match step {
                Step::Approved => (
                    "Approved",
                    "Thank you. The call runs now, once, with exactly the arguments you saw.",
                ),
                Step::Counted { .. } => (
                    "Approval recorded",
                    "Thank you. More approvals are needed before the call runs.",
                ),
                Step::Denied => (
                    "Denied",
                    "Thank you. The call will not run; the agent is told your reason.",
                ),
                Step::NewStage if choice == Choice::Escalate => (
                    "Escalated",
                    "Thank you. The next role has been asked to decide.",
                ),
                Step::NewStage => (
                    "Modified",
                    "Thank you. The edited call now needs the other approvers.",
                ),
                Step::Expired => ("Expired", "The request expired."),
            };
            message_page(StatusCode::OK, title, text)
        }
        Err(e) => problem(&e),
    }
}

fn problem(e: &DeskError) -> Response {
    let status = match e {
        DeskError::BadLink => StatusCode::NOT_FOUND,
        DeskError::Refused(_) | DeskError::Unauthorized(_) => StatusCode::FORBIDDEN,
        DeskError::BadModification(_) => StatusCode::UNPROCESSABLE_ENTITY,
        DeskError::Ledger(_) | DeskError::Unsealable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    message_page(status, "Not done", &e.to_string())
}

pub(crate) fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    (
        status,
        Html(shell(
            title,
            &format!("<h1>{}</h1><p>{}</p>", esc(title), envelope::prose(text)),
        )),
    )
        .into_response()
}

/// HTML-escape text, with every character that is invisible or reorders text shown as its
/// visible escape (`\u202E`, [`crate::shown::block`]); line breaks stay. Nothing on a page is
/// ever a link made from its text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in crate::shown::block(s).chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

pub(crate) fn shell(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer"><title>{title} · Airlock</title>
<style>
body{{font:16px/1.45 system-ui,sans-serif;margin:0 auto;max-width:40rem;padding:1rem;color:#111}}
h1{{font-size:1.3rem;margin:.2rem 0}} .who,.hash{{color:#555;font-size:.8rem;word-break:break-all}} .state{{background:#f3f3f3;padding:.5rem;border-radius:6px}}
dl.envelope{{display:grid;grid-template-columns:max-content 1fr;gap:.3rem .8rem;margin:1rem 0}} dt{{font-weight:600;color:#333}} dd{{margin:0;word-break:break-word}}
pre{{margin:0;white-space:pre-wrap;background:#f7f7f7;padding:.4rem;border-radius:4px;font-size:.85rem}}
textarea,input,select{{width:100%;box-sizing:border-box;font:inherit;padding:.3rem}} h2{{font-size:1.1rem;margin-top:1.5rem}} table{{border-collapse:collapse;font-size:.85rem;display:block;overflow-x:auto}} td,th{{border-bottom:1px solid #ddd;padding:.2rem .4rem;text-align:right}} td:first-child{{text-align:left}} h3{{font-size:1rem}} label{{display:block;margin-top:.6rem;font-size:.9rem}}
.buttons{{display:flex;gap:.5rem;margin:.8rem 0;flex-wrap:wrap}} button{{font:inherit;padding:.6rem 1.1rem;border-radius:6px;border:1px solid #888;background:#fff}} .buttons button{{flex:1}}
h1 small{{font-size:.8rem;font-weight:400}} small{{color:#555}} dl.args{{display:grid;grid-template-columns:max-content 1fr;gap:0 .6rem;margin:0}} dl.args dt{{font-weight:400;color:#555}} details{{margin:.3rem 0}} time{{white-space:nowrap}} summary{{color:#333;cursor:pointer}}
.agent{{background:#fff1b8;border-radius:3px;box-shadow:0 0 0 1px #e6c200;-webkit-box-decoration-break:clone;box-decoration-break:clone}} dd.agent,div.agent{{background:none;box-shadow:none;border-left:3px solid #e6c200;padding-left:.5rem}} .note{{font-size:.8rem;color:#555;margin:.2rem 0}} .warn{{background:#fde8e6;color:#7a1d14;padding:.4rem .5rem;border-radius:6px;font-size:.85rem;margin:.3rem 0;word-break:break-word}} .flag{{color:#b3261e;font-size:.8rem}}
button.approve{{background:#0a7d32;color:#fff;border-color:#0a7d32}} button.deny{{background:#b3261e;color:#fff;border-color:#b3261e}}
@media (max-width:30rem){{dl.envelope{{grid-template-columns:1fr}} dt{{margin-top:.4rem}}}}
</style></head><body>{body}</body></html>"#,
        title = esc(title),
    )
}
