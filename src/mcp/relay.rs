//! Relay: what a tool server says to the agents, passed on as if Airlock were not there —
//! progress and log messages about a call in flight, the questions a tool server asks while it
//! runs one (sampling, elicitation, roots), and changes to its lists and resources.
//!
//! Owns the routes from a forwarded call (its relay key, and the progress token rmcp gave the
//! request to the tool server) back to the agent's peer and the agent's own progress token, and
//! which calls their agents cancelled lately (to tell a late cancellation notice from one for a
//! request that is none of the agent's calls). It must never send one agent's progress to
//! another, and never put a tool server's question to an agent that has no call in flight there:
//! a question is relayed only while every call in flight on that server is the same actor's, and
//! none runs without a route (after an approval, or abandoned by its agent), else it is refused.
//! An agent on 2026-07-28 or later is asked in rounds instead: its route carries the call's
//! [`Rounds`], and the question goes into the call's next answer (see `mrtr`).
//! A changed tool list is not relayed as is: it is re-listed and re-gated first (see `live`).

// Logging (SEP-2577) is deprecated from protocol 2026-07-28, but live in older sessions.
#![allow(deprecated)]

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{ProgressNotificationParam, ProgressToken, RequestId};
use rmcp::service::{Peer, RoleServer};
use tokio::sync::Notify;

mod handler;
pub use handler::Downstream;

use super::agents::Agents;
use super::mrtr::{Parked, Rounds};

struct Route {
    peer: Peer<RoleServer>,
    /// The agent's request for the call: questions about it ride that request's stream.
    request: RequestId,
    /// Whose call it is.
    actor: String,
    /// The agent's own progress token, if it asked for progress.
    token: Option<ProgressToken>,
    /// The tool server the call went to, and the progress token of the request there.
    server: Option<(String, ProgressToken)>,
    /// For an agent on 2026-07-28 or later: its questions go into the call's next answer.
    rounds: Option<Rounds>,
    /// Parked between two rounds: no agent request exists, so progress and log messages for
    /// the call go nowhere (the route still counts as its actor's).
    parked: bool,
}

/// Calls in flight that an agent may hear about, and the agents listening for changes.
#[derive(Default)]
pub struct Relay {
    routes: Mutex<HashMap<String, Route>>,
    /// The connected agents and their subscriptions.
    pub agents: Agents,
    /// Servers that said their tool list changed, not yet re-listed.
    dirty: Mutex<BTreeSet<String>>,
    /// Woken when a server's tool list changed.
    pub tools_changed: Notify,
    /// Per server, calls running there that no agent's route describes (run after an approval
    /// or a release, or abandoned by their agent and not yet stopped): while any is, nothing the
    /// server says can be attributed to one agent.
    unrouted: Mutex<HashMap<String, usize>>,
    /// Calls their agents cancelled lately, (when, actor, the agent's request id): rmcp tells
    /// the handler of a cancellation only after it has acted on it, maybe once the call is over.
    cancelled: Mutex<VecDeque<(Instant, String, RequestId)>>,
    /// Calls of 2026-07-28 agents parked until the agent answers their tool server's questions.
    pub(super) parked: Parked,
}

/// How long a cancelled call is remembered, and how many at most.
const CANCELLED_KEPT: (Duration, usize) = (Duration::from_secs(10), 1024);

/// A call on `server` that belongs to no route, for as long as this lives.
pub struct Unrouted(Arc<Relay>, String);

