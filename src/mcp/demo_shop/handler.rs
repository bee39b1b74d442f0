//! The shop as an MCP server: its info, each order as a read-only resource, and one prompt.

use rmcp::{
    ErrorData, ServerHandler,
    model::{Implementation, ServerCapabilities, ServerConfig},
    tool_handler,
};

use super::shop::DemoShop;

#[tool_handler(router = self.router())]
impl ServerHandler for DemoShop {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("demo_shop", env!("CARGO_PKG_VERSION")))
        .with_instructions("Fake in-memory shop for demos and tests. Nothing here is real.")
    }

    /// Each order as a read-only resource, `shop://orders/<id>`.
    async fn list_resources(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, ErrorData> {
        let orders = self
            .orders
            .lock()
            .map_err(|_| ErrorData::internal_error("orders poisoned", None))?;
        Ok(rmcp::model::ListResourcesResult::with_all_items(
            orders
                .iter()
                .map(|o| rmcp::model::Resource::new(format!("shop://orders/{}", o.id), o.id))
                .collect(),
        ))
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, ErrorData> {
        let orders = self
            .orders
            .lock()
            .map_err(|_| ErrorData::internal_error("orders poisoned", None))?;
        let id = request.uri.strip_prefix("shop://orders/").unwrap_or("");
        let o = orders.iter().find(|o| o.id == id).ok_or_else(|| {
            ErrorData::resource_not_found(format!("no resource {}", request.uri), None)
        })?;
        let text = format!("order {} for {}: {} cents", o.id, o.email, o.total_cents);
        Ok(
            rmcp::model::ReadResourceResult::new(vec![rmcp::model::ResourceContents::text(
                text,
                request.uri.clone(),
            )])
            .into(),
        )
    }

    async fn list_prompts(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListPromptsResult, ErrorData> {
        Ok(rmcp::model::ListPromptsResult::with_all_items(vec![
            rmcp::model::Prompt::new("apology", Some("A short apology to a customer"), None),
        ]))
    }

    async fn get_prompt(
        &self,
        request: rmcp::model::GetPromptRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::GetPromptResponse, ErrorData> {
        if request.name != "apology" {
            return Err(ErrorData::invalid_params(
                format!("no prompt {}", request.name),
                None,
            ));
        }
        Ok(
            rmcp::model::GetPromptResult::new(vec![rmcp::model::PromptMessage::new_text(
                rmcp::model::Role::User,
                "Write a two-line apology for the delay.",
            )])
            .into(),
        )
    }
}
