//! The agent side: Airlock as an MCP server over stdio, every `tools/call` going through the gate.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, MetaObject, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use serde_json::{Map, Value};

use crate::gate::{Gate, GateCall, Reply};

/// Largest JSON-RPC frame (one line on stdio) read from the agent; longer lines are dropped unread.
/// Above [`crate::decide::MAX_ARGUMENT_BYTES`] so that limit is the one agents meet with a reason.
pub const MAX_FRAME_BYTES: usize = 4 << 20;

/// Key under which a refusal's decision details travel in the result's `_meta`.
pub const DECISION_META_KEY: &str = "airlock/decision";

/// The MCP server an agent connects to.
#[derive(Clone)]
pub struct AgentServer {
    gate: Arc<Gate>,
    tools: Arc<Vec<Tool>>,
}

impl AgentServer {
    pub fn new(gate: Arc<Gate>) -> AgentServer {
        let tools = gate
            .tools()
            .iter()
            .filter_map(|def| {
                let mut v = def.definition.clone();
                if let Value::Object(o) = &mut v {
                    o.insert("name".into(), Value::String(def.exposed.clone()));
                }
                match serde_json::from_value::<Tool>(v) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::error!(tool = %def.exposed, error = %e, "cannot relay tool definition");
                        None
                    }
                }
            })
            .collect();
        AgentServer {
            gate,
            tools: Arc::new(tools),
        }
    }

    /// Serve MCP over this process's stdin/stdout until the agent disconnects.
    pub async fn serve_stdio(self) -> Result<(), std::io::Error> {
        let transport =
            AsyncRwTransport::<RoleServer, _, _>::new(tokio::io::stdin(), tokio::io::stdout())
                .with_max_line_length(MAX_FRAME_BYTES);
        let running = self.serve(transport).await.map_err(std::io::Error::other)?;
        running.waiting().await.map_err(std::io::Error::other)?;
        Ok(())
    }
}

impl ServerHandler for AgentServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("airlock", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Airlock gates every tool call: it is classified by its manifest and decided by policy before it runs. \
                 A refused call returns isError with the reason and the rule; do not retry it unchanged.",
            )
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
        let call = GateCall {
            tool: request.name.to_string(),
            arguments: request.arguments.unwrap_or_default(),
            meta: request
                .meta
                .map(|m| m.0.0)
                .filter(|m: &Map<String, Value>| !m.is_empty()),
        };
        let result = match self.gate.call(call).await {
            Reply::Forwarded(reply) => match serde_json::from_value::<CallToolResult>(reply.json) {
                Ok(r) => r,
                Err(e) => CallToolResult::error(vec![ContentBlock::text(format!(
                    "the tool ran, but its result could not be relayed: {e}"
                ))]),
            },
            Reply::Refused { message, details } => {
                let mut r = CallToolResult::error(vec![ContentBlock::text(message)]);
                let mut meta = Map::new();
                meta.insert(DECISION_META_KEY.into(), details);
                r.meta = Some(MetaObject(meta));
                r
            }
        };
        Ok(result.into())
    }
}
