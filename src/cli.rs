//! The command line: one function per subcommand, each a thin shell over the library.
//!
//! Owns argument parsing, human and JSON output, and exit codes (0 ok, 1 a finding such as a failed
//! check or verification, 2 an error). It must never hold gate logic of its own.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use airlock::config::{Setup, load_setup};
use airlock::diag::Diagnostics;
use airlock::mcp::downstream::ToolServers;
use airlock::schema::{FileKind, schema};

#[derive(Debug, Parser)]
#[command(
    name = "airlock",
    version,
    about = "Gate every MCP tool call: classify by manifest, decide by policy, audit in a tamper-evident ledger"
)]
pub struct Cli {
    /// How log lines on stderr are written: `text`, or `json` (one object per line, for a log
    /// collector). `AIRLOCK_LOG` sets the level filter either way.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    /// The walk-through: write a demo setup into a directory, start the gate on it, and make one
    /// call down each path (autopilot, conditional, deny, held for review, approval by a person).
    Demo(demo::DemoArgs),
    /// Serve the demo shop as an MCP tool server on stdio (what `builtin = "demo-shop"` starts).
    #[command(name = "demo-shop", hide = true)]
    DemoShop(airlock::mcp::demo_shop::Options),
    /// Approvers' second factors.
    Approver {
        #[command(subcommand)]
        command: approver::ApproverCommand,
    },
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

mod approver;
mod audit;
mod demo;
mod inspect;
mod ledger;
mod review;
mod serve;
mod show;

use inspect::{explain, map};
use serve::serve;

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
        Command::Demo(args) => demo::demo(&args),
        Command::DemoShop(options) => {
            runtime()?.block_on(airlock::mcp::demo_shop::run(options))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine { command } => review::quarantine(command),
        Command::Approver { command } => approver::run(command),
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
                    let served = servers.tools();
                    let found = s.validate_conditions(|server, tool| {
                        served
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
            for name in s.policy.classes.keys() {
                println!(
                    "  {name:<20} {}; {}",
                    inspect::route_of(&s.policy, name),
                    inspect::record_of(&s.policy, name)
                );
            }
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
