//! `POST /review/{token}/classify`: a reviewer classifies a tool no manifest describes — the
//! manifest written (or, with `mode=print`, shown for a pull request), recorded, on the
//! authority the desk checks. It must never overwrite a manifest.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::signin::{Ask, Proof, decider, review_scope};
use super::{Outcome, Web, answer};
use crate::ledger::{NewRow, Row, row};
use crate::quarantine::classify::{self, Classification, Subject};
use crate::reviewer::Reviewer;

/// `POST /review/{token}/classify`: write a manifest for a tool (or, with `mode=print`, show it).
pub(in crate::web) async fn classify(
    State(web): State<Arc<Web>>,
    Extension(reviewer): Extension<Reviewer>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let proof = Proof::of(&headers, form.get("totp"), review_scope(&reviewer.email));
    let out = classify_tool(&web, &reviewer, &form, proof).await;
    answer(&headers, "Classified", out)
}

async fn classify_tool(
    web: &Web,
    reviewer: &Reviewer,
    form: &HashMap<String, String>,
    proof: Proof,
) -> Outcome {
    let f = |k: &str| form.get(k).map(String::as_str).unwrap_or("").to_string();
    let (server, tool) = (f("server"), f("tool"));
    let by = decider(web, reviewer, &Ask::classify(&server, &tool), proof).await?;
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
        "",
        Row::ToolClassified(row::ToolClassified {
            server: server.clone(),
            tool: tool.clone(),
            class: c.class.clone(),
            target: c.target.clone(),
            impact: c.impact.clone(),
            reversal: c.reversal.clone(),
            definition_hash: def.definition_hash.clone(),
            file: path.display().to_string(),
            by: by.record(),
        }),
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
                "",
                Row::ToolClassifyFailed(row::ToolClassifyFailed {
                    server: server.clone(),
                    tool: tool.clone(),
                    error: e.clone(),
                }),
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
