//! Agents: who is connected and what each asked to hear about — list changes and updates to the
//! resources it subscribed to.
//!
//! Owns the listeners (legacy sessions hear every list change; a `subscriptions/listen` stream of
//! protocol 2026-07-28 hears what its filter accepted) and the resource subscriptions, keyed by
//! URI. It passes on notifications that describe change, never anything that acts, and it never
//! tells an agent about a resource it did not subscribe to.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rmcp::model::{ResourceUpdatedNotificationParam, SubscriptionFilter};
use rmcp::service::{Peer, RoleServer, SubscriptionSink};

/// Which list changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Tools,
    Resources,
    Prompts,
}

/// Where an agent hears notifications: its session (legacy protocol versions) or one listen stream.
#[derive(Clone)]
enum Ear {
    Session(Peer<RoleServer>),
    Stream(SubscriptionSink),
}

#[derive(Default)]
struct Inner {
    /// Legacy sessions, which hear every list change.
    sessions: Vec<Peer<RoleServer>>,
    /// Listen streams, with the filter each accepted.
    streams: Vec<SubscriptionSink>,
    /// Resource URI → the sessions that subscribed to it with `resources/subscribe`.
    subscribed: BTreeMap<String, Vec<Peer<RoleServer>>>,
}

/// The connected agents.
#[derive(Default)]
pub struct Agents {
    inner: Mutex<Inner>,
    /// Held across a subscription change and the tool server call it needs, so a subscribe and
    /// an unsubscribe of the same URI cannot overtake each other on the way to the server.
    pub changing: tokio::sync::Mutex<()>,
}

/// Most resources one session may subscribe to.
pub const MAX_SUBSCRIPTIONS_PER_SESSION: usize = 256;

impl Agents {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A legacy session finished initializing: it hears list changes from now on.
    pub fn join(&self, peer: Peer<RoleServer>) {
        let mut inner = self.lock();
        inner.sessions.retain(|p| !p.is_transport_closed());
        inner.sessions.push(peer);
    }

    /// A listen stream opened.
    pub fn listen(&self, sink: SubscriptionSink) {
        let mut inner = self.lock();
        inner.streams.push(sink);
    }

    /// A listen stream ended.
    pub fn unlisten(&self, sink: &SubscriptionSink) {
        self.lock().streams.retain(|s| s.id() != sink.id());
    }

    /// A session subscribed to `uri` (again: once is enough). Refused past
    /// [`MAX_SUBSCRIPTIONS_PER_SESSION`].
    pub fn subscribe(&self, uri: &str, peer: Peer<RoleServer>) -> Result<(), String> {
        let mut inner = self.lock();
        for list in inner.subscribed.values_mut() {
            list.retain(|p| !p.is_transport_closed());
        }
        inner.subscribed.retain(|_, l| !l.is_empty());
        let held = inner
            .subscribed
            .values()
            .filter(|l| l.iter().any(|p| same(p, &peer)))
            .count();
        let list = inner.subscribed.entry(uri.to_string()).or_default();
        if list.iter().any(|p| same(p, &peer)) {
            return Ok(());
        }
        if held >= MAX_SUBSCRIPTIONS_PER_SESSION {
            return Err(format!(
                "a session may subscribe to at most {MAX_SUBSCRIPTIONS_PER_SESSION} resources"
            ));
        }
        list.push(peer);
        Ok(())
    }

    /// A session unsubscribed from `uri`; true when nobody wants it any more (so the tool server
    /// may be told).
    pub fn unsubscribe(&self, uri: &str, peer: &Peer<RoleServer>) -> bool {
        let mut inner = self.lock();
        if let Some(list) = inner.subscribed.get_mut(uri) {
            // one subscription per call: drop the first matching session (sessions are compared
            // by their transport, the only identity a peer has)
            if let Some(i) = list.iter().position(|p| same(p, peer)) {
                list.remove(i);
            }
            list.retain(|p| !p.is_transport_closed());
            if list.is_empty() {
                inner.subscribed.remove(uri);
            }
        }
        !Self::wanted(&inner, uri)
    }

    /// Whether any open session or stream still wants updates of `uri`.
    fn wanted(inner: &Inner, uri: &str) -> bool {
        inner
            .subscribed
            .get(uri)
            .is_some_and(|l| l.iter().any(|p| !p.is_transport_closed()))
            || inner.streams.iter().any(|s| accepts_uri(s.accepted(), uri))
    }

    /// Whether some agent still wants updates of `uri`.
    pub fn wants(&self, uri: &str) -> bool {
        Self::wanted(&self.lock(), uri)
    }

    /// Tell every agent listening that `list` changed.
    pub async fn changed(&self, list: List) {
        let ears: Vec<Ear> = {
            let mut inner = self.lock();
            inner.sessions.retain(|p| !p.is_transport_closed());
            let accepted = |f: &SubscriptionFilter| match list {
                List::Tools => f.tools_list_changed == Some(true),
                List::Resources => f.resources_list_changed == Some(true),
                List::Prompts => f.prompts_list_changed == Some(true),
            };
            inner
                .sessions
                .iter()
                .cloned()
                .map(Ear::Session)
                .chain(
                    inner
                        .streams
                        .iter()
                        .filter(|s| accepted(s.accepted()))
                        .cloned()
                        .map(Ear::Stream),
                )
                .collect()
        };
        for ear in ears {
            let sent = match (&ear, list) {
                (Ear::Session(p), List::Tools) => p.notify_tool_list_changed().await.is_ok(),
                (Ear::Session(p), List::Resources) => {
                    p.notify_resource_list_changed().await.is_ok()
                }
                (Ear::Session(p), List::Prompts) => p.notify_prompt_list_changed().await.is_ok(),
                (Ear::Stream(s), List::Tools) => s.notify_tool_list_changed().await.is_ok(),
                (Ear::Stream(s), List::Resources) => s.notify_resource_list_changed().await.is_ok(),
                (Ear::Stream(s), List::Prompts) => s.notify_prompt_list_changed().await.is_ok(),
            };
            if !sent {
                tracing::debug!(?list, "an agent could not be told of a list change");
            }
        }
    }

    /// Tell the agents that subscribed to a resource that it was updated.
    pub async fn updated(&self, params: ResourceUpdatedNotificationParam) {
        let (sessions, streams) = {
            let inner = self.lock();
            let sessions: Vec<Peer<RoleServer>> = inner
                .subscribed
                .get(&params.uri)
                .map(|l| {
                    l.iter()
                        .filter(|p| !p.is_transport_closed())
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let streams: Vec<SubscriptionSink> = inner
                .streams
                .iter()
                .filter(|s| accepts_uri(s.accepted(), &params.uri))
                .cloned()
                .collect();
            (sessions, streams)
        };
        for p in sessions {
            let _ = p.notify_resource_updated(params.clone()).await;
        }
        for s in streams {
            let _ = s.notify_resource_updated(params.uri.clone()).await;
        }
    }
}

/// Whether a listen filter asked for updates of `uri`.
pub fn accepts_uri(filter: &SubscriptionFilter, uri: &str) -> bool {
    filter
        .resource_subscriptions
        .as_ref()
        .is_some_and(|uris| uris.iter().any(|u| u == uri))
}

/// Two handles on the same agent session.
fn same(a: &Peer<RoleServer>, b: &Peer<RoleServer>) -> bool {
    match (a.peer_info(), b.peer_info()) {
        (Some(x), Some(y)) => std::sync::Arc::ptr_eq(&x, &y),
        _ => false,
    }
}
