//! The review page and a pause's page as HTML: paused scopes with their resume forms, held
//! calls grouped by tool (the tool's definition, its manifest or the form that classifies it,
//! each held call with its release/reject form), and what each form needs of its decider (a
//! TOTP code field when the matter requires one). Each held call's block is hashed as rendered
//! ([`held_seen`]) into its form's `seen`, so a decision records what its reviewer read.
//!
//! Pure rendering: it must never change state, serve script, or make a link of any text it
//! shows; every text goes through `esc` (hidden characters escaped).

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::envelope::{prose, time_html};
use super::super::{Web, esc, shell};
use super::signin::Ask;
use crate::auth::session::Session;
use crate::config::Setup;
use crate::drift::Pause;
use crate::policy::SecondFactor;
use crate::quarantine::Held;
use crate::quarantine::classify;
use crate::reviewer::Reviewer;
use crate::shown::{self, request};

/// The TOTP field of a form whose matter requires a code (none otherwise).
fn code_field(ask: &Ask<'_>, setup: &Setup) -> &'static str {
    if ask.requirement(setup).second_factor == Some(SecondFactor::Totp) {
        "<label>Code from your authenticator app (required to decide)<input name=\"totp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{6}\" maxlength=\"6\" required></label>"
    } else {
        ""
    }
}

fn signed_in_line(session: Option<&Session>) -> String {
    session.map_or_else(String::new, |s| {
        format!(
            "<p class=\"who\">Signed in as {} with your company account.</p>",
            esc(&s.email)
        )
    })
}

/// `GET /p/{id}/{token}`: one pause and its resume form.
pub(super) fn pause_page(web: &Web, p: &Pause, r: &Reviewer, session: Option<&Session>) -> String {
    let setup = web.live.setup();
    let body = format!(
        "<h1>Autopilot paused</h1>{}{}<form method=\"post\"><p class=\"note\">You are {}; resuming is recorded with your name.</p>{}<div class=\"buttons\"><button class=\"approve\">Resume autopilot</button></div></form>",
        pause_html(p),
        signed_in_line(session),
        esc(&r.email),
        code_field(&Ask::pause(p, None), &setup),
    );
    shell("Autopilot paused", &body)
}

fn pause_html(p: &Pause) -> String {
    format!(
        "<dl class=\"envelope\"><dt>Scope</dt><dd><code>{}</code></dd><dt>Limit</dt><dd>{}</dd><dt>Paused since</dt><dd>{}</dd><dt>Tripped by</dt><dd>call <code>{}</code> (held for review)</dd></dl>",
        esc(&p.scope),
        esc(&p.limit),
        time_html(p.since),
        esc(&p.call_id)
    )
}

/// `GET /review/{token}`: the review page of `reviewer`.
pub(super) fn review_page(
    web: &Web,
    reviewer: &Reviewer,
    token: &str,
    session: Option<&Session>,
) -> String {
    let setup = web.live.setup();
    let mut html = format!(
        "<h1>Review</h1><p class=\"note\">You are {}: what you decide here is recorded in the ledger with your name. <a href=\"/review/{}/stats\">Approval queue stats</a></p>{}",
        esc(&reviewer.email),
        esc(token),
        signed_in_line(session),
    );
    let pauses = web.desk.pauses().list();
    html.push_str(&format!("<h2>Paused autopilot ({})</h2>", pauses.len()));
    for p in &pauses {
        html.push_str(&pause_html(p));
        html.push_str(&format!(
            "<form method=\"post\" action=\"/review/{t}/resume\"><input type=\"hidden\" name=\"scope\" value=\"{s}\"><input type=\"hidden\" name=\"call_id\" value=\"{c}\">{code}<div class=\"buttons\"><button class=\"approve\">Resume autopilot for {s}</button></div></form>",
            t = esc(token),
            s = esc(&p.scope),
            c = esc(&p.call_id),
            code = code_field(&Ask::pause(p, None), &setup),
        ));
    }
    let mut groups: BTreeMap<(String, String), Vec<Held>> = BTreeMap::new();
    for h in web.desk.held().list().into_iter().filter(Held::is_held) {
        groups
            .entry((h.server.clone(), h.tool_name.clone()))
            .or_default()
            .push(h);
    }
    for (server, tool, _, _) in super::unclassified(web) {
        groups.entry((server, tool)).or_default();
    }
    html.push_str(&format!("<h2>Quarantined tools ({})</h2>", groups.len()));
    for ((server, tool), calls) in &groups {
        html.push_str(&tool_html(web, &setup, token, server, tool, calls.len()));
        for h in calls {
            html.push_str(&format!(
                "<div class=\"state\">{call}<form method=\"post\" action=\"/review/{t}/held/{id}\"><input type=\"hidden\" name=\"seen\" value=\"{seen}\"><label>Reason (for a rejection)</label><input name=\"reason\">{code}<div class=\"buttons\"><button name=\"action\" value=\"release\" class=\"approve\">Release (run once)</button><button name=\"action\" value=\"reject\" class=\"deny\">Reject</button></div></form></div>",
                call = held_call_html(h),
                id = esc(&h.id),
                t = esc(token),
                seen = held_seen(h),
                code = code_field(&Ask::held(h, "release", &setup), &setup),
            ));
        }
    }
    shell("Review", &html)
}

/// A quarantined tool's heading: its definition as served, and its manifest or the form that
/// classifies it.
fn tool_html(
    web: &Web,
    setup: &Setup,
    token: &str,
    server: &str,
    tool: &str,
    held: usize,
) -> String {
    let def = web.servers.route_of(server, tool);
    let mut html = format!(
        "<h3><code>{}</code> on <code>{}</code> — {held} held call(s)</h3>",
        esc(tool),
        esc(server),
    );
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
    let classes: String = setup
        .policy
        .classes
        .keys()
        .map(|c| format!("<option>{}</option>", esc(c)))
        .collect();
    match setup.manifests.get(server, tool) {
        Some(m) => html.push_str(&format!(
            "<p>Manifest: <code>{}</code> (class <code>{}</code>). To change how it is gated (or pin a new definition), edit that file.</p>",
            esc(&m.origin),
            esc(&m.class)
        )),
        None if def.is_some() => html.push_str(&format!(
            "<details open><summary>Classify this tool (writes <code>{file}</code>)</summary><form method=\"post\" action=\"/review/{t}/classify\"><input type=\"hidden\" name=\"server\" value=\"{s}\"><input type=\"hidden\" name=\"tool\" value=\"{n}\"><input type=\"hidden\" name=\"definition_hash\" value=\"{h}\"><label>Class</label><select name=\"class\">{classes}</select><label>Target (system or record it touches)</label><input name=\"target\" required><label>Business impact</label><input name=\"impact\" required><label>Reversal (<code>tool:NAME</code> or <code>none: why</code>)</label><input name=\"reversal\" required>{code}<div class=\"buttons\"><button class=\"approve\">Write manifest</button></div></form></details>",
            file = esc(&classify::path_for(setup, server, tool).display().to_string()),
            t = esc(token),
            s = esc(server),
            n = esc(tool),
            h = esc(def.as_ref().map_or("", |d| d.definition_hash.as_str())),
            code = code_field(&Ask::classify(server, tool), setup),
        )),
        None => html.push_str("<p>Its server does not serve it right now, so it cannot be classified here.</p>"),
    }
    html
}

/// One held call as a reviewer reads it: who, when and why; a warning line when its arguments
/// or reason hide or imitate characters; its arguments (escaped JSON) marked as the agent's.
/// Deterministic (no clock), so its hash is what the reviewer read.
pub(super) fn held_call_html(h: &Held) -> String {
    // a redacted value as its marker: `[redacted 3f9a1c2b]`
    let args = crate::redact::for_people(&Value::Object(h.arguments.clone()));
    let mut flags = request::text_flags("the reason", &h.reason);
    flags.extend(request::argument_flags(&args));
    let warn = shown::warning(&flags)
        .map(|w| format!("<p class=\"warn\">⚠ {}</p>", esc(&w)))
        .unwrap_or_default();
    format!(
        "<p>Call <code>{id}</code> by {actor}, held {at} ({codes})</p>{warn}<small>Written by the agent ({actor}), not by Airlock — the reason, quoting its values, and the arguments:</small><div class=\"agent\"><small>{why}</small><pre>{args}</pre></div>",
        id = esc(&h.id),
        actor = esc(&h.actor),
        at = time_html(h.held_at),
        codes = esc(&h.codes.join(", ")),
        why = prose(&h.reason),
        args = esc(&shown::json(
            &serde_json::to_string_pretty(&args).unwrap_or_default()
        )),
    )
}

/// The `seen` hash of a held call's block: SHA-256 of [`held_call_html`], hex.
pub(super) fn held_seen(h: &Held) -> String {
    crate::canonical::sha256_hex(held_call_html(h).as_bytes())
}
