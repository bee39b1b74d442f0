//! The approval page's side of who may decide: a link of a role that signs in leads through the
//! provider (and back to [`crate::auth::CALLBACK`]), the form asks for a TOTP code when one is
//! required, and a decision POST passes [`crate::auth::Deciders::may_decide`] before the desk
//! sees it. Every refusal that concerns a decision is recorded (by the desk for an approval, as
//! `decision_refused` for the review and pause pages); nothing runs. The redirect and the
//! callback serve the review side too ([`sign_in_first`]).
//!
//! It must never build a URL from the request (the provider gets the configured base URL's
//! callback; the browser returns to a path the server built), and never decide anything.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Web, esc, message_page};
use crate::approval::View;
use crate::auth::session::Session;
use crate::auth::{Callback, Facts, Presented, Refused};
use crate::policy::{Requirement, SecondFactor, SignIn};

/// What deciding this approval requires now (its class and the role asked at this stage).
pub(super) fn requirement(web: &Web, v: &View) -> Requirement {
    let e = &v.approval.envelope;
    web.live.setup().policy.requirement(&e.class, &e.role)
}

/// The request's cookies, as one `Cookie` header value.
pub(super) fn cookies(headers: &HeaderMap) -> String {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) fn now() -> i64 {
    crate::instant::now().timestamp()
}

/// For a GET of a link: `Ok(session)` when the page may be shown (`None`: no sign-in needed),
/// else the response that sends the browser to the provider (or says why it cannot).
pub(super) async fn signed_in_or_redirect(
    web: &Arc<Web>,
    v: &View,
    slot: usize,
    token: &str,
    headers: &HeaderMap,
) -> Result<Option<Session>, Response> {
    if requirement(web, v).sign_in != SignIn::Oidc {
        return Ok(None);
    }
    let id = &v.approval.id;
    let page = Page {
        scope: id,
        email: &v.approver,
        path: &format!("/a/{id}/{slot}/{token}"),
        cookie_path: &format!("/a/{id}/"),
    };
    sign_in_first(web, &page, headers).await.map(Some)
}

/// A page that needs its person signed in: the session's scope (one decision, or one page of
/// several), the link's address, the page's own path and the path its session cookie covers.
pub(super) struct Page<'a> {
    pub scope: &'a str,
    pub email: &'a str,
    pub path: &'a str,
    pub cookie_path: &'a str,
}

/// The session that lets `page.email` decide within `page.scope`, or the response that sends
/// the browser to the provider (or says why it cannot); a refusal is recorded.
pub(super) async fn sign_in_first(
    web: &Arc<Web>,
    page: &Page<'_>,
    headers: &HeaderMap,
) -> Result<Session, Response> {
    if let Some(s) = web
        .deciders
        .signed_in(&cookies(headers), page.scope, page.email, now())
    {
        return Ok(s);
    }
    let d = web.deciders.clone();
    let (scope, email, path, cookie_path) = (
        page.scope.to_string(),
        page.email.to_string(),
        page.path.to_string(),
        page.cookie_path.to_string(),
    );
    let begun =
        tokio::task::spawn_blocking(move || d.begin(&scope, &email, &path, &cookie_path, now()))
            .await;
    match begun {
        Ok(Ok(r)) => Err(see_other(&r.location, &[r.set_cookie])),
        Ok(Err(refused)) => Err(refuse(web, page.scope, page.email, &refused).await),
        Err(e) => Err(message_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Not done",
            &format!("the sign-in could not start ({e}); open the link again"),
        )),
    }
}

/// The form's part about who decides: the sign-in it carries, and the TOTP code field.
pub(super) fn form_fields(web: &Web, v: &View, session: Option<&Session>) -> String {
    let mut html = String::new();
    if let Some(s) = session {
        html.push_str(&format!(
            "<p class=\"who\">Signed in as {} with your company account.</p>",
            esc(&s.email)
        ));
    }
    if requirement(web, v).second_factor == Some(SecondFactor::Totp) {
        html.push_str("<label for=\"totp\">Code from your authenticator app (required to decide)</label>\
<input id=\"totp\" name=\"totp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{6}\" maxlength=\"6\" required>");
    }
    html
}

/// For a decision POST: the facts to record, or the refusal page (recorded in the ledger).
pub(super) async fn authenticate(
    web: &Arc<Web>,
    v: &View,
    headers: &HeaderMap,
    code: &str,
) -> Result<Facts, Response> {
    let need = requirement(web, v);
    let d = web.deciders.clone();
    let (cookies, code) = (cookies(headers), code.to_string());
    let (id, email) = (v.approval.id.clone(), v.approver.clone());
    let checked = tokio::task::spawn_blocking(move || {
        d.may_decide(
            Presented {
                cookies: &cookies,
                code: &code,
            },
            &id,
            &email,
            need,
            now(),
        )
    })
    .await;
    match checked {
        Ok(Ok(facts)) => Ok(facts),
        Ok(Err(refused)) => Err(refuse(web, &v.approval.id, &v.approver, &refused).await),
        Err(e) => Err(message_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Not done",
            &format!("the decision could not be checked ({e}); nothing was decided"),
        )),
    }
}

/// Record a refusal on its decision (an approval's, or a review page's) and answer with its
/// sentence.
async fn refuse(web: &Web, id: &str, approver: &str, r: &Refused) -> Response {
    if !super::review::record_sign_in_refusal(web, id, approver, r).await {
        web.desk
            .approvals()
            .log_auth_refusal(id, approver, r.step.word(), &r.reason)
            .await;
    }
    message_page(StatusCode::FORBIDDEN, r.title, &r.sentence)
}

/// `GET /signin/callback`: the provider sends the browser back here.
pub(super) async fn callback(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(cb): Query<Callback>,
) -> Response {
    let d = web.deciders.clone();
    let cookies = cookies(&headers);
    match tokio::task::spawn_blocking(move || d.finish(&cb, &cookies, now())).await {
        Ok(Ok(done)) => see_other(&done.return_to, &done.set_cookies),
        Ok(Err(failed)) => {
            let mut r = match &failed.about {
                Some((id, email)) => refuse(&web, id, email, &failed.refused).await,
                None => message_page(
                    StatusCode::FORBIDDEN,
                    failed.refused.title,
                    &failed.refused.sentence,
                ),
            };
            if let Ok(v) = HeaderValue::from_str(&failed.clear_cookie) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => message_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Not done",
            &format!(
                "the sign-in could not be finished ({e}); open the link from your email again"
            ),
        ),
    }
}

/// `303 See Other` to `location`, setting `cookies`.
pub(super) fn see_other(location: &str, cookies: &[String]) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    r
}
