//! The review page (`/review/{token}`): held calls grouped by tool, tools no manifest describes,
//! and paused autopilot scopes, with the forms that classify a tool, release or reject a held
//! call, and resume a scope. The same endpoints answer JSON to the CLI (`Accept:
//! application/json`). The pause page (`/p/{id}/{token}`) is the mailed link of one pause.
//! Held calls' arguments are shown as [`crate::shown`] shows text: hidden characters escaped,
//! a warning line, marked as the agent's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use axum::Extension;
use time::OffsetDateTime;

use super::{Web, esc, message_page, shell};
use crate::desk::{Act, DecideError, Decided};
use crate::drift::Pause;
use crate::drift::pauses::PauseError;
use crate::ledger::NewRow;
use crate::quarantine::classify::{self, Classification, Subject};
use crate::quarantine::{Held, QuarantineError};
use crate::reviewer::Reviewer;
use crate::shown::{self, request};

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
pub(super) async fn admit(
    State(web): State<Arc<Web>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let token = params.get("token").map_or("", String::as_str);
    match web.desk.held().reviewer(token, OffsetDateTime::now_utc()) {
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
        QuarantineError::Ledger(_) => StatusCode::SERVICE_UNAVAILABLE,
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

/// `GET /review/{token}/state`: everything the page shows, as JSON.
pub(super) async fn state(State(web): State<Arc<Web>>) -> Response {
    let held: Vec<Held> = web.desk.held().list();
    Json(json!({
        "held": held,
        "pauses": web.desk.pauses().list(),
        "unclassified": unclassified(&web).into_iter().map(|(s, t, e, h)| json!({"server": s, "tool": t, "exposed": e, "definition_hash": h})).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// `POST /review/{token}/classify`: write a manifest for a tool (or, with `mode=print`, show it).
pub(super) async fn classify(
    State(web): State<Arc<Web>>,
    Extension(reviewer): Extension<Reviewer>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let out = classify_tool(&web, &reviewer, &form).await;
    answer(&headers, "Classified", out)
}

async fn classify_tool(web: &Web, reviewer: &Reviewer, form: &HashMap<String, String>) -> Outcome {
    let f = |k: &str| form.get(k).map(String::as_str).unwrap_or("").to_string();
    let by = match web.desk.decide(reviewer, Act::Classify).await {
        Ok(Decided::Classify(by)) => by,
        Ok(_) => {
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "not a classification".into(),
            ));
        }
        Err(e) => return Err(desk_error(e)),
    };
    let (server, tool) = (f("server"), f("tool"));
    let setup = web.live.setup();
    let def = web.servers.route_of(&server, &tool).ok_or((
        StatusCode::NOT_FOUND,
        format!("`{tool}` is not served by `{server}` right now"),
    ))?;
    // The definition the reviewer saw is the one pinned: if it changed since, they look again.
    let seen = f("definition_hash");
    if !seen.is_empty() && seen != def.definition_hash {
        return Err((
            StatusCode::CONFLICT,
            format!(
                "`{tool}` changed since you looked (definition {} now); reload and review it again",
                def.definition_hash
            ),
        ));
    }
    let serves = |t: &str| web.servers.route_of(&server, t).is_some();
    let c = Classification {
        class: f("class"),
        target: f("target"),
        impact: f("impact"),
        reversal: f("reversal"),
        by: by.who.clone(),
    };
    let subject = Subject {
        server: &server,
        tool: &tool,
        definition_hash: Some(&def.definition_hash),
        serves: &serves,
    };
    let text =
        classify::render(&setup, subject, &c).map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e))?;
    if f("mode") == "print" {
        return Ok((text.clone(), json!({"manifest": text})));
    }
    let path = classify::path_for(&setup, &server, &tool);
    if path.exists() {
        return Err((
            StatusCode::CONFLICT,
            format!("{} already exists; edit it instead", path.display()),
        ));
    }
    // Recorded first: a manifest that puts a tool on a path always has its reviewer on record.
    let row = NewRow::now(
        "tool_classified",
        "",
        by.record(json!({"server": server, "tool": tool, "class": c.class, "target": c.target, "impact": c.impact, "reversal": c.reversal, "definition_hash": def.definition_hash, "file": path.display().to_string()})),
    );
    web.ledger.append(vec![row]).await.map_err(|e| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the ledger could not record the classification, so no manifest was written: {e}"
            ),
        )
    })?;
    let path = match classify::write(&setup, &server, &tool, &text) {
        Ok(p) => p,
        Err(e) => {
            let failed = NewRow::now(
                "tool_classify_failed",
                "",
                json!({"server": server, "tool": tool, "error": e}),
            );
            if let Err(le) = web.ledger.append(vec![failed]).await {
                tracing::error!(error = %le, "cannot record a failed classification");
            }
            return Err((StatusCode::CONFLICT, e));
        }
    };
    Ok((
        format!(
            "Wrote {}. Airlock reloads manifests within a few seconds; calls of `{tool}` then follow class `{}`. Held calls stay held: release or reject them on the review page.",
            path.display(),
            c.class
        ),
        json!({"file": path.display().to_string(), "manifest": text}),
    ))
}

