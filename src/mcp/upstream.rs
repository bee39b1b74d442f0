//! The agent side: Airlock as an MCP server over stdio, every `tools/call` going through the gate.
//! It must never decide whether a call runs; it relays the gate's reply, waits for approvals with
//! progress notifications, and serves the built-in `airlock_status` tool.

// Logging (setLevel) is deprecated from protocol 2026-07-28, but live in older sessions.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerConfig,
};
use rmcp::model::{CancelTaskParams, CreateTaskResult, GetTaskParams, GetTaskResult};
use rmcp::model::{CancelledNotificationParam, Extensions};
use rmcp::model::{CompleteRequestParams, CompleteResult, SetLevelRequestParams};
use rmcp::model::{
    GetPromptRequestParams, GetPromptResponse, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ReadResourceRequestParams, ReadResourceResponse,
};
use rmcp::model::{SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, SubscriptionContext};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::approval::state::Status;
use crate::gate::{Gate, GateCall, Reply};
use crate::identity::Identity;

/// Largest JSON-RPC frame (one line on stdio) read from the agent; longer lines are dropped unread.
/// Above [`crate::decide::MAX_ARGUMENT_BYTES`] so that limit is the one agents meet with a reason.
pub const MAX_FRAME_BYTES: usize = 4 << 20;

/// Key under which a refusal's decision details travel in the result's `_meta`.
pub const DECISION_META_KEY: &str = "airlock/decision";
/// Key under which an approval's id and state travel in the result's `_meta`.
pub const APPROVAL_META_KEY: &str = "airlock/approval";
/// The built-in tool that reports on a suspended call.
pub const STATUS_TOOL: &str = "airlock_status";
/// How often a waiting agent gets a progress notification (more often when `max_wait` is short).
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The MCP server an agent connects to.
#[derive(Clone)]
pub struct AgentServer {
    gate: Arc<Gate>,
    max_wait: Duration,
}

impl AgentServer {
    pub fn new(gate: Arc<Gate>, max_wait: Duration) -> AgentServer {
        AgentServer { gate, max_wait }
    }

    /// Serve MCP over this process's stdin/stdout until the agent disconnects.
    pub async fn serve_stdio(self) -> Result<(), std::io::Error> {
        let (input, output, on_reactor) = super::stdio::agent_stdio();
        tracing::debug!(on_reactor, "serving the agent on stdio");
        let transport = AsyncRwTransport::<RoleServer, _, _>::new(input, output)
            .with_max_line_length(MAX_FRAME_BYTES);
        let running = self.serve(transport).await.map_err(std::io::Error::other)?;
        running.waiting().await.map_err(std::io::Error::other)?;
        Ok(())
    }

    /// Wait for a suspended call, with progress notifications, up to `max_wait`.
    async fn wait(
        &self,
        approval_id: &str,
        role: &str,
        mut status: watch::Receiver<Status>,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let token = context.meta.get_progress_token();
        let deadline = tokio::time::Instant::now() + self.max_wait;
        let mut ticks = 0u32;
        loop {
            if let Status::Done(outcome) = &*status.borrow() {
                return outcome_result(approval_id, outcome);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep(PROGRESS_EVERY.min(self.max_wait / 3).min(deadline - now)) => {
                    ticks += 1;
                    if let Some(t) = &token {
                        let p = ProgressNotificationParam::new(t.clone(), f64::from(ticks)).with_message(format!("waiting for approval by role `{role}` (approval {approval_id})"));
                        let _ = context.peer.notify_progress(p).await;
                    }
                }
                _ = context.ct.cancelled() => break,
            }
        }
        let state = status.borrow().clone();
        pending_result(approval_id, role, &state)
    }

    /// The stdio agent is `gate.actor`; an HTTP agent sees only its own approvals and held calls.
    fn owns(&self, caller: Option<&str>, owner: &str) -> bool {
        let setup = self.gate.live().setup();
        caller.unwrap_or(setup.config.actor.as_str()) == owner
    }

