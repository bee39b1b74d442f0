//! The MCP client handler of one tool server connection: what the server says or asks,
//! handed to the [`Relay`] to pass on to the agent whose call it is about (or refused). It must
//! never route anything itself.

// Logging (SEP-2577) is deprecated from protocol 2026-07-28, but live in older sessions.
#![allow(deprecated)]

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{
    ClientCapabilities, ClientConfig, ClientResult, CreateMessageRequestParams,
    CreateMessageResult, ElicitRequestParams, ElicitResult, GetExtensions, Implementation,
    InputRequest, ListRootsResult, LoggingMessageNotificationParam, ProgressNotificationParam,
    Request, RequestId, RequestNoParam, ResourceUpdatedNotificationParam, ServerRequest,
};
use rmcp::service::{NotificationContext, Peer, RequestContext, RoleClient, RoleServer};

use super::super::agents::List;
use super::super::mrtr;
use super::{Asker, Relay};

/// The MCP client handler of one tool server connection.
#[derive(Clone)]
pub struct Downstream {
    pub(in crate::mcp) relay: Arc<Relay>,
    pub(in crate::mcp) server: String,
    /// How long an agent may take to answer a relayed question (the server's call timeout).
    pub(in crate::mcp) timeout: std::time::Duration,
    /// Progress and log messages received from this server, and handled.
    pub(in crate::mcp) order: Arc<crate::mcp::order::Counts>,
}

/// A question from a tool server that no agent can be asked.
fn unaskable(server: &str, what: &str, why: &str) -> ErrorData {
    tracing::warn!(server, what, why, "tool server request refused");
    ErrorData::invalid_request(format!("Airlock cannot relay {what}: {why}"), None)
}

fn unexpected() -> ErrorData {
    ErrorData::internal_error("the agent answered with an unexpected result", None)
}

/// An agent's answer failed: pass its error on when it has one.
fn relayed_error(e: rmcp::ServiceError) -> ErrorData {
    match e {
        rmcp::ServiceError::McpError(e) => e,
        other => ErrorData::internal_error(format!("the agent did not answer: {other}"), None),
    }
}

impl Downstream {
    /// The agent to put a question to: the one actor with calls in flight on this server, and
    /// whether it declared `capable`.
    fn asked(
        &self,
        what: &str,
        capable: impl Fn(&ClientCapabilities) -> bool,
    ) -> Result<Asker, ErrorData> {
        let sole = self.relay.sole_agent(&self.server).ok_or_else(|| {
            unaskable(
                &self.server,
                what,
                "it may only be asked while calls of one agent are in flight on this server",
            )
        })?;
        // a 2026-07-28 agent declares what it can answer with each request, not at initialize
        let declared = match &sole.rounds {
            Some(r) => capable(&r.capabilities),
            None => sole
                .peer
                .peer_info()
                .is_some_and(|i| capable(&i.capabilities)),
        };
        if !declared {
            return Err(unaskable(
                &self.server,
                what,
                "the agent did not declare that it can answer it",
            ));
        }
        Ok(match sole.rounds {
            Some(r) => Asker::Rounds(r),
            None => Asker::Session(sole.peer, sole.request),
        })
    }
}

/// Put a question to an agent on the stream of its call's request (over HTTP, the call's own
/// SSE stream), and wait for its answer.
async fn ask(
    peer: Peer<RoleServer>,
    call: RequestId,
    mut request: ServerRequest,
    timeout: std::time::Duration,
) -> Result<ClientResult, ErrorData> {
    request
        .extensions_mut()
        .insert(rmcp::service::OriginatingRequestId(call));
    // a task of its own: the tool server's request id, which rmcp keeps task-locally while this
    // handler runs, is not the agent's
    let asked = tokio::spawn(async move { peer.send_request(request).await });
    tokio::time::timeout(timeout, asked)
        .await
        .map_err(|_| ErrorData::internal_error("the agent did not answer in time", None))?
        .map_err(|e| ErrorData::internal_error(format!("relay task failed: {e}"), None))?
        .map_err(relayed_error)
}

impl rmcp::ClientHandler for Downstream {
    /// What Airlock tells a tool server it can do: everything an agent behind it may do, since
    /// questions are relayed to the agent (and refused when that agent cannot answer them).
    fn get_info(&self) -> ClientConfig {
        let capabilities: ClientCapabilities = serde_json::from_value(serde_json::json!({
            "sampling": {},
            "elicitation": {"form": {}, "url": {}},
            "roots": {"listChanged": true},
        }))
        .unwrap_or_default();
        ClientConfig::new(
            capabilities,
            Implementation::new("airlock", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let (peer, call) = match self.asked("a sampling request", |c| c.sampling.is_some())? {
            Asker::Session(peer, call) => (peer, call),
            Asker::Rounds(r) => {
                let q = InputRequest::CreateMessage(Request::new(params));
                return mrtr::ask(&r, q, self.timeout).await;
            }
        };
        let request = ServerRequest::CreateMessageRequest(Request::new(params));
        match ask(peer, call, request, self.timeout).await? {
            ClientResult::CreateMessageResult(r) => Ok(*r),
            _ => Err(unexpected()),
        }
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let (peer, call) = match self
            .asked("an elicitation request", |c| c.elicitation.is_some())?
        {
            Asker::Session(peer, call) => (peer, call),
            Asker::Rounds(_)
                if matches!(params, ElicitRequestParams::UrlElicitationParams { .. }) =>
            {
                return Err(unaskable(
                    &self.server,
                    "a URL-mode elicitation",
                    "its agent speaks protocol 2026-07-28, where Airlock relays questions in the call's answer and has no way back for the notice that the URL flow completed; ask in form mode",
                ));
            }
            Asker::Rounds(r) => {
                let q = InputRequest::Elicitation(Request::new(params));
                return mrtr::ask(&r, q, self.timeout).await;
            }
        };
        let request = ServerRequest::ElicitRequest(Request::new(params));
        match ask(peer, call, request, self.timeout).await? {
            ClientResult::ElicitResult(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        let (peer, call) = match self.asked("a roots request", |c| c.roots.is_some())? {
            Asker::Session(peer, call) => (peer, call),
            Asker::Rounds(r) => {
                return mrtr::ask(
                    &r,
                    InputRequest::ListRoots(RequestNoParam::default()),
                    self.timeout,
                )
                .await;
            }
        };
        let request = ServerRequest::ListRootsRequest(RequestNoParam::default());
        match ask(peer, call, request, self.timeout).await? {
            ClientResult::ListRootsResult(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    /// Re-listed and re-gated by the live watcher before agents hear of it.
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        tracing::info!(server = %self.server, "tool server says its tool list changed");
        self.relay.mark_changed(&self.server);
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.relay.agents.changed(List::Resources).await;
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.relay.agents.changed(List::Prompts).await;
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.relay.agents.updated(params).await;
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _handled = self.order.handling();
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
        let _handled = self.order.handling();
        tracing::debug!(server = %self.server, data = %params.data, "tool server log message");
        if let Some(sole) = self.relay.sole_agent(&self.server).filter(|s| !s.parked) {
            let _ = sole.peer.notify_logging_message(params).await;
        }
    }
}
