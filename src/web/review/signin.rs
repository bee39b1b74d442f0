//! Who decides on the review and pause pages, beyond the personal link: the one path every
//! release, rejection, classification and resume takes. The [`crate::authority`] rule first
//! (an agent, the requester, a non-member: refused); then what the matter's roles (the
//! strictest of them, and for a held call the class of its tool) require of the decider —
//! signing in with the provider, a TOTP code — checked by [`crate::auth::Deciders`]. A token the
//! CLI made (`via: cli`) never passes a matter that requires either: its person decides on
//! their own page. Every refusal is a `decision_refused` row.
//!
//! Sign-in sessions: the review page's is scoped `review:<email>` (cookie path
//! `/review/{token}`, so one link's page, one address); a pause page's `pause:<call>` (path
//! `/p/{call}/`), as an approval's is its approval. TOTP codes are spent per matter (`held:<call>`,
//! `pause:<call>`, `classify:<server>/<tool>`), so five wrong codes bar that matter only. This
//! module must never decide anything itself, and never let a token's `via` be anything but what
//! its MAC proves.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::super::Web;
use super::super::signin::{Page, cookies, now, sign_in_first};
use crate::auth::session::Session;
use crate::auth::{Presented, Refused};
use crate::authority::{self, Decider, Matter};
use crate::config::Setup;
use crate::drift::Pause;
use crate::ledger::row;
use crate::policy::{Requirement, SignIn};
use crate::quarantine::Held;
use crate::reviewer::Reviewer;

/// A decision asked of the review side: what, on which call (for its refusal row), the act's
/// word, the id its TOTP code is spent on, and the class of the call decided (if any).
pub(super) struct Ask<'a> {
    pub matter: Matter<'a>,
    pub call_id: &'a str,
    pub act: &'a str,
    pub decision: String,
    pub class: Option<String>,
}

impl<'a> Ask<'a> {
    /// Releasing or rejecting held call `h` (`act`), under `setup`'s manifests.
    pub fn held(h: &'a Held, act: &'a str, setup: &Setup) -> Ask<'a> {
        Ask {
            matter: Matter::Held {
                roles: &h.roles,
                requester: &h.actor,
            },
            call_id: &h.id,
            act,
            decision: format!("held:{}", h.id),
            class: setup
                .manifests
                .get(&h.server, &h.tool_name)
                .map(|m| m.class.clone()),
        }
    }

    /// Resuming pause `p`, tripped by a call of `requester` (if still known).
    pub fn pause(p: &'a Pause, requester: Option<&'a str>) -> Ask<'a> {
        Ask {
            matter: Matter::Pause {
                role: p.notify.as_deref(),
                requester,
            },
            call_id: &p.call_id,
            act: "resume",
            decision: format!("pause:{}", p.call_id),
            class: None,
        }
    }

    /// Writing the manifest of `server`'s `tool`.
    pub fn classify(server: &str, tool: &str) -> Ask<'a> {
        Ask {
            matter: Matter::Classify,
            call_id: "",
            act: "classify",
            decision: format!("classify:{server}/{tool}"),
            class: None,
        }
    }

    /// What deciding it requires (nothing beyond the link when no role may decide it: the
    /// authority rule refuses that first).
    pub fn requirement(&self, setup: &Setup) -> Requirement {
        let roles = authority::needed(&self.matter, &setup.policy).unwrap_or_default();
        setup.policy.requirement_of(&roles, self.class.as_deref())
    }
}

/// The session scope of `email`'s review page.
pub(super) fn review_scope(email: &str) -> String {
    format!("review:{}", email.trim().to_ascii_lowercase())
}

/// The session scope of the page of the pause call `id` tripped.
pub(super) fn pause_scope(id: &str) -> String {
    format!("pause:{id}")
}

/// What a decision request presents: its cookies, the code typed, and the session scope of the
/// page it came from.
pub(super) struct Proof {
    pub cookies: String,
    pub code: String,
    pub scope: String,
}

impl Proof {
    pub fn of(headers: &HeaderMap, code: Option<&String>, scope: String) -> Proof {
        Proof {
            cookies: cookies(headers),
            code: code.map_or("", |c| c.trim()).to_string(),
            scope,
        }
    }
}

/// For a GET of the review page: a reviewer who is a member of any role that signs in (so may
/// decide something that needs it) signs in first.
pub(in crate::web) async fn review_page_session(
    web: &Arc<Web>,
    r: &Reviewer,
    token: &str,
    headers: &HeaderMap,
) -> Result<Option<Session>, Response> {
    let setup = web.live.setup();
    let signs_in = setup
        .policy
        .roles_of(&r.email)
        .iter()
        .filter_map(|role| setup.policy.roles.get(role))
        .any(|role| role.sign_in == SignIn::Oidc);
    if !signs_in || r.via == "cli" {
        return Ok(None);
    }
    let path = format!("/review/{token}");
    let page = Page {
        scope: &review_scope(&r.email),
        email: &r.email,
        path: &path,
        cookie_path: &path,
    };
    sign_in_first(web, &page, headers).await.map(Some)
}

