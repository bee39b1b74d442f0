//! Peers nobody here wrote, which `scripts/test` installs (`.ci/install-peers`): where each lives,
//! and the one check every test that uses one makes first.
//!
//! A missing peer fails its test with what to run; it never passes silently. In a plain
//! `cargo test` those tests are `#[ignore = "needs …"]`, so the test runner reports them ignored;
//! `scripts/test` runs them (`--include-ignored`) with every peer installed.

use std::path::PathBuf;
use std::process::Command;

use super::REPO;

/// A program from PyPI, npm or Debian that a test talks to.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// The official MCP Python SDK (PyPI `mcp`), as an agent.
    PythonSdk,
    /// `mcp-server-time` (PyPI), a tool server.
    TimeServer,
    /// aiosmtpd (PyPI), a real SMTP server.
    Smtp,
    /// Debian's chromium, headless.
    Chromium,
    /// The official MCP Inspector (npm), in CLI mode.
    Inspector,
    /// The official MCP conformance suite (npm), and Node.js to run it.
    Conformance,
    /// The machine's python3 (standard library only).
    Python,
    /// `oidc-provider` (npm), a certified OpenID Provider, run by `tests/peers/oidc_provider.mjs`
    /// and `tests/peers/oauth_provider.mjs` (which signs its bad tokens with npm `jose`).
    OidcProvider,
    /// `@modelcontextprotocol/server-everything` (npm), a tool server offering every MCP feature.
    Everything,
    /// The official MCP TypeScript SDK (npm `@modelcontextprotocol/sdk`), as an agent run by
    /// `tests/peers/ts_agent.mjs`.
    TypeScriptSdk,
    /// The Standard Webhooks reference library (PyPI `standardwebhooks`), which the webhook
    /// receiver `tests/peers/channel_receiver.py` verifies with, and the Slack SDK (PyPI
    /// `slack-sdk`) and `jsonschema` it checks the chat channels' payloads with.
    Receiver,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::PythonSdk => "the MCP Python SDK (PyPI mcp)",
            Peer::TimeServer => "mcp-server-time (PyPI)",
            Peer::Smtp => "aiosmtpd (PyPI)",
            Peer::Chromium => "chromium (Debian)",
            Peer::Inspector => "the MCP Inspector (npm @modelcontextprotocol/inspector)",
            Peer::Conformance => "the MCP conformance suite (npm @modelcontextprotocol/conformance)",
            Peer::Python => "python3",
            Peer::OidcProvider => "the OpenID Provider (npm oidc-provider), npm jose and Node.js",
            Peer::Everything => {
                "the MCP tool server (npm @modelcontextprotocol/server-everything) and Node.js"
            }
            Peer::TypeScriptSdk => "the MCP TypeScript SDK (npm @modelcontextprotocol/sdk) and Node.js",
            Peer::Receiver => "standardwebhooks, slack-sdk and jsonschema (PyPI), for the webhook receiver",
        }
    }

    fn probe(self) -> Command {
        let mut c;
        match self {
            Peer::PythonSdk | Peer::TimeServer | Peer::Smtp | Peer::Receiver => {
                let module = match self {
                    Peer::PythonSdk => "mcp",
                    Peer::TimeServer => "mcp_server_time",
                    Peer::Receiver => "standardwebhooks, slack_sdk, jsonschema",
                    _ => "aiosmtpd",
                };
                c = Command::new(python());
                c.args(["-c", &format!("import {module}")]);
            }
            Peer::Chromium => {
                c = Command::new("chromium");
                c.arg("--version");
            }
            Peer::Inspector => {
                c = Command::new(npm_bin("mcp-inspector"));
                c.arg("--help");
            }
            Peer::Conformance => {
                c = Command::new(npm_bin("conformance"));
                c.arg("--help");
            }
            Peer::Python => {
                c = Command::new("python3");
                c.arg("--version");
            }
            Peer::OidcProvider => {
                let package = |name: &str| peers_dir().join(format!("node_modules/{name}/package.json"));
                c = Command::new("node");
                c.args(["-p", "require(process.argv[1]).version + ' ' + require(process.argv[2]).version"])
                    .arg(package("oidc-provider"))
                    .arg(package("jose"));
            }
            Peer::Everything | Peer::TypeScriptSdk => {
                let package = match self {
                    Peer::Everything => "@modelcontextprotocol/server-everything",
                    _ => "@modelcontextprotocol/sdk",
                };
                let package = peers_dir().join(format!("node_modules/{package}/package.json"));
                c = Command::new("node");
                c.args(["-p", "require(process.argv[1]).version"]).arg(package);
            }
        }
        c
    }
}

/// Fail the test, saying what to run, unless `peer` is installed.
pub fn require(peer: Peer) {
    let ok = peer
        .probe()
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{} is not installed: run `scripts/test` (it installs every test peer), or `.ci/install-peers` then `cargo test -- --include-ignored`",
        peer.name()
    );
}

/// Where `.ci/install-peers` puts the peers: `$AIRLOCK_PEERS_DIR`, or `.peers` in the repository.
pub fn peers_dir() -> PathBuf {
    std::env::var_os("AIRLOCK_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(REPO).join(".peers"))
}

/// The Python of the peers' virtual environment (the SDK, mcp-server-time, aiosmtpd,
/// standardwebhooks and slack-sdk are installed there, never into the machine's Python).
pub fn python() -> PathBuf {
    peers_dir().join("venv/bin/python3")
}

/// An npm peer's command.
pub fn npm_bin(name: &str) -> PathBuf {
    peers_dir().join("node_modules/.bin").join(name)
}
