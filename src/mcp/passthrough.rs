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

use rmcp::service::{RoleClient, RunningService};

use super::downstream::{DownstreamError, ToolServers};
use super::relay::Downstream;

/// What a server offers besides tools.
#[derive(Clone, Copy)]
enum Kind {
    Resources,
    Prompts,
}

/// A live server that offers `kind`: (name, service).
type Offering<'a> = (&'a str, &'a RunningService<RoleClient, Downstream>);

impl ToolServers {
    /// The live servers that offer `kind`, in order.
    fn offering(&self, kind: Kind) -> impl Iterator<Item = Offering<'_>> {
        self.live().filter(move |(_, svc)| {
            svc.peer_info().is_some_and(|i| match kind {
                Kind::Resources => i.capabilities.resources.is_some(),
                Kind::Prompts => i.capabilities.prompts.is_some(),
            })
        })
    }

    /// Whether any server offers (resources, prompts).
    pub fn offers(&self) -> (bool, bool) {
        (
            self.offering(Kind::Resources).next().is_some(),
            self.offering(Kind::Prompts).next().is_some(),
        )
    }

    /// Map a server's error on a forwarded read.
    fn failed(name: &str, e: impl std::fmt::Display) -> DownstreamError {
        DownstreamError::Call {
            server: name.to_string(),
            message: e.to_string(),
        }
    }

    /// Every server's resources and resource templates, as listed now.
    pub async fn resources(&self) -> (Vec<Resource>, Vec<ResourceTemplate>) {
        let mut resources = Vec::new();
        let mut templates = Vec::new();
        for (name, svc) in self.offering(Kind::Resources) {
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
        for (name, svc) in self.offering(Kind::Resources) {
            let listed = svc
                .list_all_resources()
                .await
                .is_ok_and(|all| all.iter().any(|r| r.uri == params.uri));
            if listed {
                return svc
                    .read_resource(params)
                    .await
                    .map(|r| (name.to_string(), r))
                    .map_err(|e| Self::failed(name, e));
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
        for (name, svc) in self.offering(Kind::Prompts) {
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
        for (name, svc) in self.offering(Kind::Prompts) {
            let Some(inner) = self.inner_name(name, &params.name) else {
                continue;
            };
            let listed = svc
                .list_all_prompts()
                .await
                .is_ok_and(|all| all.iter().any(|p| p.name == inner));
            if listed {
                params.name = inner;
                return svc
                    .get_prompt(params)
                    .await
                    .map(|r| (name.to_string(), r))
                    .map_err(|e| Self::failed(name, e));
            }
        }
        Err(DownstreamError::NotOffered(format!(
            "no tool server offers prompt {}",
            params.name
        )))
    }
}
