//! Tool servers: start each configured server as a child process, list its tools, forward calls.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, MetaObject,
    RequestMetaObject, ResultType, ServerResult,
};
use rmcp::service::PeerRequestOptions;
use rmcp::service::{RoleClient, RunningService};

use serde_json::{Map, Value};

use super::relay::{Downstream, Relay};

mod cancel;
mod connect;
mod headers;
pub mod health;
mod tools;
use crate::config::ServerConfig;
use cancel::Abandon;
use connect::{Link, futures_join_all, start};
use health::Health;
use tokio_util::sync::CancellationToken;
pub use tools::ToolSet;

/// How long a tool server may take to start and answer its first `tools/list`
/// (a `cargo run` server may compile first).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(300);

/// A tool as a tool server describes it, with the name Airlock exposes it under.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    pub server: String,
    pub name: String,
    pub exposed: String,
    /// The server's full tool definition (JSON), relayed to agents under `exposed`.
    pub definition: Value,
    /// SHA-256 over the server's identity and the tool's name, description and input schema:
    /// what the rug-pull guard pins. Annotations (hints) are not part of it and never gate.
    pub definition_hash: String,
}

/// A tool result as the server returned it (MCP `CallToolResult` JSON, with `resultType` added
/// when an older server left it out); its content is relayed to the agent as is.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolReply {
    /// The result as JSON (what is hashed into the outcome row and kept for approvals).
    pub json: Value,
    pub is_error: bool,
    /// The same result as the tool server sent it, relayed to the agent as is (opaque outside
    /// `mcp`: no rmcp type is used elsewhere).
    pub(in crate::mcp) result: CallToolResult,
}

impl ToolReply {
    /// A result recorded earlier (its JSON as the agent got it), to give again; `None` if it
    /// does not read as a tool result.
    pub fn recorded(json: Value) -> Option<ToolReply> {
        let result: CallToolResult = serde_json::from_value(json.clone()).ok()?;
        Some(ToolReply {
            is_error: result.is_error.unwrap_or(false),
            json,
            result,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DownstreamError {
    #[error("{0}")]
    NotOffered(String),
    #[error("tool server `{0}` is not running (it failed to start or has exited)")]
    Unavailable(String),
    #[error("tool server `{server}` failed the call: {message}")]
    Call { server: String, message: String },
    #[error(
        "tool server `{server}` did not answer within {secs}s; the call may or may not have run"
    )]
    Timeout { server: String, secs: u64 },
    /// The agent waiting for the call cancelled it: before it was sent (it did not run), or
    /// while it ran (the tool server was told to stop; it may have done part of it).
    #[error("{}", if *sent {
        format!("the agent cancelled the call; tool server `{server}` was told to stop it and may have done part of it")
    } else {
        format!("the agent cancelled the call before it was sent to tool server `{server}`; it did not run")
    })]
    Cancelled { server: String, sent: bool },
}

struct Server {
    config: ServerConfig,
    service: Option<RunningService<RoleClient, Downstream>>,
    status: String,
    health: Arc<Health>,
}

/// Every configured tool server and the tools they serve, routed by exposed name.
pub struct ToolServers {
    relay: Arc<Relay>,
    servers: Vec<Server>,
    /// Swapped whole when a server's tool list changes.
    set: RwLock<Arc<ToolSet>>,
}

/// A problem met while connecting, reported to the operator (and `map`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectProblem {
    pub server: String,
    pub message: String,
}

impl ToolServers {
    /// Start every server concurrently and list its tools. A server that fails is reported and
    /// left out; the others keep serving.
    pub async fn connect(configs: &[ServerConfig]) -> (ToolServers, Vec<ConnectProblem>) {
        ToolServers::connect_links(configs.iter().cloned().map(Link::Configured).collect()).await
    }

    /// [`ToolServers::connect`] with each server reached over a byte stream already open to it
    /// (a server in this process, across `tokio::io::duplex`: MCP as over stdio, no child).
    pub async fn connect_streams(
        servers: Vec<(ServerConfig, tokio::io::DuplexStream)>,
    ) -> (ToolServers, Vec<ConnectProblem>) {
        let links = servers.into_iter().map(|(c, io)| Link::Stream(c, io));
        ToolServers::connect_links(links.collect()).await
    }

