//! MCP over streamable HTTP at `/mcp`, for agents with a bearer token.
//!
//! Owns the rmcp streamable-HTTP service (Host and Origin checks against the allow-lists), the
//! token check (an `[[agent]]` token, else with `[oauth]` a JWT access token `oauth` authenticates;
//! 401/403 with the spec's challenge otherwise, logged), the protected-resource metadata routes
//! (outside the token check), and session binding: the session ids agents see are 256-bit
//! random values of our own, each bound to the actor that opened it, and mapped to rmcp's
//! internal ids. It must never pass the `Authorization` header on (tool servers never see an
//! agent's token), log a token, and never let one actor use another's session.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::upstream::AgentServer;
use crate::config::http::HttpConfig;
use crate::config::limits::Limits;
use crate::config::oauth::WELL_KNOWN;
use crate::identity::{Agents, Identity, bearer};
use crate::oauth::{Refusal, Resource};

const SESSION: &str = "mcp-session-id";

/// Our session id → (rmcp's session id, the actor it belongs to).
#[derive(Default)]
struct Sessions(Mutex<HashMap<String, (String, String)>>);

struct Guard {
    agents: Agents,
    oauth: Option<Arc<Resource>>,
    sessions: Sessions,
    /// rmcp's sessions (which end themselves after `[limits] session_idle`).
    manager: Arc<LocalSessionManager>,
    limits: Limits,
}

/// The `/mcp` routes: the MCP service behind the token check and session binding; with
/// `oauth`, its protected-resource metadata too.
pub fn router(
    server: AgentServer,
    cfg: &HttpConfig,
    limits: &Limits,
    agents: Agents,
    oauth: Option<Arc<Resource>>,
    stop: CancellationToken,
) -> Router {
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(cfg.allowed_hosts.clone())
        .with_cancellation_token(stop);
    config = if cfg.allowed_origins.is_empty() {
        // no browser is expected: any request carrying an Origin is refused (DNS rebinding)
        config.enforce_origin_validation()
    } else {
        config.with_allowed_origins(cfg.allowed_origins.clone())
    };
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(limits.session_idle);
    let manager = Arc::new(manager);
    let service = StreamableHttpService::new(move || Ok(server.clone()), manager.clone(), config);
    let guard = Arc::new(Guard {
        agents,
        oauth: oauth.clone(),
        sessions: Sessions::default(),
        manager,
        limits: limits.clone(),
    });
    // the guard wraps /mcp only: other paths keep the pages' own fallback (404)
    let mcp = Router::new()
        .route_service("/mcp", service)
        .route_layer(middleware::from_fn_with_state(guard, authenticate));
    match oauth {
        Some(resource) => mcp.merge(metadata_routes(resource)),
        None => mcp,
    }
}

/// RFC 9728 metadata, outside the token check: at the root form, the form suffixed with
/// `/mcp` (where a client that connects to this listener looks), and the form suffixed with
/// the configured resource's path (where a client behind a proxy looks).
fn metadata_routes(resource: Arc<Resource>) -> Router {
    let (_, path) = resource.config().origin_and_path();
    let mut paths = vec![WELL_KNOWN.to_string(), format!("{WELL_KNOWN}/mcp")];
    let configured = format!("{WELL_KNOWN}{path}");
    if !paths.contains(&configured) {
        paths.push(configured);
    }
    let doc = resource.metadata();
    paths.into_iter().fold(Router::new(), |r, p| {
        let doc = doc.clone();
        r.route(&p, get(move || async move { Json(doc) }))
    })
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut r = (status, format!("{message}\n")).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"airlock\""),
        );
    }
    r
}

/// The actor a request's `Authorization` authenticates: an `[[agent]]` token's, else (with
/// `[oauth]`) a JWT access token's; or the refusal to answer with.
async fn who(guard: &Guard, auth: Option<&str>) -> Result<String, Response> {
    if let Some(actor) = guard.agents.actor_of(auth) {
        return Ok(actor.to_string());
    }
    let Some(oauth) = &guard.oauth else {
        tracing::warn!(
            presented = auth.is_some(),
            "MCP over HTTP: request without a valid bearer token refused (401)"
        );
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required (Authorization: Bearer <token>)",
        ));
    };
    let refusal = match bearer(auth) {
        None => Refusal::NoToken,
        Some(token) => match oauth.authenticate(token).await {
            Ok(actor) => return Ok(actor),
            Err(r) => r,
        },
    };
    let status = match &refusal {
        Refusal::NoToken | Refusal::Invalid(_) => StatusCode::UNAUTHORIZED,
        Refusal::Scope { .. } => StatusCode::FORBIDDEN,
        Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    match &refusal {
        // how a client learns where to get a token (the spec's discovery starts here)
        Refusal::NoToken => tracing::info!(
            "MCP over HTTP: a request without a token was sent to the authorization server (401)"
        ),
        Refusal::Scope { actor, .. } => {
            tracing::warn!(%actor, reason = %refusal, "MCP over HTTP: OAuth token refused ({status})")
        }
        _ => tracing::warn!(reason = %refusal, "MCP over HTTP: OAuth token refused ({status})"),
    }
    let mut r = (status, format!("{refusal}\n")).into_response();
    if let Some(v) = oauth
        .challenge(&refusal)
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    Err(r)
}

