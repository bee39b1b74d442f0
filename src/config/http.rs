//! `[http]` and `[[agent]]`: MCP over streamable HTTP, and the agents allowed to use it.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::diag::{Diagnostic, Source};

/// `[http]`: serve MCP over streamable HTTP at `/mcp`, beside the approval pages.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Address to listen on, e.g. `127.0.0.1:8790` (or `airlock serve --http ADDR`). The approval
    /// pages move to this listener too.
    #[schemars(with = "Option<String>")]
    pub bind: Option<Spanned<String>>,
    /// `Host` header values accepted (DNS-rebinding guard); default: loopback names.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s accepted, e.g. `https://app.example.com:443`; default: none checked
    /// unless listed.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Allow a non-loopback bind. Only with TLS terminated in front of Airlock: tokens travel in
    /// every request.
    #[serde(default)]
    pub allow_remote: bool,
}

/// `[[agent]]`: one agent that may connect over HTTP.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// The actor id recorded on its calls (and matched by the policy's `[actors]`).
    pub actor: String,
    /// SHA-256 (hex) of its bearer token; `airlock token new --actor ID` makes one. The token
    /// itself is never stored.
    pub token_sha256: String,
}

/// The compiled `[http]` section (serving MCP over HTTP is on when a bind address is known).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpConfig {
    pub bind: Option<SocketAddr>,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub allow_remote: bool,
}

impl HttpConfig {
    /// The address to serve MCP over HTTP on (`--http` first), checked: loopback unless
    /// `allow_remote`, and only with agents that have tokens.
    pub fn serving(
        &self,
        override_bind: Option<&str>,
        agents: &[AgentToken],
        oauth: bool,
    ) -> Result<Option<SocketAddr>, String> {
        let bind = match override_bind {
            Some(b) => Some(b.parse::<SocketAddr>().map_err(|e| {
                format!("--http `{b}` is not an address like 127.0.0.1:8790 ({e})")
            })?),
            None => self.bind,
        };
        let Some(bind) = bind else { return Ok(None) };
        if !bind.ip().is_loopback() && !self.allow_remote {
            return Err(format!(
                "{bind} is reachable from other machines and bearer tokens travel in every request: terminate TLS in front of Airlock and set `[http] allow_remote = true`, or bind to 127.0.0.1"
            ));
        }
        if agents.is_empty() && !oauth {
            return Err("MCP over HTTP needs at least one [[agent]] with a token (run `airlock token new --actor ID`) or an [oauth] authorization server".into());
        }
        Ok(Some(bind))
    }
}

/// An agent's token hash and actor.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentToken {
    pub actor: String,
    pub token_sha256: [u8; 32],
}

/// Check a tool server's `url`: plain http only on this machine (unless `allow_remote`), no
/// credentials in it, and no https (not built in).
pub fn check_server_url(u: &str, allow_remote: bool) -> Result<(), String> {
    if u.starts_with("https://") {
        return Err("https is not built in: reach the server over http on loopback (or through a local TLS proxy)".into());
    }
    let Some(rest) = u.strip_prefix("http://") else {
        return Err("must be an http:// URL, e.g. http://127.0.0.1:9000/mcp".into());
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("credentials in the URL would be shown in status output: pass them in `headers` with ${VAR}".into());
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let loopback = matches!(host, "localhost" | "[::1]")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && !allow_remote {
        return Err(format!(
            "{u} is not on this machine: plain http would carry its headers and every call's arguments in clear. Reach it through a local TLS proxy, or set `allow_remote = true` on this server if the network is trusted"
        ));
    }
    Ok(())
}

/// Compile `[http]` and `[[agent]]`.
pub fn compile(
    src: &Source,
    http: &HttpSection,
    agents: &[Spanned<AgentSection>],
    oauth: bool,
    errors: &mut Vec<Diagnostic>,
) -> (HttpConfig, Vec<AgentToken>) {
    let mut tokens: Vec<AgentToken> = Vec::new();
    for (i, a) in agents.iter().enumerate() {
        let key = format!("agent[{i}]");
        let e = a.get_ref();
        if e.actor.trim().is_empty() {
            errors.push(src.error(Some(a.span()), &format!("{key}.actor"), "must not be empty"));
        }
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(e.token_sha256.trim(), &mut hash).is_err() {
            errors.push(src.error(
                Some(a.span()),
                &format!("{key}.token_sha256"),
                "must be 64 hex characters: the SHA-256 of the token (`airlock token new --actor ID` prints it)",
            ));
            continue;
        }
        if tokens.iter().any(|t| t.token_sha256 == hash) {
            errors.push(src.error(
                Some(a.span()),
                &format!("{key}.token_sha256"),
                "another agent has the same token",
            ));
        }
        tokens.push(AgentToken {
            actor: e.actor.trim().to_string(),
            token_sha256: hash,
        });
    }
    let mut cfg = HttpConfig {
        bind: None,
        allowed_hosts: if http.allowed_hosts.is_empty() {
            vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
        } else {
            http.allowed_hosts.clone()
        },
        allowed_origins: http.allowed_origins.clone(),
        allow_remote: http.allow_remote,
    };
    if let Some(spanned) = &http.bind {
        let b = spanned.get_ref();
        match b.parse::<SocketAddr>() {
            Ok(addr) => cfg.bind = Some(addr),
            Err(e) => errors.push(src.error(
                Some(spanned.span()),
                "http.bind",
                format!("`{b}` is not an address like 127.0.0.1:8790 ({e})"),
            )),
        }
        if let Err(msg) = cfg.serving(None, &tokens, oauth) {
            errors.push(src.error(Some(spanned.span()), "http.bind", msg));
        }
    }
    (cfg, tokens)
}