    async fn connect_links(links: Vec<Link>) -> (ToolServers, Vec<ConnectProblem>) {
        let relay = Arc::new(Relay::default());
        let started = futures_join_all(links.into_iter().map(|l| start(l, relay.clone()))).await;
        let mut servers = Vec::new();
        let mut set = ToolSet::default();
        let mut problems = Vec::new();
        for (config, outcome) in started {
            match outcome {
                Ok((service, defs)) => {
                    problems.extend(set.add(&config.name, defs));
                    servers.push(Server {
                        config,
                        service: Some(service),
                        status: "running".into(),
                        health: Arc::default(),
                    });
                }
                Err(message) => {
                    problems.push(ConnectProblem {
                        server: config.name.clone(),
                        message: message.clone(),
                    });
                    servers.push(Server {
                        config,
                        service: None,
                        status: format!("failed: {message}"),
                        health: Arc::default(),
                    });
                }
            }
        }
        (
            ToolServers {
                relay,
                servers,
                set: RwLock::new(Arc::new(set)),
            },
            problems,
        )
    }

    /// Every exposed tool, in server order, as served now (a snapshot: a later change of a
    /// server's tool list does not alter it).
    pub fn tools(&self) -> Arc<ToolSet> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The served definition of an exposed name.
    pub fn route(&self, exposed: &str) -> Option<ToolDef> {
        self.tools().route(exposed).cloned()
    }

    /// The definition of `tool` on `server`, if served.
    pub fn route_of(&self, server: &str, tool: &str) -> Option<ToolDef> {
        self.tools().route_of(server, tool).cloned()
    }

    /// Per-server state for status output: how it started, and whether its connection is up now
    /// (an HTTP server that restarted is reconnected on the next call) and it answers pings.
    pub fn status(&self) -> Vec<(String, String)> {
        self.servers
            .iter()
            .map(|s| {
                let now = match &s.service {
                    Some(svc) if svc.is_transport_closed() => "disconnected".to_string(),
                    Some(_) => s.health.down().unwrap_or_else(|| s.status.clone()),
                    None => s.status.clone(),
                };
                (s.config.name.clone(), now)
            })
            .collect()
    }

    /// Ping every connected server once, concurrently, and note who answered
    /// ([`health`]; `serve` calls this every [`health::PROBE_EVERY`]).
    pub async fn probe(&self) {
        let mut pings = tokio::task::JoinSet::new();
        for s in &self.servers {
            let Some(svc) = s.service.as_ref().filter(|svc| !svc.is_transport_closed()) else {
                continue;
            };
            let (peer, health) = (svc.peer().clone(), s.health.clone());
            pings.spawn(async move {
                let ping = peer.send_request(ClientRequest::PingRequest(Default::default()));
                match tokio::time::timeout(health::PROBE_TIMEOUT, ping).await {
                    Ok(Ok(_)) => health.answered(),
                    Ok(Err(e)) => health.missed(&e.to_string()),
                    Err(_) => health.missed("no answer within 4 s"),
                }
            });
        }
        while pings.join_next().await.is_some() {}
    }