/// `POST /review/{token}/held/{id}`: `action=release` or `action=reject` (with `reason`).
pub(super) async fn held(
    State(web): State<Arc<Web>>,
    Extension(reviewer): Extension<Reviewer>,
    Path((_token, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let out = decide_held(&web, &reviewer, &id, &form).await;
    answer(&headers, "Done", out)
}

async fn decide_held(
    web: &Web,
    reviewer: &Reviewer,
    id: &str,
    form: &HashMap<String, String>,
) -> Outcome {
    let action = form.get("action").map(String::as_str);
    if !matches!(action, Some("release" | "reject")) {
        return Err((
            StatusCode::BAD_REQUEST,
            "action must be `release` or `reject`".into(),
        ));
    }
    let act = action.unwrap_or_default();
    let reason = form.get("reason").map_or("", |s| s.trim());
    let decision = if act == "release" {
        Act::Release { id }
    } else {
        Act::Reject { id, reason }
    };
    let h = match web
        .desk
        .decide(reviewer, decision)
        .await
        .map_err(desk_error)?
    {
        Decided::Held(h) => h,
        _ => return Err((StatusCode::INTERNAL_SERVER_ERROR, "not a held call".into())),
    };
    let said = if act == "release" {
        format!(
            "Released `{}`: it ran once; the agent can read its result with airlock_status.",
            h.id
        )
    } else {
        format!("Rejected `{}`: it will never run.", h.id)
    };
    Ok((said, serde_json::to_value(&h).unwrap_or(Value::Null)))
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
    let out = resumed(&web, &reviewer, scope, call).await;
    answer(&headers, "Resumed", out)
}

async fn resumed(web: &Web, reviewer: &Reviewer, scope: &str, call: Option<&str>) -> Outcome {
    let p = match web
        .desk
        .decide(reviewer, Act::Resume { scope, call })
        .await
        .map_err(desk_error)?
    {
        Decided::Resumed(p) => p,
        _ => return Err((StatusCode::INTERNAL_SERVER_ERROR, "not a pause".into())),
    };
    Ok((
        format!(
            "Autopilot resumed for `{}`; its counters start afresh. Calls held while it was paused stay held: release or reject them on the review page.",
            p.scope
        ),
        serde_json::to_value(&p).unwrap_or(Value::Null),
    ))
}

/// `GET /p/{id}/{token}`: one pause, from a person's mailed link.
pub(super) async fn pause_page(
    State(web): State<Arc<Web>>,
    Path((id, token)): Path<(String, String)>,
) -> Response {
    let (p, r) = match web
        .desk
        .pauses()
        .admit(&id, &token, OffsetDateTime::now_utc())
    {
        Ok(found) => found,
        Err(why) => return message_page(StatusCode::NOT_FOUND, "Not paused", &why),
    };
    let body = format!(
        "<h1>Autopilot paused</h1>{}<form method=\"post\"><p class=\"who\">You are {}; resuming is recorded with your name.</p><div class=\"buttons\"><button class=\"approve\">Resume autopilot</button></div></form>",
        pause_html(&p),
        esc(&r.email)
    );
    Html(shell("Autopilot paused", &body)).into_response()
}

/// `POST /p/{id}/{token}`: resume that pause, as the link's person.
pub(super) async fn pause_resume(
    State(web): State<Arc<Web>>,
    Path((id, token)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (p, r) = match web
        .desk
        .pauses()
        .admit(&id, &token, OffsetDateTime::now_utc())
    {
        Ok(found) => found,
        Err(why) => return answer(&headers, "", Err((StatusCode::NOT_FOUND, why))),
    };
    let out = resumed(&web, &r, &p.scope, Some(&p.call_id)).await;
    answer(&headers, "Resumed", out)
}

fn pause_html(p: &Pause) -> String {
    format!(
        "<dl class=\"envelope\"><dt>Scope</dt><dd><code>{}</code></dd><dt>Limit</dt><dd>{}</dd><dt>Paused since</dt><dd>{}</dd><dt>Tripped by</dt><dd>call <code>{}</code> (held for review)</dd></dl>",
        esc(&p.scope),
        esc(&p.limit),
        super::envelope::time_html(p.since),
        esc(&p.call_id)
    )
}

/// `GET /review/{token}`: the review page.
pub(super) async fn page(
    State(web): State<Arc<Web>>,
    Extension(reviewer): Extension<Reviewer>,
    Path(token): Path<String>,
) -> Response {
    let setup = web.live.setup();
    let mut html = format!(
        "<h1>Review</h1><p class=\"who\">You are {}: what you decide here is recorded in the ledger with your name. <a href=\"/review/{}/stats\">Approval queue stats</a></p>",
        esc(&reviewer.email),
        esc(&token)
    );
    let pauses = web.desk.pauses().list();
    html.push_str(&format!("<h2>Paused autopilot ({})</h2>", pauses.len()));
    for p in &pauses {
        html.push_str(&pause_html(p));
        html.push_str(&format!(
            "<form method=\"post\" action=\"/review/{t}/resume\"><input type=\"hidden\" name=\"scope\" value=\"{s}\"><input type=\"hidden\" name=\"call_id\" value=\"{c}\"><div class=\"buttons\"><button class=\"approve\">Resume autopilot for {s}</button></div></form>",
            t = esc(&token),
            s = esc(&p.scope),
            c = esc(&p.call_id)
        ));
    }
    let mut groups: BTreeMap<(String, String), Vec<Held>> = BTreeMap::new();
    for h in web.desk.held().list().into_iter().filter(Held::is_held) {
        groups
            .entry((h.server.clone(), h.tool_name.clone()))
            .or_default()
            .push(h);
    }
    for (server, tool, _, _) in unclassified(&web) {
        groups.entry((server, tool)).or_default();
    }
    html.push_str(&format!("<h2>Quarantined tools ({})</h2>", groups.len()));
    let classes: String = setup
        .policy
        .classes
        .keys()
        .map(|c| format!("<option>{}</option>", esc(c)))
        .collect();
    for ((server, tool), calls) in &groups {
        let def = web.servers.route_of(server, tool);
        html.push_str(&format!(
            "<h3><code>{}</code> on <code>{}</code> — {} held call(s)</h3>",
            esc(tool),
            esc(server),
            calls.len()
        ));
        if let Some(d) = &def {
            let description = d
                .definition
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            let annotations = d
                .definition
                .get("annotations")
                .map(|a| a.to_string())
                .unwrap_or_else(|| "none".into());
            let schema = d
                .definition
                .get("inputSchema")
                .map(|s| shown::json(&serde_json::to_string_pretty(s).unwrap_or_default()))
                .unwrap_or_default();
            html.push_str(&format!(
                "<dl class=\"envelope\"><dt>Description</dt><dd>{}</dd><dt>Annotations</dt><dd>{} <small>(shown, never trusted for gating)</small></dd><dt>Input schema</dt><dd><pre>{}</pre></dd><dt>Definition</dt><dd><code>{}</code></dd></dl>",
                esc(description),
                esc(&annotations),
                esc(&schema),
                esc(&d.definition_hash)
            ));
        }
        match setup.manifests.get(server, tool) {
            Some(m) => html.push_str(&format!(
                "<p>Manifest: <code>{}</code> (class <code>{}</code>). To change how it is gated (or pin a new definition), edit that file.</p>",
                esc(&m.origin),
                esc(&m.class)
            )),
            None if def.is_some() => html.push_str(&format!(
                "<details open><summary>Classify this tool (writes <code>{file}</code>)</summary><form method=\"post\" action=\"/review/{t}/classify\"><input type=\"hidden\" name=\"server\" value=\"{s}\"><input type=\"hidden\" name=\"tool\" value=\"{n}\"><input type=\"hidden\" name=\"definition_hash\" value=\"{h}\"><label>Class</label><select name=\"class\">{classes}</select><label>Target (system or record it touches)</label><input name=\"target\" required><label>Business impact</label><input name=\"impact\" required><label>Reversal (<code>tool:NAME</code> or <code>none: why</code>)</label><input name=\"reversal\" required><div class=\"buttons\"><button class=\"approve\">Write manifest</button></div></form></details>",
                file = esc(&classify::path_for(&setup, server, tool).display().to_string()),
                t = esc(&token),
                s = esc(server),
                n = esc(tool),
                h = esc(def.as_ref().map_or("", |d| d.definition_hash.as_str())),
            )),
            None => html.push_str("<p>Its server does not serve it right now, so it cannot be classified here.</p>"),
        }
        for h in calls {
            html.push_str(&format!(
                "<div class=\"state\">{call}<form method=\"post\" action=\"/review/{t}/held/{id}\"><label>Reason (for a rejection)</label><input name=\"reason\"><div class=\"buttons\"><button name=\"action\" value=\"release\" class=\"approve\">Release (run once)</button><button name=\"action\" value=\"reject\" class=\"deny\">Reject</button></div></form></div>",
                call = held_call_html(h),
                id = esc(&h.id),
                t = esc(&token),
            ));
        }
    }
    Html(shell("Review", &html)).into_response()
}

/// One held call as a reviewer reads it: who, when and why; a warning line when its arguments
/// or reason hide or imitate characters; its arguments (escaped JSON) marked as the agent's.
fn held_call_html(h: &Held) -> String {
    let args = Value::Object(h.arguments.clone());
    let mut flags = request::text_flags("the reason", &h.reason);
    flags.extend(request::argument_flags(&args));
    let warn = shown::warning(&flags)
        .map(|w| format!("<p class=\"warn\">⚠ {}</p>", esc(&w)))
        .unwrap_or_default();
    format!(
        "<p>Call <code>{id}</code> by {actor}, held {at}<br><small>{why}</small></p>{warn}<small>Arguments written by the agent ({actor}), not by Airlock:</small><pre class=\"agent\">{args}</pre>",
        id = esc(&h.id),
        actor = esc(&h.actor),
        at = super::envelope::time_html(h.held_at),
        why = super::envelope::prose(&h.reason),
        args = esc(&shown::json(
            &serde_json::to_string_pretty(&args).unwrap_or_default()
        )),
    )
}
