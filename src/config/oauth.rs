//! `[oauth]`: OAuth 2.1 for HTTP agents (the MCP authorization spec). Airlock is a resource
//! server: agents bring JWT access tokens from the company's authorization server, issued for
//! Airlock's resource URI.
//!
//! Owns the section's format and its checks: an `https://` issuer and resource (plain `http://`
//! only on a loopback address), a resource with a path, an actor prefix no static agent shares,
//! scopes that can be written in a `WWW-Authenticate` header. It must never fetch anything: the
//! issuer's keys are read by `serve` (`oauth::keys`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;

use super::sign_in::check_issuer;
use crate::diag::{Diagnostic, Source};

/// `[oauth]` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthSection {
    /// The authorization server's issuer URL, exactly as in its discovery document (and in the
    /// tokens' `iss`), e.g. `https://login.example.com/realms/agents`. `https://` only, except a
    /// loopback address (`http://127.0.0.1:PORT`), whose traffic stays on this machine.
    #[schemars(with = "String")]
    pub issuer: Spanned<String>,
    /// The resource URI Airlock is: the URL agents reach `/mcp` at, with its path, e.g.
    /// `https://airlock.example.com/mcp`. Tokens must name it in `aud` (RFC 8707); the
    /// protected-resource metadata (RFC 9728) is served for it.
    #[schemars(with = "String")]
    pub resource: Spanned<String>,
    /// The claim that names the agent (default `sub`; for client credentials that is usually the
    /// client id).
    #[schemars(with = "Option<String>")]
    pub actor_claim: Option<Spanned<String>>,
    /// What the actor's name starts with, before the claim's value (default `oauth:`, so the
    /// actor is `oauth:<claim value>`): the name recorded in the ledger and matched by the
    /// policy's `[actors]`. No `[[agent]]` actor or `gate.actor` may start with it.
    #[schemars(with = "Option<String>")]
    pub actor_prefix: Option<Spanned<String>>,
    /// Scopes every token must carry (in `scope` or `scp`), e.g. `["mcp:tools"]`; a token without
    /// one is refused with 403 `insufficient_scope`. Default: none.
    #[schemars(with = "Option<Vec<String>>")]
    pub scopes: Option<Spanned<Vec<String>>>,
    /// Clock skew allowed on `exp` and `nbf`, e.g. `30s` (default; at most `5m`).
    #[schemars(with = "Option<String>")]
    pub leeway: Option<Spanned<String>>,
    /// Also accept access tokens whose header says `typ: JWT` (or none) — for an authorization
    /// server that does not follow RFC 9068. Off by default: without `at+jwt`, an ID token the
    /// same server issued for Airlock's resource would pass for an access token.
    #[serde(default)]
    pub accept_plain_jwt: bool,
}

/// The compiled `[oauth]`.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthConfig {
    pub issuer: String,
    pub resource: String,
    pub actor_claim: String,
    pub actor_prefix: String,
    pub scopes: Vec<String>,
    pub leeway: Duration,
    pub accept_plain_jwt: bool,
}

/// Default clock skew allowed on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
const MAX_LEEWAY: Duration = Duration::from_secs(300);

impl OAuthConfig {
    /// The actor a token's claim value names.
    pub fn actor(&self, claim: &str) -> String {
        format!("{}{claim}", self.actor_prefix)
    }

    /// Whether `actor` is a name this section gives (case aside): an OAuth agent's identity.
    pub fn names(&self, actor: &str) -> bool {
        let (p, a) = (self.actor_prefix.as_bytes(), actor.trim().as_bytes());
        a.len() >= p.len() && a[..p.len()].eq_ignore_ascii_case(p)
    }

    /// The resource's origin (`https://host:port`) and path (`/mcp`).
    pub fn origin_and_path(&self) -> (&str, &str) {
        split_resource(&self.resource).unwrap_or((&self.resource, ""))
    }

    /// Where the resource's metadata is (RFC 9728 §3.1: the well-known path between the host and
    /// the resource's path), built from the configured resource, never from a request.
    pub fn metadata_url(&self) -> String {
        let (origin, path) = self.origin_and_path();
        format!("{origin}{WELL_KNOWN}{path}")
    }
}

