//! The tools the conformance suite calls, one per scenario, with the replies it expects.

use std::{sync::Arc, time::Duration};

use rmcp::{
    ErrorData, RoleServer,
    handler::server::wrapper::Parameters,
    model::{
        CallToolResult, ClientResult, ContentBlock, CreateMessageRequestParams, ElicitRequest,
        ElicitRequestParams, ElicitationSchema, JsonObject, LoggingLevel,
        ProgressNotificationParam, ResourceContents, SamplingMessage, ServerRequest,
    },
    service::{Peer, RequestContext},
    tool, tool_router,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    Conformance,
    catalog::{PNG, WAV},
};

type ToolResult = Result<CallToolResult, ErrorData>;

fn ok(text: impl Into<String>) -> ToolResult {
    Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
}

fn fail(text: impl Into<String>) -> ToolResult {
    Ok(CallToolResult::error(vec![ContentBlock::text(text)]))
}

async fn pause() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SamplingArgs {
    #[schemars(description = "The prompt to send to the client's LLM")]
    prompt: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ElicitationArgs {
    #[schemars(description = "The message to show the user")]
    message: String,
}

/// The input schema of `json_schema_2020_12_tool`, kept exactly as the suite checks it.
fn schema_2020_12() -> Arc<JsonObject> {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" }
        },
        "additionalProperties": false
    });
    match schema {
        Value::Object(map) => Arc::new(map),
        _ => Arc::default(),
    }
}

/// Ask the client for input (`elicitation/create`) with a fixed form schema, and report its answer.
async fn elicit(peer: &Peer<RoleServer>, message: &str, schema: Value, label: &str) -> ToolResult {
    if peer
        .peer_info()
        .is_none_or(|c| c.capabilities.elicitation.is_none())
    {
        return fail("the client does not support elicitation");
    }
    let requested_schema: ElicitationSchema = serde_json::from_value(schema)
        .map_err(|e| ErrorData::internal_error(format!("bad fixture schema: {e}"), None))?;
    let params = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: message.into(),
        requested_schema,
    };
    let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
    match peer.send_request(request).await {
        Ok(ClientResult::ElicitResult(r)) => {
            let action = serde_json::to_value(&r.action).unwrap_or_default();
            let action = action.as_str().unwrap_or("unknown");
            let content = r.content.unwrap_or(Value::Null);
            ok(format!("{label}: action={action}, content={content}"))
        }
        Ok(other) => fail(format!("unexpected reply to elicitation: {other:?}")),
        Err(e) => fail(format!("elicitation failed: {e}")),
    }
}

#[tool_router(vis = "pub(crate)")]
impl Conformance {
    #[tool(description = "Returns a simple text content block")]
    async fn test_simple_text(&self) -> ToolResult {
        ok("This is a simple text response for testing.")
    }

    #[tool(description = "Returns an image content block (1x1 PNG)")]
    async fn test_image_content(&self) -> ToolResult {
        Ok(CallToolResult::success(vec![ContentBlock::image(
            PNG,
            "image/png",
        )]))
    }

    #[tool(description = "Returns an audio content block (empty WAV)")]
    async fn test_audio_content(&self) -> ToolResult {
        Ok(CallToolResult::success(vec![ContentBlock::audio(
            WAV,
            "audio/wav",
        )]))
    }

    #[tool(description = "Returns an embedded text resource")]
    async fn test_embedded_resource(&self) -> ToolResult {
        let resource = ResourceContents::text(
            "This is an embedded resource content.",
            "test://embedded-resource",
        );
        Ok(CallToolResult::success(vec![ContentBlock::resource(
            resource.with_mime_type("text/plain"),
        )]))
    }

