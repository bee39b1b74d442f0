//! The authorization server's signing keys: discovery (OpenID Connect discovery, else RFC 8414
//! authorization-server metadata), whose `issuer` must be the configured one exactly, then its
//! `jwks_uri`. Kept in memory; fetched again when a token names a key not in it (at most once
//! every [`REFETCH_AFTER`]) or when older than [`MAX_AGE`].
//!
//! Its HTTP is a ureq agent that follows no redirects, with bounded timeouts and body size,
//! run off the async runtime's threads. It must never fetch a URL a token names, or take keys
//! from anywhere but the configured issuer's metadata.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::token::{Head, KeySet, TokenError};
use crate::config::sign_in::check_issuer;

/// Keys older than this are fetched again before they are used.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// An unknown key id fetches the keys again only if the last fetch is at least this old.
pub const REFETCH_AFTER: Duration = Duration::from_secs(10);
/// Longest any one request to the authorization server may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest metadata or JWKS document read.
const MAX_BODY: u64 = 1 << 20;

/// Why no key could be had for a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The token names a key the server does not publish (or fits none): the token's fault.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The server's keys could not be fetched: nobody's token can be checked now.
    #[error("the authorization server's keys could not be fetched: {0}")]
    Unavailable(String),
}

#[derive(Default)]
struct Cache {
    keys: Option<Arc<KeySet>>,
    fetched: Option<Instant>,
    tried: Option<Instant>,
    /// Why the last fetch failed, if it did.
    failed: Option<String>,
}

/// The configured issuer's keys.
pub struct Keys {
    issuer: String,
    http: ureq::Agent,
    cache: Mutex<Cache>,
    /// One fetch at a time; the others wait for it and use what it found.
    fetching: tokio::sync::Mutex<()>,
}

impl Keys {
    pub fn new(issuer: &str) -> Keys {
        let http = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .timeout_connect(Some(Duration::from_secs(5)))
            .build()
            .into();
        Keys {
            issuer: issuer.to_string(),
            http,
            cache: Mutex::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> (Option<Arc<KeySet>>, Option<Instant>, Option<Instant>) {
        let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        (c.keys.clone(), c.fetched, c.tried)
    }

    fn failed(&self) -> String {
        let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.failed
            .clone()
            .unwrap_or_else(|| "no keys fetched yet".into())
    }

    /// The key for a token's header: from memory, or fetched (again) when the keys are missing,
    /// old, or lack the key named.
    pub async fn key_for(&self, head: &Head) -> Result<jsonwebtoken::DecodingKey, KeyError> {
        let usable = |keys: &Option<Arc<KeySet>>, fetched: Option<Instant>| {
            let fresh = fetched.is_some_and(|t| t.elapsed() < MAX_AGE);
            let known = head
                .kid
                .as_deref()
                .is_none_or(|kid| keys.as_ref().is_some_and(|k| k.has(kid)));
            fresh && known
        };
        let (keys, fetched, _) = self.cached();
        if usable(&keys, fetched) {
            if let Some(k) = keys {
                return Ok(k.key_for(head)?);
            }
        }
        let _one = self.fetching.lock().await;
        // another request may have fetched them while this one waited
        let (keys, fetched, tried) = self.cached();
        // a burst of unknown key ids (or a server that is down) fetches at most once a while
        let recent = tried.is_some_and(|t| t.elapsed() < REFETCH_AFTER);
        if !usable(&keys, fetched) && !recent {
            if let Err(e) = self.fetch_now().await {
                tracing::warn!(issuer = %self.issuer, error = %e, "OAuth: the authorization server's keys could not be fetched");
            }
        }
        match self.cached().0 {
            Some(k) => Ok(k.key_for(head)?),
            None => Err(KeyError::Unavailable(self.failed())),
        }
    }

    /// Fetch the keys now (at start, so a misconfigured issuer shows in the log at once); a
    /// token that arrives meanwhile waits for this fetch.
    pub async fn refresh(&self) -> Result<usize, String> {
        let _one = self.fetching.lock().await;
        self.fetch_now().await
    }

    /// Fetch, holding `fetching`.
    async fn fetch_now(&self) -> Result<usize, String> {
        {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            c.tried = Some(Instant::now());
        }
        let (issuer, http) = (self.issuer.clone(), self.http.clone());
        let got = tokio::task::spawn_blocking(move || fetch(&http, &issuer))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match got {
            Ok(keys) => {
                let n = keys.len();
                tracing::info!(issuer = %self.issuer, keys = n, "OAuth: the authorization server's signing keys fetched");
                c.keys = Some(Arc::new(keys));
                c.fetched = Some(Instant::now());
                c.failed = None;
                Ok(n)
            }
            // keys fetched before are kept: a server down for a while locks nobody out
            Err(e) => {
                c.failed = Some(e.clone());
                Err(e)
            }
        }
    }
}

/// Discovery, then the JWKS (blocking).
fn fetch(http: &ureq::Agent, issuer: &str) -> Result<KeySet, String> {
    let meta = discover(http, issuer)?;
    if meta.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(format!(
            "its metadata names issuer {}, not {issuer} as configured in [oauth] issuer (write it exactly as the server does)",
            meta.get("issuer").unwrap_or(&Value::Null)
        ));
    }
    let jwks_uri = meta
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or("its metadata has no jwks_uri")?;
    check_issuer(jwks_uri).map_err(|e| format!("jwks_uri: {e}"))?;
    let keys = KeySet::parse(&get_json(http, jwks_uri)?)?;
    if keys.is_empty() {
        return Err(format!(
            "{jwks_uri} publishes no signing key Airlock can use (RSA, P-256, P-384, Ed25519)"
        ));
    }
    Ok(keys)
}

/// The issuer's metadata: OpenID Connect discovery, else RFC 8414 (the well-known path before
/// the issuer's path).
fn discover(http: &ureq::Agent, issuer: &str) -> Result<Value, String> {
    let base = issuer.trim_end_matches('/');
    let oidc = format!("{base}/.well-known/openid-configuration");
    let first = match get_json(http, &oidc) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let after = base.find("://").map_or(0, |i| i + 3);
    let (origin, path) = base.split_at(base[after..].find('/').map_or(base.len(), |i| after + i));
    let rfc8414 = format!("{origin}/.well-known/oauth-authorization-server{path}");
    get_json(http, &rfc8414).map_err(|second| format!("{first}; {second}"))
}

fn get_json(http: &ureq::Agent, url: &str) -> Result<Value, String> {
    let mut r = http
        .get(url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| format!("{url}: {e}"))?;
    if r.status() != 200 {
        return Err(format!("{url} answered {}", r.status()));
    }
    let body = r
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| format!("{url}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("{url} is not JSON: {e}"))
}