    /// The agent's answer to a call: the next round's questions, or the gate's reply made into
    /// a result (the call's route dropped once it is made).
    async fn step(
        &self,
        step: mrtr::Step,
        who: &str,
        tool: &str,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (reply, route) = match step {
            mrtr::Step::Asked(questions) => return Ok(CallToolResponse::InputRequired(questions)),
            mrtr::Step::Done(reply, route) => (reply, route),
        };
        let result = match reply {
            Reply::Forwarded(reply) => reply.result,
            Reply::Held(h) => {
                // a repeat of a held call gets what the first call got while it waits: not run
                let mut r = held_result(&h);
                if h.is_held()
                    || matches!(h.status, crate::quarantine::HeldStatus::Releasing { .. })
                {
                    r.is_error = Some(true);
                }
                r
            }
            Reply::Refused { message, details } => with_meta(
                CallToolResult::error(vec![ContentBlock::text(message)]),
                DECISION_META_KEY,
                details,
            ),
            Reply::Suspended {
                approval_id,
                role,
                status,
            } => {
                // A client that speaks the Tasks extension gets a task at once (its id is the
                // approval's, so it survives a gate restart); others wait, up to max_wait.
                let tasks = context
                    .client_capabilities()
                    .is_some_and(|c| c.supports_tasks());
                match self.gate.approvals().get(&approval_id).await {
                    Some(a) if tasks => {
                        return Ok(CallToolResponse::Task(CreateTaskResult::new(
                            task_of(&a).task,
                        )));
                    }
                    _ => self.wait(&approval_id, &role, status, context).await,
                }
            }
        };
        if context.ct.is_cancelled() {
            // rmcp may tell `on_cancelled` after this call is over
            self.gate
                .servers()
                .relay()
                .cancelled(who, context.id.clone());
        }
        drop(route);
        let typed = self
            .gate
            .tools()
            .route(tool)
            .is_some_and(|t| t.definition.get("outputSchema").is_some());
        Ok(complete(for_output_schema(result, typed)).into())
    }

    async fn status_tool(&self, args: &Map<String, Value>, caller: Option<&str>) -> CallToolResult {
        let Some(id) = args.get("approval_id").and_then(Value::as_str) else {
            return CallToolResult::error(vec![ContentBlock::text(
                "airlock_status needs {\"approval_id\": \"...\"}",
            )]);
        };
        match self
            .gate
            .approvals()
            .get(id)
            .await
            .filter(|a| self.owns(caller, &a.envelope.actor))
        {
            None => match self
                .gate
                .quarantine()
                .get(id)
                .filter(|h| self.owns(caller, &h.actor))
            {
                Some(h) => held_result(&h),
                None => CallToolResult::error(vec![ContentBlock::text(format!(
                    "no approval or held call `{id}`"
                ))]),
            },
            Some(a) => match &a.status {
                Status::Done(outcome) => outcome_result(id, outcome),
                other => pending_result(id, &a.envelope.role, other),
            },
        }
    }
}

/// The actor an HTTP request was authenticated as (none over stdio). An HTTP request without an
/// identity never becomes the stdio agent: it gets an actor nothing else is.
fn actor_of(context: &RequestContext<RoleServer>) -> Option<String> {
    actor_in(&context.extensions)
}

/// The actor of an HTTP message, from the request parts rmcp carries with it.
fn actor_in(extensions: &Extensions) -> Option<String> {
    let parts = extensions.get::<axum::http::request::Parts>()?;
    Some(
        parts
            .extensions
            .get::<Identity>()
            .map_or_else(|| "http:unauthenticated".to_string(), |i| i.actor.clone()),
    )
}

mod passing;
mod results;
use super::mrtr;
use results::{
    complete, for_output_schema, held_result, outcome_result, pending_result, task_of, with_meta,
};

