//! `conformance_server`: a fake MCP server that answers what the server scenarios of the official
//! conformance suite (`@modelcontextprotocol/conformance` 0.1.10) call, and nothing else.
//!
//! Its tools, resources and prompts are canned fixtures (`test_simple_text`, `test://static-text`,
//! `test_simple_prompt`, ...); the MCP boundary in front of them is real (rmcp over stdio, or
//! streamable HTTP at `http://ADDR/mcp` with `--http ADDR`). It exists only so the suite can be run
//! against it directly and through Airlock, to see what a proxy in the middle keeps or loses.
//!
//! Some tools call back into the client from inside a tool call (`sampling/createMessage`,
//! `elicitation/create`), send log messages and progress, and a subscription is followed by one
//! `notifications/resources/updated`: that is the traffic a gate in between must relay.
//!
//! This server must never touch anything real: no outbound network, no files, no processes, no
//! secrets. Whatever a client sends it (prompts, elicited answers) only goes back to that same
//! client in the tool result. It must never be registered as a tool server outside a test run.
//! In stdio mode stdout is the MCP channel, so diagnostics go to stderr only.

// The suite exercises the pre-2026-07-28 protocol: logging, sampling and resources/subscribe,
// which rmcp marks deprecated (SEP-2577, SEP-2567). They are the point of this server.
#![allow(deprecated)]

mod catalog;
mod tools;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use clap::Parser;
use rmcp::{
    ErrorData, RoleServer, ServerHandler, ServiceExt,
    handler::server::router::tool::ToolRouter,
    model::{
        CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResponse,
        Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
        LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ResourceUpdatedNotificationParam,
        ServerCapabilities, ServerConfig, SetLevelRequestParams, SubscribeRequestParams,
        UnsubscribeRequestParams,
    },
    service::{Peer, RequestContext},
    tool_handler,
};

#[derive(Parser, Debug)]
#[command(
    name = "conformance_server",
    about = "Fake MCP server for the official conformance suite (stdio by default)"
)]
struct Cli {
    /// Serve MCP over streamable HTTP at http://ADDR/mcp instead of stdio.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
}

/// One MCP session's state: its log level and subscriptions. A new one per session, so one
/// client's `logging/setLevel` or subscriptions never leak into another's.
#[derive(Clone)]
pub struct Conformance {
    log_level: Arc<Mutex<LoggingLevel>>,
    subscriptions: Arc<Mutex<BTreeSet<String>>>,
    tool_router: ToolRouter<Self>,
}

/// Severity order of the MCP log levels (`LoggingLevel` is not `Ord`).
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

impl Conformance {
    fn new() -> Self {
        Self {
            log_level: Arc::new(Mutex::new(LoggingLevel::Info)),
            subscriptions: Arc::new(Mutex::new(BTreeSet::new())),
            tool_router: Self::tool_router(),
        }
    }

    /// Send `notifications/message` unless it is below the level the client set.
    pub(crate) async fn log(&self, peer: &Peer<RoleServer>, level: LoggingLevel, text: &str) {
        let min = *self.log_level.lock().unwrap_or_else(|e| e.into_inner());
        if severity(level) < severity(min) {
            return;
        }
        let param = LoggingMessageNotificationParam::new(level, serde_json::json!(text))
            .with_logger("conformance");
        if let Err(e) = peer.notify_logging_message(param).await {
            eprintln!("conformance_server: log notification not sent: {e}");
        }
    }

    fn subscribed(&self, uri: &str) -> bool {
        let subs = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
        subs.contains(uri)
    }
}

type Ctx = RequestContext<RoleServer>;

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Conformance {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_completions()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_tools()
                .build(),
        )
        .with_server_info(Implementation::new(
            "conformance",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions("Fixtures for the MCP conformance suite. Nothing here is real.")
    }

    async fn set_level(&self, request: SetLevelRequestParams, _: Ctx) -> Result<(), ErrorData> {
        *self.log_level.lock().unwrap_or_else(|e| e.into_inner()) = request.level;
        Ok(())
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: Ctx,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(catalog::resources()))
    }

    async fn list_resource_templates(
        &self,
        _: Option<PaginatedRequestParams>,
        _: Ctx,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            catalog::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: Ctx,
    ) -> Result<ReadResourceResponse, ErrorData> {
        catalog::read(&request.uri).map(Into::into)
    }

    /// Record the subscription, then (a fixture's idea of a change) tell the client once, shortly
    /// after the acknowledgement, that the resource was updated.
    async fn subscribe(&self, request: SubscribeRequestParams, cx: Ctx) -> Result<(), ErrorData> {
        let uri = request.uri;
        catalog::read(&uri)?;
        self.subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uri.clone());
        let (this, peer) = (self.clone(), cx.peer.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if this.subscribed(&uri) {
                let updated = ResourceUpdatedNotificationParam::new(uri);
                // the client may be gone already: nothing to do then
                let _ = peer.notify_resource_updated(updated).await;
            }
        });
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _: Ctx,
    ) -> Result<(), ErrorData> {
        let mut subs = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
        subs.remove(&request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        _: Ctx,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(catalog::prompts()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: Ctx,
    ) -> Result<GetPromptResponse, ErrorData> {
        catalog::prompt(&request.name, request.arguments.as_ref()).map(Into::into)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _: Ctx,
    ) -> Result<CompleteResult, ErrorData> {
        catalog::complete(&request.r#ref, &request.argument)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(addr) = &cli.http {
        use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
        use rmcp::transport::streamable_http_server::{
            StreamableHttpServerConfig, StreamableHttpService,
        };
        let service = StreamableHttpService::new(
            || Ok(Conformance::new()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("conformance_server: cannot listen on {addr}"))?;
        eprintln!("conformance_server: serving fixtures at http://{addr}/mcp");
        axum::serve(listener, axum::Router::new().nest_service("/mcp", service)).await?;
        return Ok(());
    }
    eprintln!("conformance_server: serving fixtures on stdio");
    let server = Conformance::new().serve(rmcp::transport::stdio()).await?;
    server.waiting().await?;
    Ok(())
}