/// The well-known path of protected-resource metadata (RFC 9728).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Compile `[oauth]`, recording each problem at its key and line.
pub fn compile(
    src: &Source,
    s: Option<&OAuthSection>,
    errors: &mut Vec<Diagnostic>,
) -> Option<OAuthConfig> {
    let s = s?;
    let mut fail = |span: std::ops::Range<usize>, key: &str, msg: String| {
        errors.push(src.error(Some(span), &format!("oauth.{key}"), msg));
    };
    let issuer = s.issuer.get_ref().trim().to_string();
    if let Err(why) = check_issuer(&issuer).and_then(|()| no_query(&issuer)) {
        fail(s.issuer.span(), "issuer", why);
    }
    let resource = s.resource.get_ref().trim().to_string();
    if let Err(why) = check_resource(&resource) {
        fail(s.resource.span(), "resource", why);
    }
    let actor_claim = match &s.actor_claim {
        None => "sub".to_string(),
        Some(c) => {
            let v = c.get_ref().trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
                fail(
                    c.span(),
                    "actor_claim",
                    format!("`{v}` is not a claim name, e.g. `sub`, `client_id` or `azp`"),
                );
            }
            v.to_string()
        }
    };
    let actor_prefix = match &s.actor_prefix {
        None => "oauth:".to_string(),
        Some(p) => {
            let v = p.get_ref().trim();
            if let Err(why) = check_prefix(v) {
                fail(p.span(), "actor_prefix", why);
            }
            v.to_string()
        }
    };
    let mut scopes = Vec::new();
    if let Some(list) = &s.scopes {
        for scope in list.get_ref() {
            // RFC 6749 §3.3 scope-token: no spaces, quotes or backslashes (it goes in a header)
            let ok = !scope.is_empty()
                && scope
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
            if !ok {
                fail(
                    list.span(),
                    "scopes",
                    format!(
                        "`{scope}` is not a scope: printable ASCII without spaces, quotes or backslashes, e.g. `mcp:tools`"
                    ),
                );
            } else if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
    }
    let leeway = match &s.leeway {
        None => DEFAULT_LEEWAY,
        Some(t) => match crate::policy::parse_duration(t.get_ref()) {
            Ok(d) if d <= MAX_LEEWAY => d,
            Ok(_) => {
                fail(
                    t.span(),
                    "leeway",
                    format!(
                        "`{}` is over 5 minutes: leeway covers clock skew, not token lifetime; write e.g. `30s`",
                        t.get_ref()
                    ),
                );
                DEFAULT_LEEWAY
            }
            Err(msg) => {
                fail(t.span(), "leeway", msg);
                DEFAULT_LEEWAY
            }
        },
    };
    Some(OAuthConfig {
        issuer,
        resource,
        actor_claim,
        actor_prefix,
        scopes,
        leeway,
        accept_plain_jwt: s.accept_plain_jwt,
    })
}

/// No query or fragment, and nothing that cannot stand in a quoted header parameter.
fn no_query(u: &str) -> Result<(), String> {
    if u.contains(['?', '#']) {
        return Err(format!("`{u}` may not carry a query or fragment"));
    }
    if !u
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(format!(
            "`{u}` may hold only printable ASCII without spaces, quotes or backslashes"
        ));
    }
    Ok(())
}

/// `https://host[:port]/path` → (`https://host[:port]`, `/path`).
fn split_resource(u: &str) -> Option<(&str, &str)> {
    let after = u.find("://")? + 3;
    let slash = u[after..].find('/').map_or(u.len(), |i| after + i);
    Some((&u[..slash], &u[slash..]))
}

/// The resource URI: https (or http on loopback), with a path, no query or fragment.
fn check_resource(u: &str) -> Result<(), String> {
    check_issuer(u).map_err(|_| {
        format!("`{u}` must be the https:// URL agents reach Airlock's /mcp at (plain http only on a loopback address), e.g. https://airlock.example.com/mcp")
    })?;
    no_query(u)?;
    // the path is routed as written: letters, digits, `-._~` and non-empty segments only
    let plain = |path: &str| {
        path.split('/').skip(1).all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        })
    };
    match split_resource(u) {
        Some((origin, path)) if !origin.ends_with("://") && path.len() > 1 && plain(path) => Ok(()),
        _ => Err(format!(
            "`{u}` needs a path of plain segments (letters, digits, `-._~`) without a trailing slash, e.g. https://airlock.example.com/mcp: clients compare it with the URL they connect to"
        )),
    }
}

/// An actor prefix: 1-32 ASCII letters, digits, `-`, `_` or `.`, ending with `:`.
fn check_prefix(p: &str) -> Result<(), String> {
    let body = p.strip_suffix(':').unwrap_or("");
    let ok = !body.is_empty()
        && body.len() < 32
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{p}` cannot start an actor's name: letters, digits, `-`, `_` or `.` ending with `:`, e.g. `oauth:` (it keeps OAuth agents apart from static ones)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{OAuthConfig, check_prefix, check_resource};

    #[test]
    fn a_resource_is_an_https_url_with_a_path() {
        for ok in [
            "https://airlock.example.com/mcp",
            "https://airlock.example.com:8443/tools/mcp",
            "http://127.0.0.1:8790/mcp",
        ] {
            assert_eq!(check_resource(ok), Ok(()), "{ok}");
        }
        for bad in [
            "https://airlock.example.com",
            "https://airlock.example.com/",
            "https://airlock.example.com/mcp/",
            "http://airlock.example.com/mcp",
            "https://airlock.example.com/mcp?x=1",
            "https://airlock.example.com/mcp#f",
            "https://airlock.example.com//mcp",
            "https://airlock.example.com/{x}/mcp",
            "https://airlock.example.com/:id",
            "https://airlock.example.com/m\"cp",
            "airlock.example.com/mcp",
        ] {
            assert!(check_resource(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_actor_prefix_ends_with_a_colon() {
        assert!(check_prefix("oauth:").is_ok());
        assert!(check_prefix("partner.idp-1:").is_ok());
        for bad in ["", ":", "oauth", "o auth:", "a@b:"] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_is_found_under_the_resource_path() {
        let c = OAuthConfig {
            issuer: "https://login.example.com".into(),
            resource: "https://airlock.example.com/mcp".into(),
            actor_claim: "sub".into(),
            actor_prefix: "oauth:".into(),
            scopes: vec![],
            leeway: super::DEFAULT_LEEWAY,
            accept_plain_jwt: false,
        };
        assert_eq!(
            c.metadata_url(),
            "https://airlock.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(c.actor("agent-1"), "oauth:agent-1");
        assert!(c.names("OAuth:agent-1") && !c.names("agent:oauth:x"));
    }
}
