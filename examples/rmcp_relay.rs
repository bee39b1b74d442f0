//! `rmcp_relay`: the floor under any MCP gate built on rmcp, for the benchmark.
//!
//! An rmcp streamable-HTTP server whose `tools/list` and `tools/call` are relayed to one tool
//! server through an rmcp client (a pooled HTTP client with TCP_NODELAY, as Airlock's), and
//! nothing else: no decision, no ledger, no relay of progress. `bench/run` runs it beside
//! Airlock to measure what rmcp on both sides costs on this machine, so Airlock's own cost is the
//! difference. It must never be used as a gate: it lets every call through.
//!
//! Usage: `rmcp_relay --listen 127.0.0.1:9300 --upstream http://127.0.0.1:9100/mcp`

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{Peer, RequestContext, RoleClient, RoleServer};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, ServiceExt};

#[derive(Parser)]
#[command(about = "An rmcp relay with nothing in it: the floor under an rmcp-based gate")]
struct Cli {
    /// Address to serve MCP on (at /mcp).
    #[arg(long)]
    listen: String,
    /// The tool server's MCP endpoint.
    #[arg(long)]
    upstream: String,
}

#[derive(Clone)]
struct Relay {
    peer: Peer<RoleClient>,
    tools: Arc<Vec<Tool>>,
}

impl ServerHandler for Relay {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.peer
            .call_tool(request)
            .await
            .map(Into::into)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .context("HTTP client")?;
    let transport = StreamableHttpClientTransport::with_client(
        http,
        StreamableHttpClientTransportConfig::with_uri(cli.upstream.as_str())
            .max_concurrent_requests(64),
    );
    let client = ()
        .serve(transport)
        .await
        .with_context(|| format!("MCP handshake with {}", cli.upstream))?;
    let tools = client.list_all_tools().await.context("tools/list")?;
    let relay = Relay {
        peer: client.peer().clone(),
        tools: Arc::new(tools),
    };
    let service = StreamableHttpService::new(
        move || Ok(relay.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|s| {
        let _ = s.set_nodelay(true);
    });
    eprintln!("rmcp_relay: http://{}/mcp → {}", cli.listen, cli.upstream);
    axum::serve(listener, axum::Router::new().nest_service("/mcp", service)).await?;
    drop(client);
    Ok(())
}
