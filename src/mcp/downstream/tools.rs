//! The tools served: the set agents see (swapped whole), and listing a server's tools again when
//! it says they changed or when it is time to look. It never serves a relisted set by itself:
//! `live::retool` installs it once the rug-pull guard has judged it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rmcp::service::{RoleClient, RunningService};

use super::{ConnectProblem, ToolDef, ToolServers};
use crate::config::ServerConfig;
use crate::mcp::relay::Downstream;

/// The tools served at one moment, routed by exposed name.
#[derive(Debug, Default)]
pub struct ToolSet {
    tools: Vec<ToolDef>,
    routes: BTreeMap<String, usize>,
}

impl ToolSet {
    /// Add `defs`, skipping (and describing) any whose exposed name another server already uses.
    pub(crate) fn add(&mut self, server: &str, defs: Vec<ToolDef>) -> Vec<ConnectProblem> {
        let mut problems = Vec::new();
        for def in defs {
            if let Some(&other) = self.routes.get(&def.exposed) {
                problems.push(ConnectProblem {
                    server: server.to_string(),
                    message: format!(
                        "tool `{}` collides with `{}` of server `{}`; it is not exposed",
                        def.exposed, def.exposed, self.tools[other].server
                    ),
                });
                continue;
            }
            self.routes.insert(def.exposed.clone(), self.tools.len());
            self.tools.push(def);
        }
        problems
    }

    /// The served definition of an exposed name.
    pub fn route(&self, exposed: &str) -> Option<&ToolDef> {
        self.routes.get(exposed).map(|&i| &self.tools[i])
    }

    /// The definition of `tool` on `server`, if served.
    pub fn route_of(&self, server: &str, tool: &str) -> Option<&ToolDef> {
        self.tools
            .iter()
            .find(|t| t.server == server && t.name == tool)
    }
}

impl std::ops::Deref for ToolSet {
    type Target = [ToolDef];
    fn deref(&self) -> &[ToolDef] {
        &self.tools
    }
}

impl ToolServers {
    /// The servers whose tools are listed again from time to time, and how often.
    pub fn relisted(&self) -> Vec<(String, Duration)> {
        self.servers
            .iter()
            .filter_map(|s| s.config.relist.map(|d| (s.config.name.clone(), d)))
            .collect()
    }

    /// List the named servers' tools again: the tool set to serve next, or `None` when they
    /// serve what is served now. Other servers' tools are kept as they are, and so are those of
    /// a named server that cannot be listed (reported in `problems`); a new tool whose name
    /// collides is left out, as at start. Nothing is swapped in: see [`Self::install`].
    pub async fn relist(
        &self,
        names: &[String],
        problems: &mut Vec<ConnectProblem>,
    ) -> Option<ToolSet> {
        let now = self.tools();
        let mut fresh = BTreeMap::new();
        for s in self
            .servers
            .iter()
            .filter(|s| names.contains(&s.config.name))
        {
            let service = s.service.as_ref().filter(|svc| !svc.is_transport_closed());
            let listed = match service {
                Some(svc) => definitions(&s.config, svc).await,
                None => Err("not connected".to_string()),
            };
            match listed {
                Ok(defs) => {
                    fresh.insert(s.config.name.as_str(), defs);
                }
                Err(message) => problems.push(ConnectProblem {
                    server: s.config.name.clone(),
                    message: format!("cannot list its tools again: {message}"),
                }),
            }
        }
        // keep server order: each server's tools, the relisted ones replaced
        let mut next = ToolSet::default();
        let mut collisions = Vec::new();
        for s in &self.servers {
            let name = s.config.name.as_str();
            let tools = fresh
                .remove(name)
                .unwrap_or_else(|| now.iter().filter(|t| t.server == name).cloned().collect());
            collisions.extend(next.add(name, tools));
        }
        // compared as served (after collisions are left out), so a standing collision is not
        // a change every time
        if next.tools == now.tools {
            return None;
        }
        problems.extend(collisions);
        Some(next)
    }

    /// Serve `set` from now on (after the rug-pull guard has judged it).
    pub fn install(&self, set: ToolSet) {
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }
}

/// A server's tools as it lists them now, with what the rug-pull guard pins for each.
pub(super) async fn definitions(
    config: &ServerConfig,
    service: &RunningService<RoleClient, Downstream>,
) -> Result<Vec<ToolDef>, String> {
    let listed = tokio::time::timeout(config.timeout, service.list_all_tools())
        .await
        .map_err(|_| {
            format!(
                "tools/list did not answer within {}s",
                config.timeout.as_secs()
            )
        })?
        .map_err(|e| format!("tools/list failed: {e}"))?;
    let identity = service
        .peer_info()
        .and_then(|i| i.server_info.as_ref().map(|s| s.name.clone()))
        .unwrap_or_default();
    let mut defs = Vec::with_capacity(listed.len());
    for tool in listed {
        let definition = serde_json::to_value(&tool).map_err(|e| e.to_string())?;
        let pinned = serde_json::json!({
            "server": config.name,
            "server_identity": identity,
            "name": definition.get("name"),
            "description": definition.get("description"),
            "input_schema": definition.get("inputSchema"),
        });
        defs.push(ToolDef {
            server: config.name.clone(),
            name: tool.name.to_string(),
            exposed: config.exposed(&tool.name),
            definition_hash: crate::canonical::sha256_hex(
                crate::canonical::to_string(&pinned).as_bytes(),
            ),
            definition,
        });
    }
    Ok(defs)
}
