//! Resources, prompts, completion and logging levels, passed through from the tool servers that
//! offer them.
//!
//! Owns their aggregation (resources keep their URIs; prompts are exposed under the server's
//! prefix, like tools) and the routing of `resources/read`, `resources/subscribe`, `prompts/get`
//! and `completion/complete` back to the server. These are reads by the MCP spec — nothing acts —
//! so they are not gated, but every read is recorded in the ledger by the caller. It must never
//! route a request to a server that did not list what it names.
//!
//! A result relayed from a server on an older protocol version has no `resultType`; agents on
//! 2026-07-28 require one, so it is set to `complete` here (rmcp removes it again for agents on
//! older versions).

// Logging (setLevel) and legacy resource subscriptions are deprecated from protocol 2026-07-28,
// but live in older sessions, which most tool servers still speak.
#![allow(deprecated)]

use rmcp::model::{
    CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResult, Prompt,
    ReadResourceRequestParams, ReadResourceResult, Reference, Resource, ResourceTemplate,
    ResultType, SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
};

use rmcp::service::{RoleClient, RunningService};

use super::downstream::{DownstreamError, ToolServers};
use super::relay::Downstream;

/// What a server offers besides tools.
#[derive(Clone, Copy)]
enum Kind {
    Resources,
    Subscriptions,
    Prompts,
    Completions,
    Logging,
}

/// What the tool servers offer between them, besides tools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offers {
    pub resources: bool,
    pub subscriptions: bool,
    pub prompts: bool,
    pub completions: bool,
    pub logging: bool,
}

/// A live server that offers `kind`: (name, service).
type Offering<'a> = (&'a str, &'a RunningService<RoleClient, Downstream>);

impl ToolServers {
    /// The live servers that offer `kind`, in order.
    fn offering(&self, kind: Kind) -> impl Iterator<Item = Offering<'_>> {
        self.live().filter(move |(_, svc)| {
            svc.peer_info().is_some_and(|i| {
                let c = &i.capabilities;
                match kind {
                    Kind::Resources => c.resources.is_some(),
                    Kind::Subscriptions => c
                        .resources
                        .as_ref()
                        .is_some_and(|r| r.subscribe == Some(true)),
                    Kind::Prompts => c.prompts.is_some(),
                    Kind::Completions => c.completions.is_some(),
                    Kind::Logging => c.logging.is_some(),
                }
            })
        })
    }

    /// What any live server offers.
    pub fn offers(&self) -> Offers {
        let any = |k| self.offering(k).next().is_some();
        Offers {
            resources: any(Kind::Resources),
            subscriptions: any(Kind::Subscriptions),
            prompts: any(Kind::Prompts),
            completions: any(Kind::Completions),
            logging: any(Kind::Logging),
        }
    }

    /// The live server that lists resource `uri` (as a resource, or as a match of one of its
    /// resource templates) and offers `kind` for it.
    async fn lister(&self, uri: &str, kind: Kind) -> Option<Offering<'_>> {
        for (name, svc) in self.offering(kind) {
            let listed = svc
                .list_all_resources()
                .await
                .is_ok_and(|all| all.iter().any(|r| r.uri == uri));
            let templated = || async {
                svc.list_all_resource_templates()
                    .await
                    .is_ok_and(|all| all.iter().any(|t| template_matches(&t.uri_template, uri)))
            };
            if listed || templated().await {
                return Some((name, svc));
            }
        }
        None
    }

    /// Ask the server that lists `uri` to send updates of it.
    pub async fn subscribe(&self, uri: &str) -> Result<String, DownstreamError> {
        let (name, svc) = self.lister(uri, Kind::Subscriptions).await.ok_or_else(|| {
            DownstreamError::NotOffered(format!(
                "no tool server lists resource {uri} with subscriptions"
            ))
        })?;
        svc.subscribe(SubscribeRequestParams::new(uri))
            .await
            .map_err(|e| Self::failed(name, e))?;
        Ok(name.to_string())
    }

    /// Tell the server that lists `uri` that no agent wants its updates any more.
    pub async fn unsubscribe(&self, uri: &str) -> Result<(), DownstreamError> {
        if let Some((name, svc)) = self.lister(uri, Kind::Subscriptions).await {
            svc.unsubscribe(UnsubscribeRequestParams::new(uri))
                .await
                .map_err(|e| Self::failed(name, e))?;
        }
        Ok(())
    }

    /// Complete an argument of a prompt (by exposed name) or of a resource template, on the
    /// server that offers it.
    pub async fn complete(
        &self,
        mut params: CompleteRequestParams,
    ) -> Result<CompleteResult, DownstreamError> {
        for (name, svc) in self.offering(Kind::Completions) {
            let owns = match &mut params.r#ref {
                Reference::Prompt(p) => match self.inner_name(name, &p.name) {
                    Some(inner)
                        if svc
                            .list_all_prompts()
                            .await
                            .is_ok_and(|all| all.iter().any(|x| x.name == inner)) =>
                    {
                        p.name = inner;
                        true
                    }
                    _ => false,
                },
                Reference::Resource(r) => svc
                    .list_all_resource_templates()
                    .await
                    .is_ok_and(|all| all.iter().any(|t| t.uri_template == r.uri)),
                _ => false,
            };
            if owns {
                return svc
                    .complete(params)
                    .await
                    .map(|mut r| {
                        r.result_type.get_or_insert(ResultType::COMPLETE);
                        r
                    })
                    .map_err(|e| Self::failed(name, e));
            }
        }
        Err(DownstreamError::NotOffered(
            "no tool server offers completion for that reference".to_string(),
        ))
    }

    /// Set the logging level on every server that logs. Tool server connections are shared by
    /// all agents, so the level is the last one any agent asked for.
    pub async fn set_level(&self, params: SetLevelRequestParams) {
        for (name, svc) in self.offering(Kind::Logging) {
            if let Err(e) = svc.set_level(params.clone()).await {
                tracing::warn!(server = name, error = %e, "logging/setLevel failed");
            }
        }
    }

    /// An agent's roots changed: every server may ask again.
    pub async fn roots_changed(&self) {
        for (name, svc) in self.live() {
            if let Err(e) = svc.notify_roots_list_changed().await {
                tracing::debug!(server = name, error = %e, "cannot pass on a roots change");
            }
        }
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
        if let Some((name, svc)) = self.lister(&params.uri, Kind::Resources).await {
            return svc
                .read_resource(params)
                .await
                .map(|mut r| {
                    r.result_type.get_or_insert(ResultType::COMPLETE);
                    (name.to_string(), r)
                })
                .map_err(|e| Self::failed(name, e));
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
                    .map(|mut r| {
                        r.result_type.get_or_insert(ResultType::COMPLETE);
                        (name.to_string(), r)
                    })
                    .map_err(|e| Self::failed(name, e));
            }
        }
        Err(DownstreamError::NotOffered(format!(
            "no tool server offers prompt {}",
            params.name
        )))
    }
}

