//! The review side's endpoints: the review page (`/review/{token}`) and its actions — classify
//! a tool, release or reject a held call, resume a paused scope — and a pause's page
//! (`/p/{id}/{token}`, the mailed link of one pause). The same endpoints answer JSON to the CLI
//! (`Accept: application/json`). Who may decide, and what they must prove, is [`signin`]'s; the
//! HTML is [`page`]'s. A held call's release or rejection carries what its reviewer saw (`seen`:
//! the hash of the call's block as the page rendered it, or `seen_json`: of its JSON as the CLI
//! fetched it); a hash that no longer matches the call is refused as stale.

mod classifying;
mod page;
pub(super) mod signin;

pub(super) use classifying::classify;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{Web, message_page};
use crate::desk::{Act, DecideError, Decided};
use crate::drift::pauses::PauseError;
use crate::quarantine::{self as q, Held, QuarantineError, Seen};
use crate::reviewer::Reviewer;
pub(super) use signin::record_sign_in_refusal;
use signin::{Ask, Proof, decider, pause_scope, review_scope};

type Outcome = Result<(String, Value), (StatusCode, String)>;

fn wants_json(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// Answer an action: JSON for the CLI, a short page for a person.
fn answer(h: &HeaderMap, title: &str, out: Outcome) -> Response {
    match (out, wants_json(h)) {
        (Ok((msg, data)), true) => {
            Json(json!({"ok": true, "message": msg, "data": data})).into_response()
        }
        (Err((code, msg)), true) => {
            (code, Json(json!({"ok": false, "error": msg}))).into_response()
        }
        (Ok((msg, _)), false) => message_page(StatusCode::OK, title, &msg),
        (Err((code, msg)), false) => message_page(code, "Not done", &msg),
    }
}

/// The review routes' guard: the token must be a personal review link of this gate, not
/// expired; who presents it ([`Reviewer`]) is handed to the handlers. Refused before any
/// handler runs (JSON for the CLI).
pub(super) async fn verify_link(
    State(web): State<Arc<Web>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let token = params.get("token").map_or("", String::as_str);
    match web.desk.held().reviewer(token, crate::instant::now()) {
        Ok(r) if r.pause.is_some() => answer(
            &headers,
            "",
            Err((
                StatusCode::NOT_FOUND,
                "this link opens one pause's page only".into(),
            )),
        ),
        // a person's link opens the page only while they are in some role (the CLI's own
        // tokens read as the key holder)
        Ok(r) if r.via == "link" && !in_some_role(&web, &r.email) => answer(
            &headers,
            "",
            Err((
                StatusCode::FORBIDDEN,
                format!(
                    "{} is in no role of the policy now, so this link opens nothing",
                    r.email
                ),
            )),
        ),
        Ok(r) => {
            req.extensions_mut().insert(r);
            next.run(req).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "review page: a request with a bad or expired link was refused");
            answer(&headers, "", Err((StatusCode::NOT_FOUND, e.to_string())))
        }
    }
}

fn in_some_role(web: &Web, email: &str) -> bool {
    !web.live.setup().policy.roles_of(email).is_empty()
}

