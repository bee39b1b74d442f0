//! Configuration: `airlock.toml`, and the loading of config, manifests and policy into one
//! validated [`Setup`].
//!
//! Owns the config file format and its JSON Schema, path resolution (relative to the config file),
//! and the cross-file checks that `airlock check` reports. It must never start processes, open the
//! ledger or talk to tool servers; it only reads files and reports every problem at once.

pub mod channel;
mod check;
pub mod http;
pub mod ledger;
pub mod limits;
pub mod oauth;
mod schemas;
mod server;
pub mod sign_in;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::diag::{Diagnostic, Diagnostics, Source};
use crate::manifest::{ManifestSet, ToolManifest};
use crate::policy::Policy;

pub use check::{load_policy_file, load_setup};
pub use server::{ServerConfig, ServerSection};

/// `airlock.toml` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Airlock configuration")]
pub struct ConfigFile {
    #[serde(default)]
    pub gate: GateSection,
    /// How approval requests are mailed.
    #[serde(default)]
    pub mail: MailSection,
    /// The approval pages.
    #[serde(default)]
    pub web: WebSection,
    /// One per tool server.
    #[serde(default)]
    #[schemars(with = "Vec<ServerSection>")]
    pub server: Vec<Spanned<ServerSection>>,
    /// MCP over streamable HTTP.
    #[serde(default)]
    pub http: http::HttpSection,
    /// Agents that may connect over HTTP, each with its own token.
    #[serde(default)]
    #[schemars(with = "Vec<http::AgentSection>")]
    pub agent: Vec<Spanned<http::AgentSection>>,
    /// Keep the ledger and approval queue in PostgreSQL, shared by several replicas (instead of
    /// the redb file named by `[gate] ledger`).
    pub store: Option<StoreSection>,
    /// Sign-in with the company's OpenID provider, for roles with `sign_in = "oidc"`.
    pub sign_in: Option<sign_in::SignInSection>,
    /// Checkpoints off the machine: a witness, an auditor's mailbox.
    #[serde(default)]
    pub ledger: ledger::LedgerSection,
    /// OAuth 2.1 for HTTP agents: JWT access tokens from the company's authorization server,
    /// beside (or instead of) the `[[agent]]` tokens.
    pub oauth: Option<oauth::OAuthSection>,
    /// What one process holds at most: connections and their timeouts, MCP sessions, the
    /// ledger's cache.
    #[serde(default)]
    pub limits: limits::LimitsSection,
    /// Where approvals are announced besides mail (a role names them in `channels`).
    #[serde(default)]
    #[schemars(with = "Vec<channel::ChannelSection>")]
    pub channel: Vec<Spanned<channel::ChannelSection>>,
}

/// `[store]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `postgres://USER@HOST:PORT/DATABASE` (also `host=... dbname=...`), without a password.
    pub url: String,
    /// The environment variable holding the database password (never written in this file).
    pub password_env: Option<String>,
    /// This replica's name (unique among the replicas; kept across restarts, so a restarted
    /// replica takes back its own unfinished work at once). Default: host name, config file and
    /// listen address.
    pub replica: Option<String>,
}

