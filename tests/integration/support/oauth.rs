//! An OAuth authorization server for the OAuth-agent tests: npm `oidc-provider`, started from
//! `tests/peers/oauth_provider.mjs`, issuing JWT access tokens for one resource by client
//! credentials, with the bad tokens that script signed itself.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use base64::Engine;
use serde_json::Value;

use super::{Peer, REPO, peers_dir, require};

/// `oidc-provider` on a free port: clients `agent-1`, `reader` (scopes `mcp:tools mcp:read`)
/// and `narrow` (`mcp:read`), each with secret `<id>-secret`.
pub struct AuthServer {
    child: Child,
    pub issuer: String,
    /// The tokens the script signed (`valid`, `expired`, `unsigned`, …; see the script).
    pub tokens: Value,
    /// Kept open: the provider must not meet a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AuthServer {
    /// Start it for `resource` (the only resource indicator it issues tokens for).
    pub fn start(resource: &str) -> AuthServer {
        require(Peer::OidcProvider);
        let port = crate::smtp::free_port();
        let mut child = Command::new("node")
            .arg(format!("{REPO}/tests/peers/oauth_provider.mjs"))
            .args([&port.to_string(), resource])
            .env("AIRLOCK_PEERS_DIR", peers_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("provider output");
        let ready: Value = line
            .strip_prefix("ready ")
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_else(|| panic!("the authorization server did not start: {line:?}"));
        AuthServer {
            child,
            issuer: ready["issuer"].as_str().expect("issuer").to_string(),
            tokens: ready["tokens"].clone(),
            _stdout: out,
        }
    }

    /// One of the tokens the script signed.
    pub fn minted(&self, name: &str) -> String {
        self.tokens[name]
            .as_str()
            .unwrap_or_else(|| panic!("no token {name}"))
            .to_string()
    }

    /// An access token from the provider's token endpoint: client credentials for `client`,
    /// asking `scope` for `resource`.
    pub fn token(&self, client: &str, scope: &str, resource: &str) -> String {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{client}:{client}-secret"));
        let mut r = crate::smtp::http()
            .post(&format!("{}/token", self.issuer))
            .header("Authorization", &format!("Basic {basic}"))
            .send_form([
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("resource", resource),
            ])
            .expect("token request");
        let text = r.body_mut().read_to_string().expect("token response");
        let body: Value = serde_json::from_str(&text).expect("token response JSON");
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {body}"))
            .to_string()
    }
}
