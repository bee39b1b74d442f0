//! The command line: one function per subcommand, each a thin shell over the library.
//!
//! Owns argument parsing, human and JSON output, and exit codes (0 ok, 1 a finding such as a failed
//! check or verification, 2 an error). It must never hold gate logic of its own.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use airlock::approval::Desk;
use airlock::approval::link::LinkKey;
use airlock::config::MailTransport;
use airlock::config::{Setup, load_setup};
use airlock::diag::Diagnostics;
use airlock::drift::meter::Meter;
use airlock::drift::pauses::Pauses;
use airlock::forward::Forwarder;
use airlock::gate::Gate;
use airlock::ledger::{Ledger, NewRow};
use airlock::live::{self, Live};
use airlock::mail::Mailer;
use airlock::mcp::downstream::ToolServers;
use airlock::mcp::upstream::AgentServer;
use airlock::quarantine::Quarantine;
use airlock::schema::{FileKind, schema};
use airlock::signing::Signer;
use airlock::web;

#[derive(Debug, Parser)]
#[command(
    name = "airlock",
    version,
    about = "Gate every MCP tool call: classify by manifest, decide by policy, audit in a tamper-evident ledger"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve MCP to an agent over stdio (and, with --http or `[http] bind`, to agents with
    /// tokens over streamable HTTP at /mcp), gating every tool call.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Also serve MCP over streamable HTTP on this address (with the approval pages).
        #[arg(long)]
        http: Option<String>,
    },
    /// The running gate and the state of each tool server.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Base URL of the running gate (default: the address `serve` wrote beside the ledger).
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Make a bearer token for an HTTP agent.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Validate config, manifests and policy together; print every problem with file, line and key.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Do not start the tool servers to check conditions against their input schemas.
        #[arg(long)]
        offline: bool,
    },
    /// The approval map: every tool, its class, path, role and timeout behaviour.
    Map {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        json: bool,
    },
    /// The decision the gate would make for a call, and why.
    Explain {
        #[command(flatten)]
        config: ConfigArg,
        /// Exposed tool name, as the agent would call it.
        #[arg(long)]
        tool: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// The actor to decide for (default: the config's `gate.actor`).
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Read the ledger.
    Ledger {
        #[command(subcommand)]
        command: ledger::LedgerCommand,
    },
    /// Review quarantined calls and tools (through the running gate).
    Quarantine {
        #[command(subcommand)]
        command: review::QuarantineCommand,
    },
    /// Paused autopilot: list paused scopes, resume one (through the running gate).
    Drift {
        #[command(subcommand)]
        command: review::DriftCommand,
    },
    /// The approval queue, audited: rates, time to decide, queue depth, flags.
    Stats {
        #[command(flatten)]
        config: ConfigArg,
        /// Only approvals requested at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Re-decide the recorded calls with a candidate policy; report what would change.
    Replay {
        #[command(flatten)]
        config: ConfigArg,
        /// The candidate policy file (or a directory holding exactly one).
        #[arg(long)]
        policy: PathBuf,
        /// Only calls made at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The Ed25519 key that signs ledger rows and checkpoints.
    Keys {
        #[command(subcommand)]
        command: ledger::KeysCommand,
    },
    /// Print the JSON Schema of a file kind.
    Schema { kind: SchemaKind },
    /// Work with policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Which tools change path (or role, or timeout behaviour) between two policy files.
    Diff {
        #[command(flatten)]
        config: ConfigArg,
        old: PathBuf,
        new: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new token (give it to the agent) and the `[[agent]]` entry with its hash.
    New {
        /// The actor id the agent's calls are recorded under, e.g. `agent:billing-bot`.
        #[arg(long)]
        actor: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemaKind {
    Config,
    Manifest,
    Policy,
    /// A line of `airlock ledger export`.
    Export,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArg {
    /// Path of airlock.toml.
    #[arg(long, default_value = "airlock.toml")]
    pub(crate) config: PathBuf,
}

mod audit;
mod inspect;
mod ledger;
mod review;
mod show;

use inspect::{explain, map};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config, http } => serve(&config.config, http.as_deref()),
        Command::Status { config, url, json } => {
            review::status(&config.config, url.as_deref(), json)
        }
        Command::Token {
            command: TokenCommand::New { actor },
        } => {
            let (token, hash) = airlock::identity::new_token().map_err(anyhow::Error::msg)?;
            println!("token (give it to the agent; it is not stored anywhere): {token}\n");
            let entry = toml::to_string(
                &serde_json::json!({"agent": [{"actor": actor, "token_sha256": hash}]}),
            )?;
            print!("{entry}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, offline } => check(&config.config, offline),
        Command::Map { config, json } => map(&config.config, json),
        Command::Explain {
            config,
            tool,
            args,
            actor,
            json,
        } => explain(&config.config, &tool, &args, actor.as_deref(), json),
        Command::Ledger { command } => ledger::run(command),
        Command::Keys { command } => ledger::keys(command),
        Command::Replay {
            config,
            policy,
            since,
            json,
        } => audit::replay(&config.config, &policy, since.as_deref(), json),
        Command::Stats {
            config,
            since,
            json,
        } => audit::stats(&config.config, since.as_deref(), json),
        Command::Policy {
            command:
                PolicyCommand::Diff {
                    config,
                    old,
                    new,
                    json,
                },
        } => inspect::policy_diff(&config.config, &old, &new, json),
        Command::Quarantine { command } => review::quarantine(command),
        Command::Drift { command } => review::drift(command),
        Command::Schema { kind } => {
            let kind = match kind {
                SchemaKind::Config => FileKind::Config,
                SchemaKind::Manifest => FileKind::Manifest,
                SchemaKind::Policy => FileKind::Policy,
                SchemaKind::Export => FileKind::Export,
            };
            println!("{}", serde_json::to_string_pretty(&schema(kind))?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Load the setup, printing warnings; on errors print them all and fail.
fn setup(path: &Path) -> anyhow::Result<Setup> {
    match load_setup(path) {
        Ok(s) => {
            for w in &s.warnings {
                eprintln!("{w}");
            }
            Ok(s)
        }
        Err(diags) => Err(report(diags)),
    }
}

fn report(diags: Diagnostics) -> anyhow::Error {
    let n = diags.errors();
    anyhow::anyhow!("{diags}\n{n} error(s); nothing was started")
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn serve(path: &Path, http_override: Option<&str>) -> anyhow::Result<ExitCode> {
    // The files as they are now: an edit made while the servers start is picked up by the watcher.
    let loaded = setup(path)?;
    let seen = live::fingerprint(path, &loaded);
    let setup = Arc::new(loaded);
    runtime()?.block_on(async move {
        let cfg = &setup.config;
        let signer = Signer::load_or_create(&cfg.signing_key_path)?;
        let ledger = Arc::new(Ledger::open_signed(&cfg.ledger_path, Some(signer.clone()))?);
        let key = LinkKey::load_or_create(&cfg.key_path)?;
        let mailer = Mailer::new(&cfg.mail)?;
        // With MCP over HTTP, the approval pages share its listener.
        let http_bind = cfg.http.serving(http_override, &cfg.agents).map_err(anyhow::Error::msg)?;
        let (bind, what) = match http_bind { Some(b) => (b, "http.bind"), None => (cfg.web.bind, "web.bind") };
        let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("cannot listen on {bind} ({what})"))?;
        let bound = listener.local_addr()?;
        let base_url = cfg.web.public_url.clone().unwrap_or_else(|| format!("http://{bound}"));
        let (servers, problems) = ToolServers::connect(&cfg.servers).await;
        for p in &problems {
            tracing::error!(server = %p.server, "{}", p.message);
        }
        // A condition on an argument a tool does not have could never hold: refuse to serve.
        let found = setup.validate_conditions(|server, tool| servers.route_of(server, tool).and_then(|t| t.definition.get("inputSchema")));
        let errors: Vec<String> = found.iter().filter(|d| d.severity == airlock::diag::Severity::Error).map(ToString::to_string).collect();
        for d in found.iter().filter(|d| d.severity != airlock::diag::Severity::Error) {
            tracing::warn!("{d}");
        }
        if !errors.is_empty() {
            bail!("{}\n{} error(s) in conditions; nothing was started", errors.join("\n"), errors.len());
        }
        let started = json!({
            "policy_version": setup.policy.version,
            "policy_file": setup.policy_path.display().to_string(),
            "actor": cfg.actor,
            "servers": servers.status().into_iter().map(|(n, s)| json!({"name": n, "status": s})).collect::<Vec<_>>(),
            "tools": servers.tools().iter().map(|t| t.exposed.clone()).collect::<Vec<_>>(),
            "web": {"bound": bound.to_string(), "public_url": base_url},
            "mail": match &cfg.mail.transport { MailTransport::Smtp(_) => "smtp".to_string(), MailTransport::Outbox(d) => d.display().to_string() },
            "airlock_version": env!("CARGO_PKG_VERSION"),
            "signing_key": signer.public_hex(),
        });
        ledger
            .append(vec![NewRow::now("gate_started", "", started)])
            .await
            .context("cannot write to the ledger; refusing to serve")?;
        let servers = Arc::new(servers);
        let forwarder = Forwarder::new(ledger.clone(), servers.clone());
        // The rug-pull guard: compare what the servers present with what was reviewed.
        let changed = live::guard(&setup, &ledger, &servers, &Default::default()).await.context("cannot record tool definitions")?;
        for ((server, tool), c) in &changed {
            tracing::warn!(%server, %tool, was = %c.was, now = %c.now, "tool definition changed: quarantined until reviewed (pin the new definition_hash in its manifest)");
        }
        let changed_keys = changed.keys().cloned().collect();
        let live = Arc::new(Live::new(setup.clone(), changed));
        let desk = Desk::new(live.clone(), ledger.clone(), servers.clone(), forwarder.clone(), mailer, key.clone(), base_url.clone());
        let pending = desk.recover().await.context("cannot reload pending approvals")?;
        let quarantine = Arc::new(Quarantine::new(ledger.clone(), forwarder.clone(), key.clone()));
        let held = quarantine.recover().await.context("cannot reload held calls")?;
        let meter = Meter::load(ledger.drift()?).map_err(|e| anyhow::anyhow!("cannot reload rate-limit counters: {e}"))?;
        let pauses = Arc::new(Pauses::new(Arc::new(meter), ledger.clone(), live.clone(), Mailer::new(&cfg.mail)?, key, base_url.clone()));
        let voided = desk.void_changed(&changed_keys).await;
        if voided > 0 {
            tracing::warn!(voided, "pending approvals voided because their tool changed");
        }
        let runtime_file = runtime_file(&cfg.ledger_path);
        // The CLI finds this gate here; the instance nonce lets it tell this gate from whatever
        // may hold the port after a crash before it sends the review token.
        let instance = uuid::Uuid::new_v4().to_string();
        if let Err(e) = write_private(&runtime_file, &format!("http://{bound}\n{instance}\n")) {
            tracing::warn!(file = %runtime_file.display(), error = %e, "cannot write the runtime file; `airlock quarantine` and `airlock drift` will need --url");
        }
        let pages = web::app(Arc::new(web::Web { instance, desk: desk.clone(), quarantine: quarantine.clone(), pauses: pauses.clone(), live: live.clone(), servers: servers.clone(), ledger: ledger.clone() }));
        // Edits to manifests and policy take effect when valid (file change or SIGHUP).
        let checkpoints = cfg.checkpoint_dir.clone().map(|dir| tokio::spawn(airlock::ledger::checkpoint::every(ledger.clone(), signer.clone(), dir, cfg.checkpoint_every)));
        let watcher = tokio::spawn(live::watch(path.to_path_buf(), seen, live.clone(), ledger.clone(), servers.clone(), desk.clone(), std::time::Duration::from_secs(1)));
        tracing::info!(tools = servers.tools().len(), policy = %setup.policy.version, ledger = %ledger.path().display(), approvals = %base_url, pending, held, "airlock serving MCP on stdio");
        tracing::info!("review page (held calls, unclassified tools, paused autopilot): run `airlock quarantine list` for its link");
        tracing::info!(public_key = %signer.public_hex(), "ledger signing key (verify with `airlock ledger verify --public-key`)");
        let gate = Arc::new(Gate::new(live, ledger.clone(), servers.clone(), forwarder, desk.clone(), quarantine.clone(), pauses));
        let agent = AgentServer::new(gate.clone(), cfg.max_wait);
        let stop = tokio_util::sync::CancellationToken::new();
        let router = match http_bind {
            Some(_) => pages.merge(airlock::mcp::http::router(agent.clone(), &cfg.http, airlock::identity::Agents::new(cfg.agents.clone()), stop.clone())),
            None => pages,
        };
        let web = tokio::spawn(web::serve(listener, router));
        if let Some(b) = http_bind {
            tracing::info!(agents = cfg.agents.len(), "airlock serving MCP over streamable HTTP at http://{b}/mcp");
        }
        // A signal ends serving at any time (and still drains); stdio closing ends it unless HTTP
        // agents are served too, which keep being served until a signal.
        let signalled = tokio::select! {
            served = agent.serve_stdio() => {
                match served {
                    Err(e) if http_bind.is_some() => tracing::info!("no agent on stdio ({e})"),
                    other => other?,
                }
                false
            }
            _ = shutdown_signal() => true,
        };
        if http_bind.is_some() && !signalled {
            tracing::info!("stdio agent gone; serving HTTP agents until SIGTERM or Ctrl-C");
            shutdown_signal().await;
        }
        stop.cancel();
        // The agent has gone. Let calls already running finish and record their outcome; pending
        // approvals stay pending in the ledger for the next start.
        gate.drain(std::time::Duration::from_secs(30)).await;
        desk.drain(std::time::Duration::from_secs(30)).await;
        quarantine.drain(std::time::Duration::from_secs(30)).await;
        web.abort();
        watcher.abort();
        let _ = std::fs::remove_file(&runtime_file);
        if let Some(c) = checkpoints {
            c.abort();
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Text for a terminal: control characters (e.g. escape sequences in a tool name an agent chose)
/// are shown escaped instead of interpreted.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Write a file only its owner can read (replacing an old one).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let _ = std::fs::remove_file(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(text.as_bytes())
}

/// Where a running `airlock serve` writes the address of its web listener (beside the ledger),
/// so `airlock quarantine` and `airlock drift` can reach it.
pub(crate) fn runtime_file(ledger: &Path) -> PathBuf {
    let mut name = ledger.as_os_str().to_owned();
    name.push(".url");
    PathBuf::from(name)
}

fn check(path: &Path, offline: bool) -> anyhow::Result<ExitCode> {
    match load_setup(path) {
        Ok(s) => {
            for w in &s.warnings {
                println!("{w}");
            }
            if s.has_conditions() && !offline {
                let found = runtime()?.block_on(async {
                    let (servers, problems) = ToolServers::connect(&s.config.servers).await;
                    for p in &problems {
                        println!(
                            "{}: warning: server `{}` did not start: {}",
                            s.config.path.display(),
                            p.server,
                            p.message
                        );
                    }
                    let found = s.validate_conditions(|server, tool| {
                        servers
                            .route_of(server, tool)
                            .and_then(|t| t.definition.get("inputSchema"))
                    });
                    servers.shutdown().await;
                    found
                });
                let errors = found
                    .iter()
                    .filter(|d| d.severity == airlock::diag::Severity::Error)
                    .count();
                for d in &found {
                    println!("{d}");
                }
                if errors > 0 {
                    println!("{errors} error(s)");
                    return Ok(ExitCode::from(1));
                }
            }
            println!(
                "ok: {} server(s), {} tool manifest(s), policy {} ({}, {} classes)",
                s.config.servers.len(),
                s.manifests.len(),
                s.policy.version,
                s.policy_path.display(),
                s.policy.classes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            let errors = diags.errors();
            println!("{diags}");
            println!("{errors} error(s)");
            Ok(ExitCode::from(1))
        }
    }
}