/// `[gate]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GateSection {
    /// Directory of manifest `*.toml` files, relative to this file.
    pub manifests: String,
    /// Directory of policy `*.toml` files, relative to this file.
    pub policies: String,
    /// Which policy file is active (its file stem) when the directory holds more than one.
    pub policy: Option<String>,
    /// The redb ledger file, relative to this file.
    pub ledger: String,
    /// Identity of the stdio agent, recorded on every row.
    pub actor: String,
    /// How long an agent's `tools/call` waits for a human decision before it is answered
    /// "pending" (with an id to ask `airlock_status`), e.g. `5m`; default `45s`, under the 60 s
    /// after which the TypeScript SDK and the MCP Inspector give up on a request.
    pub max_wait: String,
    /// Secret key that signs approval links (created on first start, mode 0600), relative to this file.
    pub key: String,
    /// Key that seals redacted argument values until their call has run (created on first
    /// start, mode 0600; every replica of one ledger needs the same file), relative to this file.
    pub seal_key: String,
    /// How long one epoch of the seal's key chain lasts, e.g. `1h` (the default): once an
    /// epoch, values still waiting are sealed again and the chain file beside the seal key
    /// (`airlock.seal.chain`) drops the older key, so a destroyed value cannot be opened from
    /// anything on disk after at most two epochs. Replicas of one ledger need the same value.
    pub seal_ratchet: String,
    /// Ed25519 key that signs the rows of signed classes and checkpoints (created by
    /// `airlock keys init` or on first start, mode 0600), relative to this file.
    pub signing_key: String,
    /// Directory of the gate's signed checkpoints, relative to this file; default
    /// `<ledger>.checkpoints` (`checkpoints` for PostgreSQL). `serve` and `verify` hold to them.
    pub checkpoints: Option<String>,
    /// Longest wait for a checkpoint while rows are written, e.g. `1m` (and one at start, stop).
    pub checkpoint_every: String,
    /// Answer an autopilot call only once its outcome row is durable (one more fsync on every
    /// call). By default the outcome row joins the next group commit after the agent is
    /// answered; a crash in between is recorded at the next start as an `unknown` outcome.
    pub outcome_before_reply: bool,
}

/// `[mail]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MailSection {
    /// Sender address of approval mail.
    pub from: String,
    /// `smtp://host:port` (plain, for a local relay), `smtp://host:port?tls=required` (STARTTLS)
    /// or `smtps://host:port`; omit to write `.eml` files to `outbox` instead.
    pub smtp: Option<String>,
    /// Directory for `.eml` files when no `smtp` is set, relative to this file.
    pub outbox: String,
}

impl Default for MailSection {
    fn default() -> Self {
        MailSection {
            from: "airlock@localhost".into(),
            smtp: None,
            outbox: "outbox".into(),
        }
    }
}

/// `[web]`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WebSection {
    /// Address the approval pages listen on (`127.0.0.1:0` picks a free port); default
    /// `127.0.0.1:8787`.
    #[schemars(with = "Option<String>")]
    pub bind: Option<Spanned<String>>,
    /// Base of every emailed link; default `http://<bound address>`. Links never come from a
    /// request's Host header.
    pub public_url: Option<String>,
    /// Allow `bind` off loopback (the pages then reach other machines: put TLS in front).
    pub allow_remote: bool,
}

impl Default for GateSection {
    fn default() -> Self {
        GateSection {
            manifests: "tool-manifests".into(),
            policies: "policies".into(),
            policy: None,
            ledger: "airlock.redb".into(),
            actor: "agent:default".into(),
            max_wait: "45s".into(),
            key: "airlock.key".into(),
            signing_key: "airlock.signing.key".into(),
            seal_key: "airlock.seal.key".into(),
            seal_ratchet: "1h".into(),
            checkpoints: None,
            checkpoint_every: "1m".into(),
            outcome_before_reply: false,
        }
    }
}

/// A validated `airlock.toml` with paths resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub manifests_dir: PathBuf,
    pub policies_dir: PathBuf,
    pub policy_name: Option<String>,
    pub ledger_path: PathBuf,
    /// Where the ledger lives: `ledger_path`, or the `[store]` database.
    pub ledger: crate::ledger::Location,
    pub actor: String,
    pub max_wait: Duration,
    pub key_path: PathBuf,
    pub signing_key_path: PathBuf,
    pub seal_key_path: PathBuf,
    pub seal_ratchet: Duration,
    pub checkpoints: crate::ledger::checkpoint::Settings,
    pub outcome_before_reply: bool,
    pub servers: Vec<ServerConfig>,
    /// Tool servers that could not be started as written (a command not found or not
    /// executable, a missing `cwd`): errors that `load_setup` (check, serve, reload) reports,
    /// kept out of `load_config` so that reading the ledger works where they are not installed.
    pub unstartable: Vec<Diagnostic>,
    pub mail: MailConfig,
    pub web: WebConfig,
    pub http: http::HttpConfig,
    pub agents: Vec<http::AgentToken>,
    /// `[[channel]]`s, by the order written.
    pub channels: Vec<channel::ChannelConfig>,
    pub sign_in: Option<sign_in::SignInConfig>,
    pub oauth: Option<oauth::OAuthConfig>,
    pub limits: limits::Limits,
}

