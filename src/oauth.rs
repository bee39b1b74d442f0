//! OAuth 2.1 for HTTP agents (the MCP authorization spec): Airlock as a resource server.
//! An agent's JWT access token, issued by the `[oauth]` authorization server for Airlock's
//! resource URI, authenticates it as the actor its claim names (`oauth:<claim>` by default).
//!
//! Owns the protected-resource metadata (RFC 9728), the `WWW-Authenticate` challenges (RFC 6750
//! and the MCP spec: `resource_metadata`, `invalid_token`, `insufficient_scope`), and the one
//! decision whether a bearer token authenticates an agent: `token` checks it (pure), `keys`
//! fetches the issuer's keys. It must never pass a token on, log one, or accept a token it could
//! not verify (no keys: nobody is authenticated).

pub mod keys;
pub mod token;

use serde_json::{Value, json};

use crate::config::oauth::OAuthConfig;
use token::TokenError;

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No bearer token at all.
    NoToken,
    /// A token that is not valid (401 `invalid_token`).
    Invalid(TokenError),
    /// A valid token without every required scope (403 `insufficient_scope`).
    Scope { actor: String, missing: Vec<String> },
    /// The server's keys could not be had: no token can be checked (503).
    Unavailable(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoToken => write!(
                f,
                "a bearer token is required (Authorization: Bearer <token>)"
            ),
            Refusal::Invalid(e) => write!(f, "{e}"),
            Refusal::Scope { missing, .. } => write!(
                f,
                "the token lacks scope {}: ask the authorization server for it",
                missing.join(" ")
            ),
            Refusal::Unavailable(why) => write!(
                f,
                "bearer tokens cannot be checked now ({why}); try again later"
            ),
        }
    }
}

/// Airlock as the resource `[oauth]` describes.
pub struct Resource {
    cfg: OAuthConfig,
    keys: keys::Keys,
}

impl Resource {
    pub fn new(cfg: OAuthConfig) -> Resource {
        let keys = keys::Keys::new(&cfg.issuer);
        Resource { cfg, keys }
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.cfg
    }

    /// Fetch the issuer's keys now (a failure is logged; the next token tries again).
    pub async fn prefetch(&self) {
        if let Err(e) = self.keys.refresh().await {
            tracing::warn!(issuer = %self.cfg.issuer, error = %e, "OAuth: the authorization server's keys could not be fetched at start; agents' tokens are refused until they can be");
        }
    }

    /// The actor a bearer token authenticates, or why not.
    pub async fn authenticate(&self, token: &str) -> Result<String, Refusal> {
        if !token::looks_like_jwt(token) {
            return Err(Refusal::Invalid(TokenError::Unknown));
        }
        let head = token::head(token, self.cfg.accept_plain_jwt).map_err(Refusal::Invalid)?;
        let key = self.keys.key_for(&head).await.map_err(|e| match e {
            keys::KeyError::Token(t) => Refusal::Invalid(t),
            keys::KeyError::Unavailable(why) => Refusal::Unavailable(why),
        })?;
        let checked = token::verify(token, &head, &key, &self.cfg).map_err(Refusal::Invalid)?;
        let missing = token::missing_scopes(&self.cfg.scopes, &checked.scopes);
        if !missing.is_empty() {
            return Err(Refusal::Scope {
                actor: checked.actor,
                missing,
            });
        }
        Ok(checked.actor)
    }

    /// The protected-resource metadata document (RFC 9728 §2).
    pub fn metadata(&self) -> Value {
        let mut doc = json!({
            "resource": self.cfg.resource,
            "authorization_servers": [self.cfg.issuer],
            "bearer_methods_supported": ["header"],
            "resource_name": "Airlock",
        });
        if !self.cfg.scopes.is_empty() {
            doc["scopes_supported"] = json!(self.cfg.scopes);
        }
        doc
    }

    /// The `WWW-Authenticate` value for a refusal (401 and 403; none for 503).
    pub fn challenge(&self, refusal: &Refusal) -> Option<String> {
        let meta = format!("resource_metadata=\"{}\"", self.cfg.metadata_url());
        let scope = if self.cfg.scopes.is_empty() {
            String::new()
        } else {
            format!(", scope=\"{}\"", self.cfg.scopes.join(" "))
        };
        match refusal {
            Refusal::NoToken => Some(format!("Bearer {meta}{scope}")),
            Refusal::Invalid(e) => Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\", {meta}",
                quotable(&e.to_string())
            )),
            Refusal::Scope { .. } => Some(format!(
                "Bearer error=\"insufficient_scope\"{scope}, error_description=\"{}\", {meta}",
                quotable(&refusal.to_string())
            )),
            Refusal::Unavailable(_) => None,
        }
    }
}

/// Text fit for a quoted `error_description` (RFC 6750 §3: printable ASCII but `"` and `\`).
fn quotable(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            c if c == ' ' || (c.is_ascii_graphic() && c != '\\') => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Refusal, Resource, TokenError, quotable};
    use crate::config::oauth::{DEFAULT_LEEWAY, OAuthConfig};

    fn resource(scopes: &[&str]) -> Resource {
        Resource::new(OAuthConfig {
            issuer: "https://login.example.com".into(),
            resource: "https://airlock.example.com/mcp".into(),
            actor_claim: "sub".into(),
            actor_prefix: "oauth:".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            leeway: DEFAULT_LEEWAY,
            accept_plain_jwt: false,
        })
    }

    #[test]
    fn each_refusal_has_the_challenge_the_spec_names() {
        let r = resource(&["mcp:tools", "mcp:read"]);
        let meta = "resource_metadata=\"https://airlock.example.com/.well-known/oauth-protected-resource/mcp\"";
        assert_eq!(
            r.challenge(&Refusal::NoToken).unwrap(),
            format!("Bearer {meta}, scope=\"mcp:tools mcp:read\"")
        );
        let bad = r.challenge(&Refusal::Invalid(TokenError::Expired)).unwrap();
        assert_eq!(
            bad,
            format!(
                "Bearer error=\"invalid_token\", error_description=\"the token expired\", {meta}"
            )
        );
        let scope = r
            .challenge(&Refusal::Scope {
                actor: "oauth:a".into(),
                missing: vec!["mcp:tools".into()],
            })
            .unwrap();
        assert!(
            scope.starts_with("Bearer error=\"insufficient_scope\", scope=\"mcp:tools mcp:read\""),
            "{scope}"
        );
        assert!(r.challenge(&Refusal::Unavailable("x".into())).is_none());
        assert_eq!(
            resource(&[]).challenge(&Refusal::NoToken).unwrap(),
            format!("Bearer {meta}")
        );
    }

    #[test]
    fn the_metadata_names_the_resource_and_its_server() {
        let doc = resource(&["mcp:tools"]).metadata();
        assert_eq!(doc["resource"], "https://airlock.example.com/mcp");
        assert_eq!(doc["authorization_servers"][0], "https://login.example.com");
        assert_eq!(doc["scopes_supported"][0], "mcp:tools");
        assert_eq!(doc["bearer_methods_supported"][0], "header");
        assert!(resource(&[]).metadata().get("scopes_supported").is_none());
    }

    #[test]
    fn a_description_never_breaks_its_quotes() {
        assert_eq!(quotable("a \"b\" \\ c\u{202e}é"), "a 'b' ? c??");
    }
}