/// Check the token, bind the session to its actor, and hand rmcp the request (without the token).
async fn authenticate(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let actor = match who(&guard, auth).await {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    req.headers_mut().remove(header::AUTHORIZATION);
    // Our session id in, rmcp's out; a session is only ever used by the actor that opened it.
    if let Some(ours) = req
        .headers()
        .get(SESSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    {
        let inner = {
            let map = guard.sessions.0.lock().unwrap_or_else(|e| e.into_inner());
            map.get(&ours).cloned()
        };
        match inner {
            Some((inner, owner)) if owner == actor => match HeaderValue::from_str(&inner) {
                Ok(v) => {
                    req.headers_mut().insert(SESSION, v);
                }
                Err(_) => return refuse(StatusCode::NOT_FOUND, "unknown session"),
            },
            Some(_) => {
                tracing::warn!(%actor, "MCP over HTTP: a session of another actor was refused");
                return refuse(StatusCode::NOT_FOUND, "unknown session");
            }
            None => return refuse(StatusCode::NOT_FOUND, "unknown session"),
        }
    }
    let closing = req.method() == axum::http::Method::DELETE;
    let presented = req
        .headers()
        .get(SESSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    req.extensions_mut().insert(Identity {
        actor: actor.clone(),
    });
    let mut res: Response<Body> = next.run(req).await;
    if let Some(inner) = res
        .headers()
        .get(SESSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    {
        let ours = match bind(&guard, inner, &actor).await {
            Ok(ours) => ours,
            Err(refused) => return refused,
        };
        if let Ok(v) = HeaderValue::from_str(&ours) {
            res.headers_mut().insert(SESSION, v);
        }
    }
    if closing && res.status().is_success() {
        if let Some(inner) = presented {
            let mut map = guard.sessions.0.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, (i, _)| *i != inner);
        }
    }
    res
}

/// Our id for rmcp's session `inner` of `actor`: the one it has, or a new one — unless that
/// opens one session more than `[limits]` allows: then rmcp's new session is closed and the
/// `initialize` refused (a live session is never dropped to make room).
async fn bind(guard: &Guard, inner: String, actor: &str) -> Result<String, Response> {
    {
        let map = guard.sessions.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((ours, _)) = map.iter().find(|(_, (i, a))| *i == inner && a == actor) {
            return Ok(ours.clone());
        }
    }
    // rmcp's sessions now: bindings of ended ones (idle, closed) no longer count
    let live: HashSet<String> = guard
        .manager
        .sessions
        .read()
        .await
        .keys()
        .map(ToString::to_string)
        .collect();
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no randomness for a session id",
        ));
    }
    let ours = hex::encode(bytes);
    // counted and bound under one lock: concurrent initializes cannot pass the cap together
    let over = {
        let mut map = guard.sessions.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (i, _)| live.contains(i));
        let mine = map.values().filter(|(_, a)| a == actor).count();
        if mine >= guard.limits.sessions_per_actor {
            Some((
                "session_per_actor",
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this agent ({actor}) already has {mine} open MCP sessions, the most `[limits] sessions_per_actor` allows: reuse one, or end one (DELETE /mcp with its Mcp-Session-Id); an idle session ends after {}",
                    humantime::format_duration(guard.limits.session_idle)
                ),
            ))
        } else if live.len() > guard.limits.sessions {
            Some((
                "session",
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the gate holds {} open MCP sessions, the most `[limits] sessions` allows: try again later",
                    guard.limits.sessions
                ),
            ))
        } else {
            map.insert(ours.clone(), (inner.clone(), actor.to_string()));
            None
        }
    };
    if let Some((cap, status, message)) = over {
        crate::metrics::global().refused(cap);
        tracing::warn!(%actor, cap, "MCP over HTTP: initialize refused at a [limits] cap ({status})");
        let id: Arc<str> = Arc::from(inner.as_str());
        if let Err(e) = guard.manager.close_session(&id).await {
            tracing::debug!(error = %e, "closing a refused session");
        }
        let mut r = refuse(status, &message);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return Err(r);
    }
    Ok(ours)
}
