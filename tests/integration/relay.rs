//! Transparency: a tool server's progress and log messages about a call reach the agent that
//! made it, with the agent's own progress token.

use std::sync::{Arc, Mutex};

use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest, ServerResult};
use rmcp::service::PeerRequestOptions;
use serde_json::{Value, json};

use crate::support::{World, text};

/// (progress token, message) of each progress notification.
type Heard = Arc<Mutex<Vec<(Value, Option<String>)>>>;

#[derive(Clone, Default)]
struct Listener {
    progress: Heard,
    logs: Arc<Mutex<Vec<Value>>>,
}

impl rmcp::ClientHandler for Listener {
    async fn on_progress(
        &self,
        p: rmcp::model::ProgressNotificationParam,
        _c: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        let token = serde_json::to_value(&p.progress_token).unwrap_or_default();
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((token, p.message));
    }

    #[allow(deprecated)]
    async fn on_logging_message(
        &self,
        m: rmcp::model::LoggingMessageNotificationParam,
        _c: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(m.data);
    }
}

#[tokio::test]
async fn progress_and_log_messages_from_a_tool_server_reach_the_agent() {
    let w = World::demo();
    let listener = Listener::default();
    let (client, _child) = w.client(listener.clone()).await;
    let mut p = CallToolRequestParams::new("echo");
    p.arguments = json!({"text": "hello"}).as_object().cloned();
    // rmcp gives each request a progress token of its own; keep the handle to know it
    let handle = client
        .peer()
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(p)),
            PeerRequestOptions::no_options(),
        )
        .await
        .expect("sent");
    let ours = serde_json::to_value(&handle.progress_token).expect("token");
    let r = match handle.await_response().await.expect("echo answered") {
        ServerResult::CallToolResult(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(text(&r), "hello");
    // notifications travel beside the response; give them a moment to land
    for _ in 0..50 {
        if !listener
            .logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let progress = listener
        .progress
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(
        progress,
        [(ours, Some("echoed".to_string()))],
        "the agent's own token, not Airlock's relay key"
    );
    let logs = listener
        .logs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(logs, [json!("echo: hello")]);
    let _ = client.cancel().await;
}

#[tokio::test]
async fn resources_and_prompts_pass_through_and_every_read_is_recorded() {
    let w = World::demo();
    let agent = w.agent().await;
    let c = &agent.client;
    let caps = c
        .peer_info()
        .map(|i| i.capabilities.clone())
        .unwrap_or_default();
    assert!(
        caps.resources.is_some() && caps.prompts.is_some(),
        "offered because the shop offers them"
    );
    let uris: Vec<String> = c
        .list_all_resources()
        .await
        .expect("resources/list")
        .into_iter()
        .map(|r| r.uri)
        .collect();
    assert!(
        uris.contains(&"shop://orders/A-1001".to_string()),
        "{uris:?}"
    );
    let read = c
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "shop://orders/A-1001",
        ))
        .await
        .expect("resources/read");
    let body = serde_json::to_string(&read).expect("json");
    assert!(
        body.contains("order A-1001 for alice@example.com"),
        "{body}"
    );
    assert!(
        c.read_resource(rmcp::model::ReadResourceRequestParams::new(
            "file:///etc/passwd"
        ))
        .await
        .is_err(),
        "only what a server lists is read"
    );
    let prompts: Vec<String> = c
        .list_all_prompts()
        .await
        .expect("prompts/list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(prompts, ["apology"]);
    let got = c
        .get_prompt(rmcp::model::GetPromptRequestParams::new("apology"))
        .await
        .expect("prompts/get");
    assert!(
        serde_json::to_string(&got)
            .expect("json")
            .contains("apology for the delay")
    );
    agent.close().await;
    let rows = w.ledger_rows().await;
    let kinds: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .filter(|k| matches!(*k, "resource_read" | "prompt_get"))
        .collect();
    assert_eq!(kinds, ["resource_read", "prompt_get"]);
}
