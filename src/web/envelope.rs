//! The approval page: the envelope as an approver sees it, and the hash of exactly what it shows.
//!
//! Laid out for a phone (390×844): the summary as the heading, a one-line state, then the form —
//! comment, Approve / Deny / Escalate — and only then the details, hashes folded away, the raw
//! arguments and Modify under `<details>`. Nothing but the heading (with its warning and what its
//! highlight means) and the state precedes the form.
//! The heading and the details are deterministic (no clock): [`rendered_hash`] records them as the
//! `seen` hash; anything relative to now sits in the state line, outside it. No script, ever.
//!
//! Text is shown through [`crate::shown`]: every character that hides or reorders text as its
//! escape (`\u202E`), so the hash covers the escaped text; a warning line under the heading when
//! anything is escaped or mixes scripts; the agent's values highlighted in the summary and the
//! arguments under "Written by the agent". Nothing is ever made a link.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::esc;
use crate::approval::View;
use crate::approval::state::{Outcome, Status};
use crate::canonical;
use crate::envelope::{Envelope, RedactedEdit, exact_instant};
use crate::shown::{self, Finding, request};
use crate::summary::{default_summary, readable_time};

/// The heading: the summary (the default wording for envelopes stored without one), its values
/// the agent wrote highlighted, with the tool that runs when the summary does not name it; then a
/// warning line when anything in the request hides or imitates characters, and what the
/// highlight means.
pub fn heading_html(e: &Envelope) -> String {
    let (summary, spans) = if e.summary.is_empty() {
        (default_summary(&e.tool, &e.target), Vec::new())
    } else {
        (e.summary.clone(), request::summary_spans(e))
    };
    let tool = if summary.contains(&e.tool) {
        String::new()
    } else {
        format!(" <small><code>{}</code></small>", esc(&e.tool))
    };
    let mut html = format!("<h1>{}{tool}</h1>", marked_html(&summary, &spans));
    if let Some(w) = shown::warning(&request::flags(e)) {
        html.push_str(&format!("<p class=\"warn\">⚠ {}</p>", esc(&w)));
    }
    if !spans.is_empty() {
        html.push_str(&format!(
            "<p class=\"note\"><span class=\"agent\">Highlighted</span> text was written by the agent ({}), not by Airlock.</p>",
            esc(&e.actor)
        ));
    }
    html
}

/// One line, the agent's pieces (`spans`) in a highlight.
fn marked_html(s: &str, spans: &[std::ops::Range<usize>]) -> String {
    request::pieces(s, spans)
        .into_iter()
        .map(|(text, agent)| {
            let text = esc(&shown::line(text));
            if agent {
                format!("<span class=\"agent\">{text}</span>")
            } else {
                text
            }
        })
        .collect()
}

/// The envelope's details. Deterministic, so its hash records what was shown.
pub fn envelope_html(e: &Envelope) -> String {
    details_html(e, None)
}