impl Drop for Unrouted {
    fn drop(&mut self) {
        let mut counts = self.0.unrouted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.1) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.1);
            }
        }
    }
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
        request: RequestId,
        token: Option<ProgressToken>,
        rounds: Option<Rounds>,
    ) -> Opened {
        self.lock().insert(
            key.to_string(),
            Route {
                peer,
                request,
                actor: actor.to_string(),
                token,
                server: None,
                rounds,
                parked: false,
            },
        );
        Opened(self.clone(), key.to_string())
    }

    /// The call under `key` waits for its agent's next round (`parked`), or the agent's retry
    /// (`request`, with its own progress token) now waits for it.
    pub(super) fn repoint(
        &self,
        key: &str,
        next: Option<(Peer<RoleServer>, RequestId, Option<ProgressToken>)>,
    ) {
        if let Some(r) = self.lock().get_mut(key) {
            match next {
                None => r.parked = true,
                Some((peer, request, token)) => {
                    (r.peer, r.request, r.token, r.parked) = (peer, request, token, false);
                }
            }
        }
    }

    /// The call is forwarded to `server`, whose progress for it carries `downstream`.
    /// Before the call is sent: its route names `server` already, so what the server says about
    /// it at once (a log message before the request's handle is back) reaches its agent. The
    /// progress token is set by [`Relay::bind`] once rmcp has given one.
    pub(super) fn bind_server(&self, key: &str, server: &str) {
        if let Some(r) = self.lock().get_mut(key) {
            if r.server.is_none() {
                let unset = ProgressToken(rmcp::model::NumberOrString::String("".into()));
                r.server = Some((server.to_string(), unset));
            }
        }
    }

    pub(super) fn bind(&self, key: &str, server: &str, downstream: ProgressToken) {
        if let Some(r) = self.lock().get_mut(key) {
            r.server = Some((server.to_string(), downstream));
        }
    }

    fn close(&self, key: &str) {
        self.lock().remove(key);
    }

    /// `actor`'s call under the agent's request id `request` ended cancelled.
    pub fn cancelled(&self, actor: &str, request: RequestId) {
        let mut kept = self.cancelled.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        while kept.front().is_some_and(|(at, ..)| {
            now.duration_since(*at) > CANCELLED_KEPT.0 || kept.len() >= CANCELLED_KEPT.1
        }) {
            kept.pop_front();
        }
        kept.push_back((now, actor.to_string(), request));
    }

    /// Whether a cancellation of `request` by `actor` was of one of its tool calls: in flight
    /// now, or lately ended cancelled (then forgotten, as the notice for it has come).
    pub fn cancels_own_call(&self, actor: &str, request: &RequestId) -> bool {
        if self
            .lock()
            .values()
            .any(|r| r.actor == actor && r.request == *request)
        {
            return true;
        }
        let mut kept = self.cancelled.lock().unwrap_or_else(|e| e.into_inner());
        match kept.iter().position(|(_, a, r)| a == actor && r == request) {
            Some(i) => {
                kept.remove(i);
                true
            }
            None => false,
        }
    }

    /// The agent a server's progress is for, with the agent's own token in it.
    fn progress(
        &self,
        server: &str,
        mut p: ProgressNotificationParam,
    ) -> Option<(Peer<RoleServer>, ProgressNotificationParam)> {
        let routes = self.lock();
        let r = routes.values().find(|r| {
            !r.parked
                && r.server
                    .as_ref()
                    .is_some_and(|(s, t)| s == server && *t == p.progress_token)
        })?;
        p.progress_token = r.token.clone()?;
        Some((r.peer.clone(), p))
    }

    /// A call on `server` that no route describes begins; it ends when the guard is dropped.
    pub fn unrouted(self: &Arc<Self>, server: &str) -> Unrouted {
        *self
            .unrouted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(server.to_string())
            .or_default() += 1;
        Unrouted(self.clone(), server.to_string())
    }

    /// Servers whose tool list changed since the last call (each named once).
    pub fn take_changed(&self) -> Vec<String> {
        std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect()
    }

    /// `server`'s tools should be listed again (it said they changed, or it is time to look).
    pub fn mark_changed(&self, server: &str) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(server.to_string());
        self.tools_changed.notify_one();
    }

    /// The one agent a server's log message or question can be attributed to, with the request
    /// of one of its calls there: only when every call in flight on that server is the same
    /// actor's (a log line may hold another actor's data).
    fn sole_agent(&self, server: &str) -> Option<Sole> {
        if self
            .unrouted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(server)
        {
            return None;
        }
        let routes = self.lock();
        let mut on: Vec<&Route> = routes
            .values()
            .filter(|r| r.server.as_ref().is_some_and(|(s, _)| s == server))
            .collect();
        let first = on.pop()?;
        on.iter().all(|r| r.actor == first.actor).then(|| Sole {
            peer: first.peer.clone(),
            request: first.request.clone(),
            rounds: first.rounds.clone(),
            parked: first.parked,
        })
    }
}

/// The one agent with calls in flight on a server, and one of its calls' routes.
struct Sole {
    peer: Peer<RoleServer>,
    request: RequestId,
    rounds: Option<Rounds>,
    parked: bool,
}

/// How a question reaches the agent.
enum Asker {
    /// A server-to-client request on the stream of the call's request (older protocols).
    Session(Peer<RoleServer>, RequestId),
    /// In the call's next answer, an `InputRequiredResult` (2026-07-28 and later).
    Rounds(Rounds),
}

/// A route in use; nothing more is relayed for the call once it is dropped.
pub struct Opened(Arc<Relay>, String);

impl Drop for Opened {
    fn drop(&mut self) {
        self.0.close(&self.1);
    }
}