/// Whether `uri` is an expansion of an RFC 6570 URI template: `{x}` stands for one or more
/// characters other than `/`, `?` and `#`; `{+x}` and `{#x}` for any one or more. Other
/// operators (`{?x}`, `{/x}`, ...) are matched loosely, as any run of characters.
pub fn template_matches(template: &str, uri: &str) -> bool {
    // split into literals and variables: "a{b}c" → [Lit(a), Var(b), Lit(c)]
    enum Part<'a> {
        Lit(&'a str),
        Var { any: bool, optional: bool },
    }
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return false;
        };
        parts.push(Part::Lit(&rest[..open]));
        let expr = &rest[open + 1..open + close];
        let op = expr.chars().next().unwrap_or(' ');
        parts.push(Part::Var {
            any: matches!(op, '+' | '#' | '/' | '.' | ';' | '?' | '&'),
            optional: matches!(op, '?' | '&' | '#' | '/' | '.' | ';'),
        });
        rest = &rest[open + close + 1..];
    }
    parts.push(Part::Lit(rest));

    if uri.len() > MAX_MATCHED_URI {
        return false;
    }
    // the positions in `uri` each part can end at: one pass per part, O(parts × len²) at worst
    let mut at = vec![false; uri.len() + 1];
    at[0] = true;
    for part in &parts {
        let mut next = vec![false; uri.len() + 1];
        for start in (0..=uri.len()).filter(|&i| at[i]) {
            match part {
                Part::Lit(l) => {
                    if uri[start..].starts_with(l) {
                        next[start + l.len()] = true;
                    }
                }
                Part::Var { any, optional } => {
                    if *optional {
                        next[start] = true;
                    }
                    for (i, c) in uri[start..].char_indices() {
                        if !any && matches!(c, '/' | '?' | '#') {
                            break;
                        }
                        next[start + i + c.len_utf8()] = true;
                    }
                }
            }
        }
        at = next;
    }
    at[uri.len()]
}

/// Longest URI matched against a template (longer ones are not matched at all).
const MAX_MATCHED_URI: usize = 4096;

#[cfg(test)]
mod tests {
    use super::template_matches;

    #[test]
    fn a_uri_matches_the_templates_it_expands_and_no_other() {
        let t = "test://template/{id}/data";
        assert!(template_matches(t, "test://template/123/data"));
        assert!(
            !template_matches(t, "test://template//data"),
            "a variable is not empty"
        );
        assert!(
            !template_matches(t, "test://template/1/2/data"),
            "{{x}} stays in a segment"
        );
        assert!(!template_matches(t, "test://template/123/data/more"));
        assert!(!template_matches(t, "other://template/123/data"));
        assert!(template_matches("file:///{+path}", "file:///a/b/c.txt"));
        assert!(template_matches("db://{table}/{id}", "db://users/7"));
        assert!(!template_matches("db://{table}/{id}", "db://users"));
        assert!(template_matches("search://q{?term}", "search://q?term=x"));
        assert!(template_matches("search://q{?term}", "search://q"));
        assert!(!template_matches("broken://{id", "broken://{id"));
        assert!(template_matches("plain://x", "plain://x"));
        assert!(template_matches("f:///{name}.{ext}", "f:///a.b.c"));
        // no backtracking blow-up: many variables over a long URI that cannot match
        let long = format!("f:///{}", ".".repeat(4000));
        assert!(!template_matches("f:///{a}.{b}.{c}.{d}x", &long));
        assert!(
            !template_matches("f:///{+a}", &"a".repeat(5000)),
            "too long"
        );
        assert!(!template_matches("plain://x", "plain://y"));
    }
}
