//! `rmcp_relay`: the floor under any MCP gate built on rmcp, for the benchmark.
//!
//! An rmcp streamable-HTTP server whose `tools/list` and `tools/call` are relayed to one tool
//! server through an rmcp client (a pooled HTTP client with TCP_NODELAY, as Airlock's), and
//! nothing else: no decision, no ledger, no relay of progress. `bench/run` runs it beside
//! Airlock to measure what rmcp on both sides costs on this machine, so Airlock's own cost is the
//! difference. It must never be used as a gate: it lets every call through.
//!
//! Usage: `rmcp_relay --listen 127.0.0.1:9300 --upstream http://127.0.0.1:9100/mcp` (add
//! `--stateless` for rmcp's stateless mode with plain JSON answers), or over stdio on both sides:
//! `rmcp_relay --stdio --upstream-command demo_shop --quiet` (the command is the rest of the line).

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{Peer, RequestContext, RoleClient, RoleServer};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ErrorData, ServerHandler, ServiceExt};

#[derive(Parser)]
#[command(about = "An rmcp relay with nothing in it: the floor under an rmcp-based gate")]
struct Cli {
    /// Address to serve MCP on (at /mcp).
    #[arg(long, required_unless_present = "stdio")]
    listen: Option<String>,
    /// Serve MCP on stdin/stdout instead.
    #[arg(long, conflicts_with = "listen")]
    stdio: bool,
    /// With `--stdio`: put stdin/stdout on tokio's reactor as Airlock does
    /// (`airlock::mcp::stdio`), instead of rmcp's `stdio()` (tokio's blocking handles).
    #[arg(long, requires = "stdio")]
    reactor_stdio: bool,
    /// Serve HTTP in rmcp's stateless mode, answering with plain JSON (default: legacy sessions
    /// with an SSE answer per request, rmcp's default).
    #[arg(long, conflicts_with = "stdio")]
    stateless: bool,
    /// The tool server's MCP endpoint.
    #[arg(long, required_unless_present = "upstream_command")]
    upstream: Option<String>,
    /// Instead: start this tool server (the rest of the line) and speak to it over stdio.
    #[arg(long, num_args = 1.., allow_hyphen_values = true, conflicts_with = "upstream")]
    upstream_command: Vec<String>,
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
    let client = match (&cli.upstream, cli.upstream_command.split_first()) {
        (Some(url), _) => {
            let http = reqwest::Client::builder()
                .tcp_nodelay(true)
                .build()
                .context("HTTP client")?;
            let transport = StreamableHttpClientTransport::with_client(
                http,
                StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .max_concurrent_requests(64),
            );
            ().serve(transport)
                .await
                .with_context(|| format!("MCP handshake with {url}"))?
        }
        (None, Some((program, args))) => {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args);
            let (transport, _) = TokioChildProcess::builder(cmd)
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .with_context(|| format!("cannot start {program}"))?;
            ().serve(transport)
                .await
                .with_context(|| format!("MCP handshake with {program}"))?
        }
        (None, None) => anyhow::bail!("give --upstream URL or --upstream-command COMMAND"),
    };
    let tools = client.list_all_tools().await.context("tools/list")?;
    let relay = Relay {
        peer: client.peer().clone(),
        tools: Arc::new(tools),
    };
    match &cli.listen {
        None => {
            if cli.reactor_stdio {
                let (input, output, on_reactor) = airlock::mcp::stdio::agent_stdio();
                eprintln!("rmcp_relay: stdio (on the reactor: {on_reactor}) → upstream");
                relay.serve((input, output)).await?.waiting().await?;
            } else {
                eprintln!("rmcp_relay: stdio → upstream");
                relay
                    .serve(rmcp::transport::stdio())
                    .await?
                    .waiting()
                    .await?;
            }
        }
        Some(listen) => serve_http(relay, listen, cli.stateless).await?,
    }
    drop(client);
    Ok(())
}

async fn serve_http(relay: Relay, listen: &str, stateless: bool) -> anyhow::Result<()> {
    let mut config = StreamableHttpServerConfig::default();
    if stateless {
        config = config
            .with_legacy_session_mode(false)
            .with_json_response(true);
    }
    let service = StreamableHttpService::new(
        move || Ok(relay.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|s| {
        let _ = s.set_nodelay(true);
    });
    eprintln!("rmcp_relay: http://{listen}/mcp (stateless: {stateless})");
    axum::serve(listener, axum::Router::new().nest_service("/mcp", service)).await?;
    Ok(())
}
