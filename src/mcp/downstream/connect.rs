//! How a tool server is reached and its tools first listed: a child over stdio, a URL over
//! streamable HTTP, or a byte stream already open to a server in this process. It must never
//! route or make a call: that is [`super::ToolServers`]'.

use std::sync::Arc;

use rmcp::service::{RoleClient, RunningService, ServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::TokioChildProcess;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

use super::super::order::Ordered;
use super::super::relay::{Downstream, Relay};
use super::headers::resolve_headers;
use super::tools::definitions;
use super::{STARTUP_TIMEOUT, ToolDef};
use crate::config::ServerConfig;

/// How a tool server is reached: as configured (a child over stdio, or a URL), or over a
/// stream already open to it.
pub(super) enum Link {
    Configured(ServerConfig),
    Stream(ServerConfig, tokio::io::DuplexStream),
}

pub(super) async fn start(
    link: Link,
    relay: Arc<Relay>,
) -> (
    ServerConfig,
    Result<(RunningService<RoleClient, Downstream>, Vec<ToolDef>), String>,
) {
    let (config, stream) = match link {
        Link::Configured(c) => (c, None),
        Link::Stream(c, io) => (c, Some(io)),
    };
    let handler = Downstream {
        relay,
        server: config.name.clone(),
        timeout: config.timeout,
        order: Arc::default(),
    };
    let outcome = tokio::time::timeout(STARTUP_TIMEOUT, connect_one(&config, handler, stream))
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "did not answer within {}s",
                STARTUP_TIMEOUT.as_secs()
            ))
        });
    (config, outcome)
}

async fn connect_one(
    config: &ServerConfig,
    handler: Downstream,
    stream: Option<tokio::io::DuplexStream>,
) -> Result<(RunningService<RoleClient, Downstream>, Vec<ToolDef>), String> {
    let service = match (&config.url, stream) {
        (_, Some(io)) => {
            let counts = handler.order.clone();
            let (read, write) = tokio::io::split(io);
            let transport = rmcp::transport::async_rw::AsyncRwTransport::new_client(read, write);
            handler
                .serve(Ordered::new(transport, counts))
                .await
                .map_err(|e| format!("MCP handshake failed: {e}"))?
        }
        (Some(url), None) => {
            // Connections are kept and reused (rmcp's default client opens one per request),
            // with TCP_NODELAY so a reused one does not wait on delayed ACKs; redirects are not
            // followed, so the headers (secrets) go only to the configured URL.
            let client = reqwest::Client::builder()
                .tcp_nodelay(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
            let transport = StreamableHttpClientTransport::with_client(
                client,
                StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(resolve_headers(config)?)
                    .max_concurrent_requests(64),
            );
            let counts = handler.order.clone();
            handler
                .serve(Ordered::new(transport, counts))
                .await
                .map_err(|e| format!("MCP handshake with {url} failed: {e}"))?
        }
        (None, None) => {
            let mut cmd = tokio::process::Command::new(&config.command);
            cmd.args(&config.args)
                .envs(&config.env)
                .current_dir(&config.cwd)
                .kill_on_drop(true);
            let transport = TokioChildProcess::new(cmd)
                .map_err(|e| format!("cannot start `{}`: {e}", config.command))?;
            let counts = handler.order.clone();
            handler
                .serve(Ordered::new(transport, counts))
                .await
                .map_err(|e| format!("MCP handshake failed: {e}"))?
        }
    };
    let defs = definitions(config, &service).await?;
    Ok((service, defs))
}

/// Run futures concurrently and collect their outputs in order.
pub(super) async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => tracing::error!(error = %e, "tool server start task failed"),
        }
    }
    out
}
