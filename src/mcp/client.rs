//! A plain MCP client of a child process over stdio: start it, list its tools, call one, and
//! answer in JSON (a `tools/call` result as the protocol writes it). `airlock demo` is an agent
//! through it, as Claude Desktop or an SDK would be.
//!
//! It must never let an rmcp type out of this module, and never decide anything about a call.

use std::process::Stdio;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::Value;

/// Why the client could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot start the server: {0}")]
    Start(#[from] std::io::Error),
    #[error("MCP handshake failed: {0}")]
    Handshake(String),
    #[error("MCP request failed: {0}")]
    Request(String),
}

/// An MCP session with a child process over its stdin and stdout.
pub struct StdioClient {
    service: RunningService<RoleClient, ()>,
}

impl StdioClient {
    /// Start `command` (its stderr goes to `stderr`) and complete the MCP handshake.
    pub async fn start(
        command: tokio::process::Command,
        stderr: Stdio,
    ) -> Result<StdioClient, ClientError> {
        let (transport, _) = TokioChildProcess::builder(command).stderr(stderr).spawn()?;
        let service = ().serve(transport).await.map_err(|e| ClientError::Handshake(e.to_string()))?;
        Ok(StdioClient { service })
    }

    /// The names of the tools the server lists.
    pub async fn tools(&self) -> Result<Vec<String>, ClientError> {
        let tools = self
            .service
            .list_all_tools()
            .await
            .map_err(|e| ClientError::Request(e.to_string()))?;
        Ok(tools.into_iter().map(|t| t.name.to_string()).collect())
    }

    /// Call `tool` with `arguments` (a JSON object); the result as JSON (`content`, `isError`,
    /// `_meta`). A refusal is a result, not an error.
    pub async fn call(&self, tool: &str, arguments: &Value) -> Result<Value, ClientError> {
        self.call_with_meta(tool, arguments, None).await
    }

    /// [`StdioClient::call`] with the request's `_meta` (an idempotency key, evidence).
    pub async fn call_with_meta(
        &self,
        tool: &str,
        arguments: &Value,
        meta: Option<serde_json::Map<String, Value>>,
    ) -> Result<Value, ClientError> {
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = arguments.as_object().cloned();
        params.meta = meta.map(|m| rmcp::model::RequestMetaObject(rmcp::model::MetaObject(m)));
        let result = self
            .service
            .call_tool(params)
            .await
            .map_err(|e| ClientError::Request(e.to_string()))?;
        serde_json::to_value(&result).map_err(|e| ClientError::Request(e.to_string()))
    }

    /// End the session (the child sees its stdin close).
    pub async fn close(self) -> Result<(), ClientError> {
        self.service
            .cancel()
            .await
            .map(|_| ())
            .map_err(|e| ClientError::Request(e.to_string()))
    }
}