/// Where approval mail goes.
#[derive(Debug, Clone, PartialEq)]
pub enum MailTransport {
    /// An SMTP URL, e.g. `smtp://127.0.0.1:2525`.
    Smtp(String),
    /// A directory that receives one `.eml` file per message.
    Outbox(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MailConfig {
    pub from: String,
    pub transport: MailTransport,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    pub bind: SocketAddr,
    pub public_url: Option<String>,
}

/// Everything the gate needs, loaded and cross-checked.
#[derive(Debug, Clone)]
pub struct Setup {
    pub config: Config,
    pub manifests: ManifestSet,
    pub policy: Policy,
    /// Where the active policy was read from.
    pub policy_path: PathBuf,
    /// Findings that do not stop the gate.
    pub warnings: Vec<Diagnostic>,
}

impl Setup {
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.config.servers.iter().find(|s| s.name == name)
    }

    /// Resolve an exposed tool name through the manifests: (server, tool name, manifest).
    pub fn resolve_static(&self, exposed: &str) -> Option<(&ServerConfig, &ToolManifest)> {
        self.config.servers.iter().find_map(|s| {
            let rest = exposed.strip_prefix(s.prefix.as_str())?;
            self.manifests.get(&s.name, rest).map(|m| (s, m))
        })
    }
}

/// Read and validate `airlock.toml` alone (manifests and policy are read by [`load_setup`]).
pub fn load_config(path: &Path) -> Result<Config, Diagnostics> {
    let src = Source::read(path).map_err(|d| Diagnostics(vec![d]))?;
    let file: ConfigFile = src.parse().map_err(|d| Diagnostics(vec![d]))?;
    compile(&src, file).map_err(Diagnostics)
}

fn compile(src: &Source, file: ConfigFile) -> Result<Config, Vec<Diagnostic>> {
    let dir = src
        .path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let mut errors = Vec::new();
    let (servers, unstartable) = server::compile_all(src, &dir, &file.server, &mut errors);
    let channels = channel::compile(src, &file.channel, &mut errors);
    let g = &file.gate;
    if g.actor.trim().is_empty() {
        errors.push(src.error(None, "gate.actor", "must not be empty"));
    }
    let max_wait = crate::policy::parse_duration(&g.max_wait).unwrap_or_else(|msg| {
        errors.push(src.error(None, "gate.max_wait", msg));
        Duration::from_secs(300)
    });
    let seal_ratchet = compile_seal_ratchet(src, &g.seal_ratchet, &mut errors);
    let oauth = oauth::compile(src, file.oauth.as_ref(), &mut errors);
    let (http, agents) = http::compile(src, &file.http, &file.agent, oauth.is_some(), &mut errors);
    if agents.iter().any(|a| a.actor == g.actor.trim()) {
        errors.push(src.error(
            None,
            "agent",
            format!("an [[agent]] may not be `{}`, the stdio agent (gate.actor): each actor sees only its own approvals", g.actor),
        ));
    }
    if let Some(o) = &oauth {
        let statics = std::iter::once(("gate.actor", g.actor.trim())).chain(
            agents
                .iter()
                .map(|a| ("an [[agent]] actor", a.actor.as_str())),
        );
        for (what, actor) in statics.filter(|(_, a)| o.names(a)) {
            errors.push(src.error(
                None,
                "oauth.actor_prefix",
                format!("{what} is `{actor}`, which starts with `{}`, the prefix of OAuth agents: an OAuth token could then act as it; rename it or choose another actor_prefix", o.actor_prefix),
            ));
        }
    }
    let checkpoints = ledger::compile(src, &dir, &file, &mut errors);
    let web = compile_web(src, &file.web, &mut errors);
    let transport = match &file.mail.smtp {
        Some(url) if url.starts_with("smtp://") || url.starts_with("smtps://") => {
            MailTransport::Smtp(url.clone())
        }
        Some(url) => {
            errors.push(src.error(
                None,
                "mail.smtp",
                format!("`{url}` must be an smtp:// or smtps:// URL"),
            ));
            MailTransport::Outbox(dir.join(&file.mail.outbox))
        }
        None => MailTransport::Outbox(dir.join(&file.mail.outbox)),
    };
    if !file.mail.from.contains('@') {
        errors.push(src.error(
            None,
            "mail.from",
            format!("`{}` is not an email address", file.mail.from),
        ));
    }
    let sign_in = sign_in::compile(src, file.sign_in.as_ref(), &mut errors);
    let limits = limits::compile(src, &file.limits, &mut errors);
    let ledger = match &file.store {
        None => crate::ledger::Location::File(dir.join(&g.ledger)),
        Some(s) => {
            if let Err(why) = crate::ledger::postgres::PgTarget::check_url(&s.url) {
                errors.push(src.error(None, "store.url", why));
            }
            crate::ledger::Location::Postgres(crate::ledger::postgres::PgTarget {
                url: s.url.clone(),
                password_env: s.password_env.clone(),
                replica: s.replica.clone(),
            })
        }
    };
    if errors.is_empty() {
        Ok(Config {
            ledger,
            path: src.path.clone(),
            manifests_dir: dir.join(&g.manifests),
            policies_dir: dir.join(&g.policies),
            policy_name: g.policy.clone(),
            ledger_path: dir.join(&g.ledger),
            actor: g.actor.clone(),
            max_wait,
            key_path: dir.join(&g.key),
            signing_key_path: dir.join(&g.signing_key),
            seal_key_path: dir.join(&g.seal_key),
            seal_ratchet,
            checkpoints,
            outcome_before_reply: g.outcome_before_reply,
            servers,
            unstartable,
            mail: MailConfig {
                from: file.mail.from.clone(),
                transport,
            },
            web,
            http,
            agents,
            channels,
            sign_in,
            oauth,
            limits,
        })
    } else {
        Err(errors)
    }
}

/// `[web]`: the pages' address (off loopback only with `allow_remote`) and the links' base.
fn compile_web(src: &Source, web: &WebSection, errors: &mut Vec<Diagnostic>) -> WebConfig {
    let bind_span = web.bind.as_ref().map(Spanned::span);
    let bind_text = web
        .bind
        .as_ref()
        .map_or("127.0.0.1:8787", |b| b.get_ref().as_str());
    let bind = bind_text.parse::<SocketAddr>().unwrap_or_else(|e| {
        errors.push(src.error(
            bind_span.clone(),
            "web.bind",
            format!("`{bind_text}` is not an address like 127.0.0.1:8787 ({e})"),
        ));
        SocketAddr::from(([127, 0, 0, 1], 8787))
    });
    if !bind.ip().is_loopback() && !web.allow_remote {
        errors.push(src.error(
            bind_span,
            "web.bind",
            format!("{bind} is reachable from other machines, and the approval and review pages carry decisions and sign-in: terminate TLS in front of Airlock and set `[web] allow_remote = true`, or bind to 127.0.0.1"),
        ));
    }
    let public_url = web
        .public_url
        .as_ref()
        .map(|u| u.trim_end_matches('/').to_string());
    if let Some(u) = &public_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            errors.push(src.error(
                None,
                "web.public_url",
                format!("`{u}` must start with http:// or https://"),
            ));
        }
    }
    WebConfig { bind, public_url }
}

/// `[gate] seal_ratchet`: one epoch of the seal's key chain, at least a second.
fn compile_seal_ratchet(src: &Source, text: &str, errors: &mut Vec<Diagnostic>) -> Duration {
    crate::policy::parse_duration(text)
        .and_then(|d| match d >= Duration::from_secs(1) {
            true => Ok(d),
            false => Err("must be at least 1s".to_string()),
        })
        .unwrap_or_else(|msg| {
            errors.push(src.error(None, "gate.seal_ratchet", msg));
            Duration::from_secs(3600)
        })
}

#[cfg(test)]
mod tests;
