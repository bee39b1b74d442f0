//! The demo shop: a fake online shop served as a real MCP tool server (rmcp over stdio, or
//! streamable HTTP with `--http`). `airlock demo-shop` (hidden) and `examples/demo_shop.rs` run
//! it; `builtin = "demo-shop"` in a `[[server]]` starts it from Airlock's own binary, so the demo
//! needs nothing but that binary.
//!
//! Everything behind the tools is in memory: five hard-coded orders, a tag set per order, and
//! "side effects" (emails, refunds, deletions) that only produce a text reply. With `--log FILE`,
//! every tool invocation that actually executes appends one JSON line `{"tool", "arguments"}` to
//! FILE (flushed before the result is returned); tests use it to prove a denied call never
//! arrived. With `--quiet` (load tests) no tool prints its per-call stderr line and `echo` sends no
//! log message.
//!
//! It must never touch anything real: no network but its own `--http` listener, no email, no
//! payment provider, no files other than the `--log` file. Stdout is the MCP channel, so
//! diagnostics go to stderr only. It lives under `mcp` because it speaks MCP through rmcp.

mod handler;
mod shop;

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;

use shop::DemoShop;

/// The name `builtin = "…"` gives this server in a `[[server]]`, and its hidden subcommand.
pub const BUILTIN: &str = "demo-shop";

/// The demo shop's flags (the same for `airlock demo-shop` and `examples/demo_shop`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Options {
    /// Append one JSON line per executed tool call to this file.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Milliseconds `refund_order` takes after it is recorded (tests of a crash mid-call).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub refund_delay_ms: u64,
    /// Present a changed `refund_order` definition (tests of the rug-pull guard).
    #[arg(long)]
    pub rug_pull: bool,
    /// Serve honest definitions until the first `echo`, then change `search_orders`'s
    /// description and send `notifications/tools/list_changed` (a rug pull mid-session).
    #[arg(long)]
    pub rug_pull_on_echo: bool,
    /// Serve MCP over streamable HTTP at http://ADDR/mcp instead of stdio.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// For load tests: no per-call line on stderr, and `echo` sends no log message.
    #[arg(long)]
    pub quiet: bool,
}

/// Why the shop stopped.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    #[error("demo_shop: cannot open log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("demo_shop: cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("demo_shop: {0}")]
    Io(#[from] std::io::Error),
    #[error("demo_shop: MCP: {0}")]
    Mcp(String),
}

/// Serve the shop until its agent (stdio) goes away, or forever (`--http`).
pub async fn run(options: Options) -> Result<(), ShopError> {
    let shop = DemoShop::from_options(&options)?;
    match &options.http {
        Some(addr) => serve_http(shop, addr).await,
        None => {
            eprintln!("demo_shop: serving fake shop on stdio");
            serve_on(shop, rmcp::transport::stdio()).await
        }
    }
}

/// Serve the shop on a byte stream (one end of `tokio::io::duplex`) until the other end goes
/// away: the shop in its client's process, MCP as over stdio (tests of the gate's driver).
pub async fn serve_stream(options: Options, io: tokio::io::DuplexStream) -> Result<(), ShopError> {
    let shop = DemoShop::from_options(&options)?;
    let (read, write) = tokio::io::split(io);
    serve_on(
        shop,
        rmcp::transport::async_rw::AsyncRwTransport::new_server(read, write),
    )
    .await
}

async fn serve_on<T, E, A>(shop: DemoShop, transport: T) -> Result<(), ShopError>
where
    T: rmcp::transport::IntoTransport<rmcp::RoleServer, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let server = shop
        .serve(transport)
        .await
        .map_err(|e| ShopError::Mcp(e.to_string()))?;
    server
        .waiting()
        .await
        .map_err(|e| ShopError::Mcp(e.to_string()))?;
    Ok(())
}

impl DemoShop {
    fn from_options(options: &Options) -> Result<DemoShop, ShopError> {
        let log = match &options.log {
            Some(path) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| ShopError::Log {
                        path: path.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        let mut shop = DemoShop::new(
            log,
            Duration::from_millis(options.refund_delay_ms),
            options.rug_pull,
        );
        shop.pull_on_echo = options.rug_pull_on_echo;
        shop.quiet = options.quiet;
        Ok(shop)
    }
}

async fn serve_http(shop: DemoShop, addr: &str) -> Result<(), ShopError> {
    use axum::serve::ListenerExt;
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let service = StreamableHttpService::new(
        move || Ok(shop.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ShopError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    // without TCP_NODELAY the end of a response stream waits out Nagle and a delayed ACK
    // (~40 ms a call for clients that read to the end, e.g. mcp-proxy's)
    let listener = listener.tap_io(|s| {
        let _ = s.set_nodelay(true);
    });
    eprintln!("demo_shop: serving fake shop at http://{addr}/mcp");
    axum::serve(listener, axum::Router::new().nest_service("/mcp", service)).await?;
    Ok(())
}