impl ServerHandler for AgentServer {
    fn get_info(&self) -> ServerConfig {
        let caps = passing::capabilities(self.gate.servers().offers());
        ServerConfig::new(caps)
            .with_server_info(Implementation::new("airlock", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Airlock gates every tool call: it is classified by its manifest and decided by policy before it runs. \
                 A refused call returns isError with the reason and the rule; do not retry it unchanged. \
                 A call that needs human approval waits; if it is still pending, ask airlock_status later.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // listed as served now: a tool server's changed list shows once it is re-gated
        Ok(ListToolsResult::with_all_items(passing::tools(
            &self.gate.tools(),
        )))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let actor = actor_of(&context);
        let who = actor
            .clone()
            .unwrap_or_else(|| self.gate.live().setup().config.actor.clone());
        let relay = self.gate.servers().relay().clone();
        if request.request_state.is_some() {
            // an agent's answers to a tool server's questions: matched to its call, never gated
            let name = request.name.to_string();
            return match mrtr::resume(&relay, &who, request, &context).await {
                Ok(step) => self.step(step, &who, &name, &context).await,
                Err(why) => {
                    tracing::warn!(actor = %who, tool = %name, why, "a retry with requestState refused");
                    Ok(complete(CallToolResult::error(vec![ContentBlock::text(why)])).into())
                }
            };
        }
        let arguments = request.arguments.unwrap_or_default();
        if request.name == STATUS_TOOL {
            return Ok(complete(self.status_tool(&arguments, actor.as_deref()).await).into());
        }
        // rmcp moves the request's `_meta` into the context. The progress token belongs to this
        // hop (agent ↔ Airlock) and is not passed on.
        let mut meta: Map<String, Value> = context.meta.0.0.clone();
        meta.remove("progressToken");
        // Protocol keys describe this hop (the agent's version, client, capabilities); passed on,
        // they would change Airlock's own connection to the tool server for every agent.
        meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
        // The tool server's progress, log messages and questions about this call come back to
        // this agent; one on 2026-07-28 or later gets the questions in the call's answer.
        let relay_key = uuid::Uuid::new_v4().to_string();
        let rounds = mrtr::speaks_rounds(&context)
            .map(|caps| mrtr::Start::new(relay_key.clone(), who.clone(), caps));
        let route = relay.open(
            &relay_key,
            &who,
            context.peer.clone(),
            context.id.clone(),
            context.meta.get_progress_token(),
            rounds.as_ref().map(mrtr::Start::rounds),
        );
        let call = GateCall {
            relay: Some(relay_key.clone()),
            actor,
            tool: request.name.to_string(),
            arguments,
            meta: Some(meta).filter(|m| !m.is_empty()),
            // the agent's cancellation reaches an allowed call's tool server
            cancel: Some(context.ct.clone()),
        };
        let step = match rounds {
            Some(start) => start.run(&self.gate, call, route, &context.ct).await,
            None => mrtr::Step::Done(self.gate.call(call).await, route),
        };
        self.step(step, &who, &request.name, &context).await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(passing::list_resources(&self.gate).await)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(passing::list_resource_templates(&self.gate).await)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        passing::read_resource(&self.gate, request, actor_of(&context)).await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        passing::subscribe(&self.gate, &request.uri, context.peer).await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        passing::unsubscribe(&self.gate, &request.uri, &context.peer).await
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // the SDK narrows it to what `get_info` advertises
        Some(requested.clone())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        passing::listen(&self.gate, context).await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(
            self.gate.servers().prompts().await,
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        passing::get_prompt(&self.gate, request, actor_of(&context)).await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.gate
            .servers()
            .complete(request)
            .await
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.gate.servers().set_level(request).await;
        Ok(())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.gate.servers().relay().agents.join(context.peer);
    }

    /// rmcp has already cancelled the agent's request if it is one in flight on this connection
    /// (an allowed call's tool server is then told to stop); anything else is logged and goes
    /// nowhere.
    async fn on_cancelled(
        &self,
        params: CancelledNotificationParam,
        context: NotificationContext<RoleServer>,
    ) {
        let who = actor_in(&context.extensions)
            .unwrap_or_else(|| self.gate.live().setup().config.actor.clone());
        match &params.request_id {
            Some(id) if self.gate.servers().relay().cancels_own_call(&who, id) => {
                tracing::info!(actor = %who, request = %id, reason = ?params.reason, "agent cancelled its call");
            }
            id => tracing::warn!(
                actor = %who,
                request = ?id,
                reason = ?params.reason,
                "agent cancelled a request that is none of its tool calls in flight (another's, already answered, or not a tool call); nothing is cancelled on any tool server"
            ),
        }
    }

    async fn on_roots_list_changed(&self, _context: NotificationContext<RoleServer>) {
        self.gate.servers().roots_changed().await;
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let caller = actor_of(&context);
        match self
            .gate
            .approvals()
            .get(&request.task_id)
            .await
            .filter(|a| self.owns(caller.as_deref(), &a.envelope.actor))
        {
            Some(a) => Ok(GetTaskResult::new(task_of(&a))),
            None => Err(ErrorData::invalid_params(
                format!("no task `{}`", request.task_id),
                None,
            )),
        }
    }

    /// An approval is decided by people, not withdrawn by the agent: cancellation is acknowledged
    /// (the spec lets a task's status lag) and the approval stays with its approvers.
    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        tracing::info!(task = %request.task_id, "agent asked to cancel an approval task; approvals are decided by their approvers");
        Ok(())
    }
}