    #[tool(description = "Returns text, image and embedded resource content blocks")]
    async fn test_multiple_content_types(&self) -> ToolResult {
        let resource = ResourceContents::text(
            r#"{"test":"data","value":123}"#,
            "test://mixed-content-resource",
        );
        Ok(CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(PNG, "image/png"),
            ContentBlock::resource(resource.with_mime_type("application/json")),
        ]))
    }

    #[tool(description = "Sends three info log messages while it runs")]
    async fn test_tool_with_logging(&self, cx: RequestContext<RoleServer>) -> ToolResult {
        self.log(&cx.peer, LoggingLevel::Info, "Tool execution started")
            .await;
        pause().await;
        self.log(&cx.peer, LoggingLevel::Info, "Tool processing data")
            .await;
        pause().await;
        self.log(&cx.peer, LoggingLevel::Info, "Tool execution completed")
            .await;
        ok("Logging test completed: sent 3 info messages")
    }

    #[tool(description = "Always fails with isError: true")]
    async fn test_error_handling(&self) -> ToolResult {
        fail("This tool intentionally returns an error for testing")
    }

    #[tool(description = "Reports progress 0, 50 and 100 of 100 when given a progress token")]
    async fn test_tool_with_progress(&self, cx: RequestContext<RoleServer>) -> ToolResult {
        let token = cx.meta.get_progress_token();
        for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
            if i > 0 {
                pause().await;
            }
            if let Some(token) = &token {
                let param = ProgressNotificationParam::new(token.clone(), progress)
                    .with_total(100.0)
                    .with_message(format!("{progress}/100"));
                if let Err(e) = cx.peer.notify_progress(param).await {
                    eprintln!("conformance_server: progress not sent: {e}");
                }
            }
        }
        ok("Progress test completed")
    }

    #[tool(description = "Asks the client's LLM (sampling/createMessage) and returns its answer")]
    async fn test_sampling(
        &self,
        Parameters(args): Parameters<SamplingArgs>,
        cx: RequestContext<RoleServer>,
    ) -> ToolResult {
        let peer = &cx.peer;
        if peer
            .peer_info()
            .is_none_or(|c| c.capabilities.sampling.is_none())
        {
            return fail("the client does not support sampling");
        }
        let messages = vec![SamplingMessage::user_text(args.prompt)];
        match peer
            .create_message(CreateMessageRequestParams::new(messages, 100))
            .await
        {
            Ok(reply) => {
                let blocks = reply.message.content.into_vec();
                let text = blocks.iter().find_map(|b| b.as_text());
                ok(format!(
                    "LLM response: {}",
                    text.map_or("(no text)", |t| t.text.as_str())
                ))
            }
            Err(e) => fail(format!("sampling failed: {e}")),
        }
    }

    #[tool(description = "Asks the user (elicitation/create) for a username and an email")]
    async fn test_elicitation(
        &self,
        Parameters(args): Parameters<ElicitationArgs>,
        cx: RequestContext<RoleServer>,
    ) -> ToolResult {
        let schema = json!({
            "type": "object",
            "properties": {
                "username": { "type": "string", "description": "User's response" },
                "email": { "type": "string", "description": "User's email address" }
            },
            "required": ["username", "email"]
        });
        elicit(&cx.peer, &args.message, schema, "User response").await
    }

    #[tool(description = "Elicitation whose fields all have defaults (SEP-1034)")]
    async fn test_elicitation_sep1034_defaults(
        &self,
        cx: RequestContext<RoleServer>,
    ) -> ToolResult {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": { "type": "string", "description": "User name", "default": "John Doe" },
                "age": { "type": "integer", "description": "User age", "default": 30 },
                "score": { "type": "number", "description": "User score", "default": 95.5 },
                "status": {
                    "type": "string", "description": "User status",
                    "enum": ["active", "inactive", "pending"], "default": "active"
                },
                "verified": {
                    "type": "boolean", "description": "Verification status", "default": true
                }
            }
        });
        let message = "Please review these values (all have defaults)";
        elicit(&cx.peer, message, schema, "Elicitation completed").await
    }

    #[tool(description = "Elicitation with the five enum forms (SEP-1330)")]
    async fn test_elicitation_sep1330_enums(&self, cx: RequestContext<RoleServer>) -> ToolResult {
        let titled = |prefix: &str, word: &str| -> Value {
            let names = ["First", "Second", "Third"];
            let items = (1..=3).zip(names).map(
                |(i, n)| json!({ "const": format!("{prefix}{i}"), "title": format!("{n} {word}") }),
            );
            Value::Array(items.collect())
        };
        let schema = json!({
            "type": "object",
            "properties": {
                "untitledSingle": { "type": "string", "enum": ["option1", "option2", "option3"] },
                "titledSingle": { "type": "string", "oneOf": titled("value", "Option") },
                "legacyEnum": {
                    "type": "string", "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"]
                },
                "untitledMulti": {
                    "type": "array",
                    "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
                },
                "titledMulti": { "type": "array", "items": { "anyOf": titled("value", "Choice") } }
            }
        });
        let message = "Please pick from each list";
        elicit(&cx.peer, message, schema, "Elicitation completed").await
    }

    #[tool(
        description = "Tool with JSON Schema 2020-12 features",
        input_schema = schema_2020_12()
    )]
    async fn json_schema_2020_12_tool(
        &self,
        Parameters(args): Parameters<JsonObject>,
    ) -> ToolResult {
        let name = args.get("name").and_then(Value::as_str).unwrap_or("world");
        ok(format!("Hello, {name}!"))
    }

    #[tool(description = "Replies after a short delay (SSE polling, SEP-1699)")]
    async fn test_reconnection(&self) -> ToolResult {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ok("Reconnection test completed successfully")
    }
}
