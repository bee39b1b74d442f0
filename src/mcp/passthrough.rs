//! Resources and prompts, passed through from the tool servers that offer them.
//!
//! Owns their aggregation (resources keep their URIs; prompts are exposed under the server's
//! prefix, like tools) and the routing of `resources/read` and `prompts/get` back to the server.
//! Both are reads by the MCP spec — nothing acts — so they are not gated, but every read is
//! recorded in the ledger by the caller. It must never route a read to a server that did not
//! list it.

use rmcp::model::{
    GetPromptRequestParams, GetPromptResult, Prompt, ReadResourceRequestParams, ReadResourceResult,
    Resource, ResourceTemplate,
};

use super::downstream::{DownstreamError, ToolServers};

impl ToolServers {
    /// Whether any server offers (resources, prompts).
    pub fn offers(&self) -> (bool, bool) {
        self.live().fold((false, false), |(r, p), (_, svc)| {
            let caps = svc
                .peer_info()
                .map(|i| i.capabilities.clone())
                .unwrap_or_default();
            (r || caps.resources.is_some(), p || caps.prompts.is_some())
        })
    }

    /// Every server's resources and resource templates, as listed now.
    pub async fn resources(&self) -> (Vec<Resource>, Vec<ResourceTemplate>) {
        let mut resources = Vec::new();
        let mut templates = Vec::new();
        for (name, svc) in self.live() {
            let offers = svc
                .peer_info()
                .is_some_and(|i| i.capabilities.resources.is_some());
            if !offers {
                continue;
            }
            match svc.list_all_resources().await {
                Ok(r) => resources.extend(r),
                Err(e) => tracing::warn!(server = name, error = %e, "resources/list failed"),
            }
            if let Ok(t) = svc.list_all_resource_templates().await {
                templates.extend(t);
            }
        }
        (resources, templates)
    }

    /// Read a resource from the first server that lists it: (server, result).
    pub async fn read_resource(
        &self,
        params: ReadResourceRequestParams,
    ) -> Result<(String, ReadResourceResult), DownstreamError> {
        for (name, svc) in self.live() {
            let offers = svc
                .peer_info()
                .is_some_and(|i| i.capabilities.resources.is_some());
            if !offers {
                continue;
            }
            let listed = svc
                .list_all_resources()
                .await
                .is_ok_and(|all| all.iter().any(|r| r.uri == params.uri));
            if listed {
                return svc
                    .read_resource(params)
                    .await
                    .map(|r| (name.to_string(), r))
                    .map_err(|e| DownstreamError::Call {
                        server: name.to_string(),
                        message: e.to_string(),
                    });
            }
        }
        Err(DownstreamError::NotOffered(format!(
            "no tool server lists resource {}",
            params.uri
        )))
    }

    /// Every server's prompts, under its prefix.
    pub async fn prompts(&self) -> Vec<Prompt> {
        let mut out = Vec::new();
        for (name, svc) in self.live() {
            let offers = svc
                .peer_info()
                .is_some_and(|i| i.capabilities.prompts.is_some());
            if !offers {
                continue;
            }
            match svc.list_all_prompts().await {
                Ok(all) => out.extend(all.into_iter().map(|mut p| {
                    p.name = self.exposed_name(name, &p.name);
                    p
                })),
                Err(e) => tracing::warn!(server = name, error = %e, "prompts/list failed"),
            }
        }
        out
    }

    /// Get a prompt by its exposed name: (server, result).
    pub async fn get_prompt(
        &self,
        mut params: GetPromptRequestParams,
    ) -> Result<(String, GetPromptResult), DownstreamError> {
        for (name, svc) in self.live() {
            let Some(inner) = self.inner_name(name, &params.name) else {
                continue;
            };
            let offers = svc
                .peer_info()
                .is_some_and(|i| i.capabilities.prompts.is_some());
            let listed = offers
                && svc
                    .list_all_prompts()
                    .await
                    .is_ok_and(|all| all.iter().any(|p| p.name == inner));
            if listed {
                params.name = inner;
                return svc
                    .get_prompt(params)
                    .await
                    .map(|r| (name.to_string(), r))
                    .map_err(|e| DownstreamError::Call {
                        server: name.to_string(),
                        message: e.to_string(),
                    });
            }
        }
        Err(DownstreamError::NotOffered(format!(
            "no tool server offers prompt {}",
            params.name
        )))
    }
}