/// For a GET of a pause's page: sign in first when resuming it requires it.
pub(super) async fn pause_page_session(
    web: &Arc<Web>,
    p: &Pause,
    r: &Reviewer,
    token: &str,
    headers: &HeaderMap,
) -> Result<Option<Session>, Response> {
    if Ask::pause(p, None).requirement(&web.live.setup()).sign_in != SignIn::Oidc {
        return Ok(None);
    }
    let id = &p.call_id;
    let page = Page {
        scope: &pause_scope(id),
        email: &r.email,
        path: &format!("/p/{id}/{token}"),
        cookie_path: &format!("/p/{id}/"),
    };
    sign_in_first(web, &page, headers).await.map(Some)
}

/// The decider for `ask`, if the authority rule authorizes the reviewer and they prove what the
/// matter requires; a refusal is recorded in the ledger and answered with its sentence.
pub(super) async fn decider(
    web: &Web,
    reviewer: &Reviewer,
    ask: &Ask<'_>,
    proof: Proof,
) -> Result<Decider, (StatusCode, String)> {
    let setup = web.live.setup();
    // the desk's one authority rule (the desk applies it again when the decision reaches it)
    let roles = match crate::desk::authorize(&setup, &ask.matter, &reviewer.email) {
        Ok(roles) => roles,
        Err(refusal) => {
            let said = format!("Not done: {refusal}");
            return Err(refuse(web, reviewer, ask, None, &refusal.to_string(), said).await);
        }
    };
    let need = setup.policy.requirement_of(&roles, ask.class.as_deref());
    if need.beyond_link() && reviewer.via != "link" {
        let reason = format!(
            "deciding this needs {} (role {}), which a command line cannot give",
            need.words(),
            roles.join(" and ")
        );
        let said = format!(
            "Not done: {reason}. {who} decides on their own review page, signed in there: `airlock quarantine list --as {who}` prints its link. Nothing was decided.",
            who = reviewer.email
        );
        let step = if need.sign_in == SignIn::Oidc {
            "sign_in"
        } else {
            "second_factor"
        };
        return Err(refuse(web, reviewer, ask, Some(step), &reason, said).await);
    }
    let d = web.deciders.clone();
    let (email, decision) = (reviewer.email.clone(), ask.decision.clone());
    let checked = tokio::task::spawn_blocking(move || {
        let p = Presented {
            cookies: &proof.cookies,
            code: &proof.code,
        };
        d.may_decide_within(p, &proof.scope, &decision, &email, need, now())
    })
    .await;
    match checked {
        Ok(Ok(facts)) => Ok(Decider {
            who: reviewer.email.clone(),
            roles,
            auth: reviewer.auth_with(&facts),
        }),
        Ok(Err(r)) => Err(refuse(
            web,
            reviewer,
            ask,
            Some(r.step.word()),
            &r.reason,
            r.sentence,
        )
        .await),
        Err(e) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the decision could not be checked ({e}); nothing was decided"),
        )),
    }
}

/// Record a refused decision (`attempt`: the check that refused, when not the authority rule)
/// and answer with `said`.
async fn refuse(
    web: &Web,
    reviewer: &Reviewer,
    ask: &Ask<'_>,
    attempt: Option<&str>,
    reason: &str,
    said: String,
) -> (StatusCode, String) {
    let body = row::DecisionRefused {
        act: ask.act.to_string(),
        by: reviewer.email.clone(),
        auth: Some(reviewer.auth()),
        reason: reason.to_string(),
        attempt: attempt.map(str::to_string),
        suppressed_before: None,
    };
    record(web, ask.call_id, body).await;
    tracing::warn!(by = %reviewer.email, act = %ask.act, call_id = %ask.call_id, %reason, "decision refused");
    (StatusCode::FORBIDDEN, said)
}

/// A `decision_refused` row, within the reviewer's quota (see [`crate::quarantine::Quarantine::refusal_quota`]).
async fn record(web: &Web, call_id: &str, body: row::DecisionRefused) {
    web.desk.record_refused(call_id, body).await;
}

/// Record a sign-in refused on a review or pause page (a failed callback, a sign-in that could
/// not start) as `decision_refused`; `false` when `scope` is not the review side's.
pub(in crate::web) async fn record_sign_in_refusal(
    web: &Web,
    scope: &str,
    email: &str,
    r: &Refused,
) -> bool {
    let call_id = match scope.split_once(':') {
        Some(("review", _)) => "",
        Some(("pause", id)) => id,
        _ => return false,
    };
    let body = row::DecisionRefused {
        act: "sign_in".to_string(),
        by: email.to_string(),
        auth: None,
        reason: r.reason.to_string(),
        attempt: Some(r.step.word().to_string()),
        suppressed_before: None,
    };
    record(web, call_id, body).await;
    true
}
