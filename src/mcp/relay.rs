//! Relay: what a tool server says about a call in flight — progress and log messages — passed
//! on to the agent that made the call, as if Airlock were not there.
//!
//! Owns the routes from a forwarded call (its relay key, and the progress token rmcp gave the
//! request to the tool server) back to the agent's peer and the agent's own progress token. It must never relay anything
//! that would act (requests from a tool server are not relayed here), and never send one agent's
//! progress to another.

// Logging (SEP-2577) is deprecated from protocol 2026-07-28, but live in older sessions.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::model::{LoggingMessageNotificationParam, ProgressNotificationParam, ProgressToken};
use rmcp::service::{NotificationContext, Peer, RoleClient, RoleServer};

struct Route {
    peer: Peer<RoleServer>,
    /// Whose call it is.
    actor: String,
    /// The agent's own progress token, if it asked for progress.
    token: Option<ProgressToken>,
    /// The tool server the call went to, and the progress token of the request there.
    server: Option<(String, ProgressToken)>,
}

/// Calls in flight that an agent may hear about.
#[derive(Default)]
pub struct Relay {
    routes: Mutex<HashMap<String, Route>>,
}

impl Relay {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Route>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An agent's call begins: notifications about `key` go to `peer` until the returned guard
    /// is dropped (when the call is answered, or abandoned).
    pub fn open(
        self: &Arc<Self>,
        key: &str,
        actor: &str,
        peer: Peer<RoleServer>,
        token: Option<ProgressToken>,
    ) -> Opened {
        self.lock().insert(
            key.to_string(),
            Route {
                peer,
                actor: actor.to_string(),
                token,
                server: None,
            },
        );
        Opened(self.clone(), key.to_string())
    }

    /// The call is forwarded to `server`, whose progress for it carries `downstream`.
    pub(super) fn bind(&self, key: &str, server: &str, downstream: ProgressToken) {
        if let Some(r) = self.lock().get_mut(key) {
            r.server = Some((server.to_string(), downstream));
        }
    }

    fn close(&self, key: &str) {
        self.lock().remove(key);
    }

    /// The agent a server's progress is for, with the agent's own token in it.
    fn progress(
        &self,
        server: &str,
        mut p: ProgressNotificationParam,
    ) -> Option<(Peer<RoleServer>, ProgressNotificationParam)> {
        let routes = self.lock();
        let r = routes.values().find(|r| {
            r.server
                .as_ref()
                .is_some_and(|(s, t)| s == server && *t == p.progress_token)
        })?;
        p.progress_token = r.token.clone()?;
        Some((r.peer.clone(), p))
    }

    /// The one agent a server's log message can be attributed to: only when every call in
    /// flight on that server is the same actor's (a log line may hold another actor's data).
    fn sole_agent(&self, server: &str) -> Option<Peer<RoleServer>> {
        let routes = self.lock();
        let mut on: Vec<&Route> = routes
            .values()
            .filter(|r| r.server.as_ref().is_some_and(|(s, _)| s == server))
            .collect();
        let first = on.pop()?;
        on.iter()
            .all(|r| r.actor == first.actor)
            .then(|| first.peer.clone())
    }
}

/// A route in use; nothing more is relayed for the call once it is dropped.
pub struct Opened(Arc<Relay>, String);

impl Drop for Opened {
    fn drop(&mut self) {
        self.0.close(&self.1);
    }
}

/// The MCP client handler of one tool server connection.
#[derive(Clone)]
pub struct Downstream {
    pub(super) relay: Arc<Relay>,
    pub(super) server: String,
}

impl rmcp::ClientHandler for Downstream {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some((peer, p)) = self.relay.progress(&self.server, params) {
            let _ = peer.notify_progress(p).await;
        }
    }

    /// A log message is not tied to a call: it goes to the agent with calls in flight on this
    /// server when they are all one actor's, and to Airlock's own log in any case.
    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        tracing::debug!(server = %self.server, data = %params.data, "tool server log message");
        if let Some(peer) = self.relay.sole_agent(&self.server) {
            let _ = peer.notify_logging_message(params).await;
        }
    }
}