/// A decision the desk refused or could not make, as a status and its sentence.
fn desk_error(e: DecideError) -> (StatusCode, String) {
    match e {
        DecideError::Refused(_) => (StatusCode::FORBIDDEN, e.to_string()),
        DecideError::Held(e) => quarantine_error(e),
        DecideError::Pause(e) => {
            let code = match e {
                PauseError::NotPaused(_) => StatusCode::NOT_FOUND,
                PauseError::Ledger(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            (code, e.to_string())
        }
    }
}

fn quarantine_error(e: QuarantineError) -> (StatusCode, String) {
    let code = match &e {
        QuarantineError::NotFound(_) => StatusCode::NOT_FOUND,
        QuarantineError::NotHeld { .. } => StatusCode::CONFLICT,
        QuarantineError::Ledger(_) | QuarantineError::Unsealable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        QuarantineError::Classify(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (code, e.to_string())
}

/// Tools served but described by no manifest: every call to them is quarantined.
/// (server, tool, exposed name, definition hash).
fn unclassified(web: &Web) -> Vec<(String, String, String, String)> {
    let setup = web.live.setup();
    web.servers
        .tools()
        .iter()
        .filter(|t| setup.manifests.get(&t.server, &t.name).is_none())
        .map(|t| {
            (
                t.server.clone(),
                t.name.clone(),
                t.exposed.clone(),
                t.definition_hash.clone(),
            )
        })
        .collect()
}

/// `GET /review/{token}/state`: everything the page shows, as JSON, and what deciding each
/// matter requires beyond a link (`requires`: by held call id, by pause call id, and for
/// classifying), so the CLI knows what it cannot decide.
pub(super) async fn state(
    State(web): State<Arc<Web>>,
    Extension(reviewer): Extension<Reviewer>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    // what the page shows needs what the page needs: a member of a role that signs in, signed in
    if let Err(redirect) = signin::review_page_session(&web, &reviewer, &token, &headers).await {
        return redirect;
    }
    let setup = web.live.setup();
    let held: Vec<Held> = web.desk.held().list();
    let pauses = web.desk.pauses().list();
    let need = |a: Ask<'_>| serde_json::to_value(a.requirement(&setup)).unwrap_or(Value::Null);
    let held_needs: Map<String, Value> = held
        .iter()
        .map(|h| (h.id.clone(), need(Ask::held(h, "release", &setup))))
        .collect();
    let pause_needs: Map<String, Value> = pauses
        .iter()
        .map(|p| (p.call_id.clone(), need(Ask::pause(p, None))))
        .collect();
    let held: Vec<Value> = held.iter().map(q::shown_json).collect();
    Json(json!({
        "held": held,
        "pauses": pauses,
        "unclassified": unclassified(&web).into_iter().map(|(s, t, e, h)| json!({"server": s, "tool": t, "exposed": e, "definition_hash": h})).collect::<Vec<_>>(),
        "requires": {"held": held_needs, "pauses": pause_needs, "classify": need(Ask::classify("", ""))},
    }))
    .into_response()
}

/// `POST /review/{token}/held/{id}`: `action=release` or `action=reject` (with `reason`).
pub(super) async fn held(
    State(web): State<Arc<Web>>,
    Extension(reviewer): Extension<Reviewer>,
    Path((_token, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let proof = Proof::of(&headers, form.get("totp"), review_scope(&reviewer.email));
    let out = decide_held(&web, &reviewer, &id, &form, proof).await;
    answer(&headers, "Done", out)
}

/// What the reviewer saw, from the form, if it is what the call is now: the page's `seen` (the
/// call's block as rendered) or the CLI's `seen_json` (its JSON as fetched).
fn seen(h: &Held, form: &HashMap<String, String>) -> Result<Seen, (StatusCode, String)> {
    let given = |k: &str| form.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let (given, of, now) = match (given("seen"), given("seen_json")) {
        (Some(s), _) => (s, "page", page::held_seen(h)),
        (None, Some(s)) => (s, "json", q::json_sha256(h)),
        (None, None) => {
            return Err((
                StatusCode::BAD_REQUEST,
                "the form does not say what you saw (no `seen`): open the review page again and decide from there; nothing was decided".into(),
            ));
        }
    };
    if given != now {
        return Err((
            StatusCode::CONFLICT,
            format!(
                "the call `{}` changed since you looked; reload the review page and decide again (nothing was decided)",
                h.id
            ),
        ));
    }
    Ok(Seen { sha256: now, of })
}

async fn decide_held(
    web: &Web,
    reviewer: &Reviewer,
    id: &str,
    form: &HashMap<String, String>,
    proof: Proof,
) -> Outcome {
    let action = form.get("action").map(String::as_str);
    if !matches!(action, Some("release" | "reject")) {
        return Err((
            StatusCode::BAD_REQUEST,
            "action must be `release` or `reject`".into(),
        ));
    }
    let h = web
        .desk
        .held()
        .get(id)
        .ok_or_else(|| quarantine_error(QuarantineError::NotFound(id.to_string())))?;
    if !h.is_held() {
        return Err(quarantine_error(QuarantineError::NotHeld {
            id: h.id.clone(),
            state: q::state_name(&h.status).to_string(),
        }));
    }
    let seen = seen(&h, form)?;
    let act = action.unwrap_or_default();
    let setup = web.live.setup();
    let by = decider(web, reviewer, &Ask::held(&h, act, &setup), proof).await?;
    let reason = form.get("reason").map_or("", |s| s.trim());
    let decision = if act == "release" {
        Act::Release { id, seen: &seen }
    } else {
        Act::Reject {
            id,
            reason,
            seen: &seen,
        }
    };
    let h = match web.desk.decide(&by, decision).await.map_err(desk_error)? {
        Decided::Held(h) => h,
        Decided::Resumed(_) => {
            return Err((StatusCode::INTERNAL_SERVER_ERROR, "not a held call".into()));
        }
    };
    let said = if let q::HeldStatus::Voided { reason, .. } = &h.status {
        format!("Released `{}`, but not run: {reason}.", h.id)
    } else if act == "release" {
        format!(
            "Released `{}`: it ran once; the agent can read its result with airlock_status.",
            h.id
        )
    } else {
        format!("Rejected `{}`: it will never run.", h.id)
    };
    Ok((said, q::shown_json(&h)))
}

/// `POST /review/{token}/resume`: resume autopilot for `scope`.
pub(super) async fn resume(
    State(web): State<Arc<Web>>,
    Extension(reviewer): Extension<Reviewer>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let scope = form.get("scope").map_or("", |s| s.trim());
    // the page names the pause it showed; the CLI may resume whatever pauses the scope
    let call = form
        .get("call_id")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    let proof = Proof::of(&headers, form.get("totp"), review_scope(&reviewer.email));
    let out = resumed(&web, &reviewer, scope, call, proof).await;
    answer(&headers, "Resumed", out)
}

async fn resumed(
    web: &Web,
    reviewer: &Reviewer,
    scope: &str,
    call: Option<&str>,
    proof: Proof,
) -> Outcome {
    let pause = web.desk.paused(scope, call).map_err(|_| {
        (
            StatusCode::NOT_FOUND,
            format!("autopilot is not paused for `{scope}`"),
        )
    })?;
    let requester = web.desk.held().get(&pause.call_id).map(|h| h.actor);
    let ask = Ask::pause(&pause, requester.as_deref());
    let by = decider(web, reviewer, &ask, proof).await?;
    let call = Some(pause.call_id.as_str());
    let p = match web
        .desk
        .decide(&by, Act::Resume { scope, call })
        .await
        .map_err(desk_error)?
    {
        Decided::Resumed(p) => p,
        Decided::Held(_) => {
            return Err((StatusCode::INTERNAL_SERVER_ERROR, "not a pause".into()));
        }
    };
    Ok((
        format!(
            "Autopilot resumed for `{}`; its counters start afresh. Calls held while it was paused stay held: release or reject them on the review page.",
            p.scope
        ),
        serde_json::to_value(&p).unwrap_or(Value::Null),
    ))
}

/// `GET /p/{id}/{token}`: one pause, from a person's mailed link (through the provider first
/// when resuming it requires signing in).
pub(super) async fn pause_page(
    State(web): State<Arc<Web>>,
    Path((id, token)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (p, r) = match web
        .desk
        .pauses()
        .verify_link(&id, &token, crate::instant::now())
    {
        Ok(found) => found,
        Err(why) => return message_page(StatusCode::NOT_FOUND, "Not paused", &why),
    };
    match signin::pause_page_session(&web, &p, &r, &token, &headers).await {
        Ok(session) => Html(page::pause_page(&web, &p, &r, session.as_ref())).into_response(),
        Err(redirect) => redirect,
    }
}

/// `POST /p/{id}/{token}`: resume that pause, as the link's person.
pub(super) async fn pause_resume(
    State(web): State<Arc<Web>>,
    Path((id, token)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (p, r) = match web
        .desk
        .pauses()
        .verify_link(&id, &token, crate::instant::now())
    {
        Ok(found) => found,
        Err(why) => return answer(&headers, "", Err((StatusCode::NOT_FOUND, why))),
    };
    let proof = Proof::of(&headers, form.get("totp"), pause_scope(&p.call_id));
    let out = resumed(&web, &r, &p.scope, Some(&p.call_id), proof).await;
    answer(&headers, "Resumed", out)
}

/// `GET /review/{token}`: the review page (through the provider first for a member of a role
/// that signs in).
pub(super) async fn page(
    State(web): State<Arc<Web>>,
    Extension(reviewer): Extension<Reviewer>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    match signin::review_page_session(&web, &reviewer, &token, &headers).await {
        Ok(session) => {
            Html(page::review_page(&web, &reviewer, &token, session.as_ref())).into_response()
        }
        Err(redirect) => redirect,
    }
}
