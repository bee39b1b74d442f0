//! What the agent side passes through rather than gates: the tool list as served now, what
//! Airlock advertises, resources, subscriptions and prompts.
//!
//! Reads are recorded in the ledger before their content is handed over. It must never hand an
//! agent content whose read could not be recorded, and never advertise a capability that no tool
//! server behind Airlock offers.

// Legacy resource subscriptions are deprecated from protocol 2026-07-28, but live in older
// sessions.
#![allow(deprecated)]

use rmcp::ErrorData;
use rmcp::model::{
    GetPromptRequestParams, GetPromptResponse, ListResourceTemplatesResult, ListResourcesResult,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, Tool,
};
use rmcp::service::{Peer, RoleServer, SubscriptionContext};
use serde_json::{Value, json};

use super::STATUS_TOOL;
use crate::gate::Gate;
use crate::ledger::{Row, row};
use crate::mcp::downstream::ToolSet;
use crate::mcp::passthrough::Offers;

/// The tools agents see: every served tool under its exposed name, and Airlock's own.
pub fn tools(set: &ToolSet) -> Vec<Tool> {
    let mut tools: Vec<Tool> = set
        .iter()
        .filter(|def| def.exposed != STATUS_TOOL)
        .filter_map(|def| {
            let mut v = def.definition.clone();
            if let Value::Object(o) = &mut v {
                o.insert("name".into(), Value::String(def.exposed.clone()));
            }
            serde_json::from_value::<Tool>(v)
                .map_err(|e| tracing::error!(tool = %def.exposed, error = %e, "cannot relay tool definition"))
                .ok()
        })
        .collect();
    let schema = json!({"type": "object", "properties": {"approval_id": {"type": "string", "description": "The id from a pending result"}}, "required": ["approval_id"]});
    if let Value::Object(schema) = schema {
        tools.push(Tool::new(
            STATUS_TOOL,
            "Airlock's own tool: the state of a call that waits for human approval, and its result once decided.",
            schema,
        ));
    }
    tools
}

/// What Airlock offers agents: gated tools and tasks always; the rest when a tool server
/// behind it offers it. Tool lists may change (a server's change is re-gated, then announced).
pub fn capabilities(offers: Offers) -> ServerCapabilities {
    let mut caps = ServerCapabilities::builder()
        .enable_tools()
        .enable_tool_list_changed()
        .enable_tasks()
        .build();
    caps.resources = with(
        offers.resources,
        json!({"listChanged": true, "subscribe": offers.subscriptions}),
    );
    caps.prompts = with(offers.prompts, json!({"listChanged": true}));
    caps.completions = with(offers.completions, json!({}));
    caps.logging = with(offers.logging, json!({}));
    caps
}

/// A capability object, when `on`.
fn with<T: serde::de::DeserializeOwned>(on: bool, v: Value) -> Option<T> {
    on.then(|| serde_json::from_value(v).ok()).flatten()
}

pub async fn list_resources(gate: &Gate) -> ListResourcesResult {
    ListResourcesResult::with_all_items(gate.servers().resources().await.0)
}

pub async fn list_resource_templates(gate: &Gate) -> ListResourceTemplatesResult {
    ListResourceTemplatesResult::with_all_items(gate.servers().resources().await.1)
}

/// A resource is a read: not gated, but recorded before its content is handed over.
pub async fn read_resource(
    gate: &Gate,
    request: ReadResourceRequestParams,
    actor: Option<String>,
) -> Result<ReadResourceResponse, ErrorData> {
    let uri = request.uri.clone();
    let (server, result) = gate
        .servers()
        .read_resource(request)
        .await
        .map_err(|e| ErrorData::resource_not_found(e.to_string(), None))?;
    let digest = crate::canonical::sha256_hex(
        crate::canonical::to_string(&serde_json::to_value(&result).unwrap_or_default()).as_bytes(),
    );
    gate.audit(actor.as_deref(), |actor| {
        Row::ResourceRead(row::ResourceRead {
            server,
            uri,
            contents_sha256: digest,
            actor,
        })
    })
    .await
    .map_err(|e| ErrorData::internal_error(e, None))?;
    Ok(result.into())
}

/// A prompt is a read: not gated, but recorded before it is handed over.
pub async fn get_prompt(
    gate: &Gate,
    request: GetPromptRequestParams,
    actor: Option<String>,
) -> Result<GetPromptResponse, ErrorData> {
    let name = request.name.clone();
    let (server, result) = gate
        .servers()
        .get_prompt(request)
        .await
        .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
    gate.audit(actor.as_deref(), |actor| {
        Row::PromptGet(row::PromptGet {
            server,
            prompt: name,
            actor,
        })
    })
    .await
    .map_err(|e| ErrorData::internal_error(e, None))?;
    Ok(result.into())
}

/// `resources/subscribe` (legacy sessions): the tool server is asked once, when the first agent
/// subscribes; updates go to every agent that subscribed.
pub async fn subscribe(gate: &Gate, uri: &str, peer: Peer<RoleServer>) -> Result<(), ErrorData> {
    let agents = &gate.servers().relay().agents;
    let _one_at_a_time = agents.changing.lock().await;
    let first = !agents.wants(uri);
    // the session's cap is checked before the server is asked
    agents
        .subscribe(uri, peer.clone())
        .map_err(|e| ErrorData::invalid_request(e, None))?;
    if first {
        if let Err(e) = gate.servers().subscribe(uri).await {
            agents.unsubscribe(uri, &peer);
            return Err(ErrorData::invalid_params(e.to_string(), None));
        }
    }
    Ok(())
}

/// `resources/unsubscribe`: the tool server is told when no agent wants the resource any more.
pub async fn unsubscribe(gate: &Gate, uri: &str, peer: &Peer<RoleServer>) -> Result<(), ErrorData> {
    let agents = &gate.servers().relay().agents;
    let _one_at_a_time = agents.changing.lock().await;
    if agents.unsubscribe(uri, peer) {
        gate.servers()
            .unsubscribe(uri)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
    }
    Ok(())
}

/// `subscriptions/listen` (protocol 2026-07-28): list changes and the resources its filter names
/// reach this stream until the agent ends it.
pub async fn listen(gate: &Gate, context: SubscriptionContext) -> Result<(), ErrorData> {
    let agents = &gate.servers().relay().agents;
    let uris = context
        .accepted()
        .resource_subscriptions
        .clone()
        .unwrap_or_default();
    {
        let _one_at_a_time = agents.changing.lock().await;
        let mut asked: Vec<&String> = Vec::new();
        for uri in &uris {
            if agents.wants(uri) {
                continue;
            }
            if let Err(e) = gate.servers().subscribe(uri).await {
                // leave nothing subscribed on the servers for a stream that never opened
                for done in asked {
                    let _ = gate.servers().unsubscribe(done).await;
                }
                return Err(ErrorData::invalid_params(e.to_string(), None));
            }
            asked.push(uri);
        }
        agents.listen(context.sink().clone());
    }
    let sink = context.sink().clone();
    context.cancelled().await;
    let _one_at_a_time = agents.changing.lock().await;
    agents.unlisten(&sink);
    for uri in uris {
        if !agents.wants(&uri) {
            let _ = gate.servers().unsubscribe(&uri).await;
        }
    }
    Ok(())
}