/// [`envelope_html`] with the arguments shown as `revealed` (redacted values put back for a role
/// that may see them) instead of as recorded.
fn details_html(e: &Envelope, revealed: Option<&Map<String, Value>>) -> String {
    let revealed = revealed.map(|r| Value::Object(r.clone()));
    let evidence = if e.evidence.is_empty() {
        "none".to_string()
    } else {
        e.evidence
            .iter()
            .map(|r| {
                format!(
                    "{} = {}",
                    shown::line(&r.field),
                    shown::json(&canonical::to_string(&r.value))
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rows = vec![
        (
            "Action",
            format!(
                "<code>{}</code> on <code>{}</code>",
                esc(&e.tool),
                esc(&e.server)
            ),
        ),
        (
            "Arguments",
            arguments_html(revealed.as_ref().unwrap_or(&e.arguments), &e.actor),
        ),
        ("Business impact", esc(&e.impact)),
        (
            "Why approval",
            format!(
                "{} <small>(rule <code>{}</code>, policy {})</small>",
                prose(&e.reason),
                esc(&e.rule),
                esc(&e.policy_version)
            ),
        ),
        ("Reversal", reversal_html(&e.reversal)),
        (
            "Expires",
            format!(
                "{}, then {}",
                time_html(e.expires_at),
                esc(e.timeout_words())
            ),
        ),
        ("Class", format!("<code>{}</code>", esc(&e.class))),
        (
            "Requested by",
            format!("{}, {}", esc(&e.actor), time_html(e.requested_at)),
        ),
        ("Target", esc(&e.target)),
        ("Evidence", esc(&evidence)),
        (
            "Decided by",
            format!(
                "role <code>{}</code>, {} approval(s) needed",
                esc(&e.role),
                e.min_approvals
            ),
        ),
    ];
    if let Some(r) = &e.redacted {
        // after a modification: which redacted values are the agent's and which the approver's
        rows.insert(2, ("Redacted values", redacted_edit_html(r)));
    }
    let mut html = String::from("<dl class=\"envelope\">");
    for (k, v) in rows {
        // the agent's own values: its arguments, and evidence from them or its `_meta`
        let by_agent = k == "Arguments" || (k == "Evidence" && !e.evidence.is_empty());
        let class = if by_agent { " class=\"agent\"" } else { "" };
        html.push_str(&format!("<dt>{k}</dt><dd{class}>{v}</dd>"));
    }
    html.push_str(&format!(
        "</dl><details class=\"hash\"><summary>Hashes</summary><p>Envelope {}<br>Arguments sha256 {}</p></details>",
        esc(&e.hash()),
        esc(&e.arguments_sha256)
    ));
    html
}

/// Which redacted values a modification kept as the agent sent them and which it replaced.
fn redacted_edit_html(r: &RedactedEdit) -> String {
    let list = |ps: &[String]| match ps.is_empty() {
        true => "none".to_string(),
        false => ps
            .iter()
            .map(|p| format!("<code>{}</code>", esc(p)))
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!(
        "kept as sent: {}; replaced by the approver: {}",
        list(&r.kept),
        list(&r.replaced)
    )
}

/// SHA-256 of exactly the envelope HTML a page shows: its heading, then its details.
pub fn rendered_hash(e: &Envelope) -> String {
    let shown = format!("{}{}", heading_html(e), envelope_html(e));
    canonical::sha256_hex(shown.as_bytes())
}

/// What the `seen` hash of this view is: [`rendered_hash`] of the page with markers — which
/// commit to the values — marked as revealed when the view showed them. Never a hash over a
/// revealed value itself (it could be guessed from the ledger).
pub fn view_hash(v: &View) -> String {
    let e = &v.approval.envelope;
    match v.revealed {
        None => rendered_hash(e),
        Some(_) => {
            let shown = format!("{}{}\0revealed", heading_html(e), envelope_html(e));
            canonical::sha256_hex(shown.as_bytes())
        }
    }
}

/// The approval page for one approver's link; `auth_fields` (who is signed in, the second
/// factor's code field) go into the form above the buttons.
pub(super) fn page(v: &View, rendered_at: i64, nonce: &str, auth_fields: &str) -> String {
    let a = &v.approval;
    let e = &a.envelope;
    let already = a.used.iter().any(|u| u.eq_ignore_ascii_case(&v.approver));
    let now = DateTime::from_timestamp_secs(rendered_at).unwrap_or_else(crate::instant::now);
    let mut state = state_words(v, now);
    if already {
        state.push_str(" Your decision on this request is recorded.");
    }
    let details = details_html(e, v.revealed.as_ref());
    let main = if a.is_pending() && !already {
        form_html(v, rendered_at, nonce, &details, auth_fields)
    } else {
        details
    };
    let body = format!(
        "{heading}<p class=\"state\">{state}</p>{main}<p class=\"who\">For {approver} · approval {id}</p>",
        heading = heading_html(e),
        state = esc(&state),
        approver = esc(&v.approver),
        id = esc(&a.id),
    );
    let title = if e.summary.is_empty() {
        default_summary(&e.tool, &e.target)
    } else {
        e.summary.clone()
    };
    super::shell(&format!("Approve? {title}"), &body)
}

/// The one form: hidden fields, comment and the decision buttons first, then the details and
/// Modify (which needs the same hidden fields).
fn form_html(v: &View, rendered_at: i64, nonce: &str, details: &str, auth_fields: &str) -> String {
    let e = &v.approval.envelope;
    // JSON escapes for hidden characters: what the textarea submits parses to the same arguments
    let args = shown::json(&serde_json::to_string_pretty(&e.arguments).unwrap_or_default());
    format!(
        r#"<form method="post">
<input type="hidden" name="nonce" value="{nonce}"><input type="hidden" name="rendered_at" value="{rendered_at}"><input type="hidden" name="seen" value="{seen}">
<label for="comment">Comment (optional, recorded with your decision)</label>
<textarea id="comment" name="comment" rows="2"></textarea>
{auth_fields}
<div class="buttons">
<button name="action" value="approve" class="approve">Approve</button>
<button name="action" value="deny" class="deny">Deny</button>
<button name="action" value="escalate"{esc_disabled}>Escalate</button>
</div>
{details}
<details><summary>Modify the arguments</summary>
<label for="arguments">Edited arguments (JSON). They are checked against the tool's input schema and re-decided; your approval binds to exactly these.</label>
<textarea id="arguments" name="arguments" rows="8">{args}</textarea>
<button name="action" value="modify">Modify</button>
</details>
</form>"#,
        nonce = esc(nonce),
        seen = view_hash(v),
        esc_disabled = if v.can_escalate {
            ""
        } else {
            " disabled title=\"this role has no escalate_to\""
        },
        args = esc(&args),
    )
}

/// Where the approval stands, in one line; a pending one says how long is left.
fn state_words(v: &View, now: DateTime<Utc>) -> String {
    let a = &v.approval;
    let e = &a.envelope;
    match &a.status {
        Status::Pending => format!(
            "Waiting for a decision ({} of {} approvals so far). Expires {}.",
            a.approved_by.len(),
            e.min_approvals,
            relative(now, e.expires_at)
        ),
        Status::Executing { .. } => "Approved; the call is running.".into(),
        Status::Done(Outcome::Executed { .. }) => "Approved and executed.".into(),
        Status::Done(Outcome::Denied { by, .. }) => format!("Denied ({by})."),
        Status::Done(Outcome::Voided { reason }) => format!("Voided: {reason}. Nothing ran."),
        Status::Done(Outcome::Expired) => "Expired without a decision; nothing ran.".into(),
        Status::Done(Outcome::Failed { error }) => {
            format!("Approved, but it could not run: {error}")
        }
        Status::Done(Outcome::OutcomeUnknown) => {
            "Approved; outcome unknown (Airlock stopped while it ran). It will not run again."
                .into()
        }
    }
}

/// `in 29 min`, `in 2 h 5 min`, `in 3 days`, or `now`.
pub(super) fn relative(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let mins = (then - now).num_minutes();
    match mins {
        m if m < 1 => "now".into(),
        m if m < 60 => format!("in {m} min"),
        m if m < 48 * 60 => match m % 60 {
            0 => format!("in {} h", m / 60),
            r => format!("in {} h {r} min", m / 60),
        },
        m => format!("in {} days", m / (24 * 60)),
    }
}

/// An instant, readable, with the exact UTC second beside it (and in `datetime`).
pub(super) fn time_html(t: DateTime<Utc>) -> String {
    format!(
        "{} <small><time datetime=\"{}\">{}</time></small>",
        esc(&readable_time(t)),
        esc(&crate::instant::rfc3339(&t)),
        esc(&exact_instant(t))
    )
}

/// The arguments as a key/value list (strings as they are, anything else as JSON), every hidden
/// character as its escape and each flagged value marked, under a line saying who wrote them; the
/// raw JSON folded away.
fn arguments_html(args: &Value, actor: &str) -> String {
    // a redacted value as its marker: `[redacted 3f9a1c2b]`
    let args = &crate::redact::for_people(args);
    let pretty = serde_json::to_string_pretty(args).unwrap_or_default();
    let list = match args.as_object() {
        Some(o) if !o.is_empty() => {
            let mut html = String::from("<dl class=\"args\">");
            for (k, v) in o {
                let shown = match v {
                    Value::String(s) => esc(&shown::line(s)),
                    v => format!(
                        "<code>{}</code>",
                        esc(&shown::json(&canonical::to_string(v)))
                    ),
                };
                html.push_str(&format!(
                    "<dt>{}</dt><dd>{shown}{}</dd>",
                    esc(&shown::line(k)),
                    flag_html(k, v)
                ));
            }
            html.push_str("</dl>");
            html
        }
        _ => "none".to_string(),
    };
    format!(
        "<small>Written by the agent ({}), not by Airlock:</small>{list}<details><summary>As JSON</summary><pre>{}</pre></details>",
        esc(actor),
        esc(&shown::json(&pretty))
    )
}

/// ` ⚠ …` after an argument whose name or value hides or imitates characters.
fn flag_html(key: &str, v: &Value) -> String {
    let mut found = shown::check(key);
    for s in request::strings(v) {
        found.extend(shown::check(s));
    }
    let hidden = found.iter().any(|f| matches!(f, Finding::Hidden { .. }));
    let mixed = found
        .iter()
        .any(|f| matches!(f, Finding::MixedScript { .. }));
    let words = match (hidden, mixed) {
        (true, true) => "hidden characters shown as escapes; look-alike letters",
        (true, false) => "hidden characters shown as escapes",
        (false, true) => "look-alike letters",
        (false, false) => return String::new(),
    };
    format!(" <small class=\"flag\">⚠ {words}</small>")
}

/// `tool:NAME` / `none: why`, in words.
fn reversal_html(r: &str) -> String {
    if let Some(tool) = r.strip_prefix("tool:") {
        format!("undone by <code>{}</code>", esc(tool.trim()))
    } else if let Some(why) = r.strip_prefix("none:") {
        format!("cannot be undone: {}", esc(why.trim()))
    } else {
        esc(r)
    }
}

/// Prose for a page: escaped, code spans (`` `finance` ``) as `<code>`, no stray backticks.
pub(crate) fn prose(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    if parts.len() % 2 == 0 {
        // an unpaired backtick: drop them all
        return esc(&s.replace('`', ""));
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", esc(p))
            } else {
                esc(p)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