    /// [`ToolServers::probe`] every `every`, until aborted.
    pub async fn probe_every(servers: Arc<ToolServers>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            servers.probe().await;
        }
    }

    /// The servers whose connection is up: (name, service).
    pub(super) fn live(
        &self,
    ) -> impl Iterator<Item = (&str, &RunningService<RoleClient, Downstream>)> {
        self.servers.iter().filter_map(|s| {
            s.service
                .as_ref()
                .filter(|svc| !svc.is_transport_closed())
                .map(|svc| (s.config.name.as_str(), svc))
        })
    }

    /// A server's name for something it serves, as agents see it (its prefix added).
    pub(super) fn exposed_name(&self, server: &str, name: &str) -> String {
        self.servers
            .iter()
            .find(|s| s.config.name == server)
            .map_or_else(|| name.to_string(), |s| s.config.exposed(name))
    }

    /// The server's own name for an exposed one, if it carries that server's prefix.
    pub(super) fn inner_name(&self, server: &str, exposed: &str) -> Option<String> {
        let s = self.servers.iter().find(|s| s.config.name == server)?;
        exposed
            .strip_prefix(s.config.prefix.as_str())
            .map(str::to_string)
    }

    /// Where progress and log messages of calls in flight go back to their agents.
    pub fn relay(&self) -> &Arc<Relay> {
        &self.relay
    }

    /// Forward one call. The arguments are passed exactly as the agent sent them; with a relay
    /// key, the tool server's progress and log messages reach the agent that made it. When
    /// `cancel` fires (the agent waiting for the call cancelled it), the tool server is told to
    /// stop the request.
    pub async fn call(
        &self,
        server: &str,
        tool: &str,
        arguments: Map<String, Value>,
        meta: Option<Map<String, Value>>,
        relay: Option<&str>,
        cancel: Option<&CancellationToken>,
    ) -> Result<ToolReply, DownstreamError> {
        let s = self
            .servers
            .iter()
            .find(|s| s.config.name == server)
            .ok_or_else(|| DownstreamError::Unavailable(server.to_string()))?;
        let service = s
            .service
            .as_ref()
            .filter(|svc| !svc.is_transport_closed())
            .ok_or_else(|| DownstreamError::Unavailable(server.to_string()))?;
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = Some(arguments);
        params.meta = meta
            .filter(|m| !m.is_empty())
            .map(|m| RequestMetaObject(MetaObject(m)));
        let mut options = PeerRequestOptions::no_options();
        // rmcp cancels the request on the server when it times out
        options.timeout = Some(s.config.timeout);
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        if cancel.is_some_and(CancellationToken::is_cancelled) {
            return Err(DownstreamError::Cancelled {
                server: server.to_string(),
                sent: false,
            });
        }
        // whose call this is, bound before it is sent: what the server says about it at once
        // (a log message before the request's handle is back) reaches the right agent, or none
        let _unrouted = match relay {
            Some(key) => {
                self.relay.bind_server(key, server);
                None
            }
            None => Some(self.relay.unrouted(server)),
        };
        let handle = service
            .peer()
            .send_cancellable_request(request, options)
            .await;
        let answer = match handle {
            Ok(handle) => {
                // rmcp gives every request its own progress token: progress the server sends
                // under it belongs to this call's agent
                if let Some(key) = relay {
                    self.relay.bind(key, server, handle.progress_token.clone());
                }
                // If the agent cancels the call, or goes (this future dropped), the tool server
                // is told to stop too.
                let mut abandoned = Abandon::arm(
                    service.peer().clone(),
                    handle.id.clone(),
                    self.relay.clone(),
                    server,
                );
                let response = handle.await_response();
                tokio::pin!(response);
                let answer = tokio::select! {
                    answer = &mut response => answer,
                    () = cancel::cancelled(cancel) => {
                        // rmcp answers the request as cancelled once the notice is sent, unless
                        // the server's answer came first (then the call ran, and that stands)
                        abandoned.fire();
                        response.await
                    }
                };
                abandoned.disarm();
                // what the server said about the call before answering goes first
                service.service().order.catch_up().await;
                if answer.is_ok() {
                    s.health.answered();
                } else if let Err(rmcp::ServiceError::Timeout { .. }) = &answer {
                    // a call it never answered counts like a missed ping
                    s.health.missed("a call timed out");
                }
                match answer {
                    Ok(ServerResult::CallToolResult(r)) => Ok(r),
                    Ok(ServerResult::EmptyResult(_)) => Ok(CallToolResult::default()),
                    Ok(_) => Err(rmcp::ServiceError::UnexpectedResponse),
                    Err(rmcp::ServiceError::Timeout { .. }) => {
                        return Err(DownstreamError::Timeout {
                            server: server.to_string(),
                            secs: s.config.timeout.as_secs(),
                        });
                    }
                    Err(rmcp::ServiceError::Cancelled { .. }) => {
                        return Err(DownstreamError::Cancelled {
                            server: server.to_string(),
                            sent: true,
                        });
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok(mut result) => {
                // Results from servers on older protocol versions carry no result type; agents on
                // 2026-07-28 require one.
                result.result_type.get_or_insert(ResultType::COMPLETE);
                let is_error = result.is_error.unwrap_or(false);
                let json = serde_json::to_value(&result).map_err(|e| DownstreamError::Call {
                    server: server.into(),
                    message: e.to_string(),
                })?;
                Ok(ToolReply {
                    json,
                    is_error,
                    result,
                })
            }
            Err(e) if service.is_transport_closed() => {
                tracing::error!(server, error = %e, "tool server connection closed");
                Err(DownstreamError::Unavailable(server.to_string()))
            }
            Err(e) => Err(DownstreamError::Call {
                server: server.into(),
                message: e.to_string(),
            }),
        }
    }

    /// Close every connection (children are stopped when their transport drops).
    pub async fn shutdown(self) {
        for s in self.servers {
            if let Some(svc) = s.service {
                let _ = svc.cancel().await;
            }
        }
    }
}
