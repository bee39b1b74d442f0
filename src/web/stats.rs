//! The read-only stats page (`/review/{token}/stats`): `airlock stats`, in a browser.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::{Web, esc, message_page, shell};
use crate::stats::{self, Group};

fn cell(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

fn table(title: &str, groups: &std::collections::BTreeMap<String, Group>) -> String {
    let mut h = format!(
        "<h2>{}</h2><table><tr><th></th><th>requests</th><th>approve</th><th>modify</th><th>deny</th><th>escalate</th><th>timeout</th><th>approve %</th><th>median</th><th>p90</th></tr>",
        esc(title)
    );
    for (name, g) in groups {
        let dur = |s: f64| {
            humantime::format_duration(std::time::Duration::from_secs_f64(s.max(0.0).round()))
                .to_string()
        };
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            g.requests,
            g.approve,
            g.modify,
            g.deny,
            g.escalate,
            g.timeout,
            cell(g.approve_rate, |r| format!("{:.0}%", r * 100.0)),
            esc(&cell(g.median_secs_to_decide, dur)),
            esc(&cell(g.p90_secs_to_decide, dur)),
        ));
    }
    h.push_str("</table>");
    h
}

/// `GET /review/{token}/stats`.
pub(super) async fn page(
    State(web): State<Arc<Web>>,
    axum::Extension(reviewer): axum::Extension<crate::reviewer::Reviewer>,
    axum::extract::Path(token): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let session = super::review::signin::review_page_session(&web, &reviewer, &token, &headers);
    if let Err(redirect) = session.await {
        return redirect;
    }
    let mut rows = Vec::new();
    if let Err(e) = web.ledger.records(|r| {
        if let Ok(r) = r {
            rows.push(r);
        }
    }) {
        return message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Ledger unavailable",
            &e.to_string(),
        );
    }
    let s = stats::compute(&rows, None);
    let mut html = format!(
        "<h1>Approval queue</h1><p class=\"who\">{} approval request(s). Read-only.</p>",
        s.requests
    );
    html.push_str("<h2>Flags</h2>");
    if s.flags.is_empty() {
        html.push_str("<p>none</p>");
    }
    for f in &s.flags {
        html.push_str(&format!(
            "<p class=\"state\"><b>{}</b> {} — {}</p>",
            esc(f.kind),
            esc(&f.subject),
            esc(&f.detail)
        ));
    }
    html.push_str(&table("By role", &s.by_role));
    html.push_str(&table("By approver", &s.by_approver));
    html.push_str(&table("By class", &s.by_class));
    html.push_str("<h2>Queue depth (most open at once, by hour)</h2><table>");
    for (hour, depth) in s.queue_depth.iter().rev().take(48) {
        html.push_str(&format!("<tr><td>{}</td><td>{depth}</td></tr>", esc(hour)));
    }
    html.push_str("</table>");
    Html(shell("Approval queue", &html)).into_response()
}
