//! `ledger …` and `keys …`: read-only commands for auditors, and the signing key.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use clap::{Subcommand, ValueEnum};

mod prove;
mod verify;

use super::{ConfigArg, report};
use airlock::canonical;
use airlock::config::{Config, load_config};
use airlock::ledger::checkpoint::default_origin;
use airlock::ledger::{LedgerReader, Record, Row};
use airlock::signing::Signer;

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Write rows to stdout (all, or those matching the filters).
    Export {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Rows at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Rows before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Only rows of calls of this class.
        #[arg(long)]
        class: Option<String>,
        /// Only rows of calls of this tool (the name agents call).
        #[arg(long)]
        tool: Option<String>,
        /// Only rows of calls with this verdict (allow, deny, quarantine, approve).
        #[arg(long)]
        verdict: Option<String>,
    },
    /// Recompute the hash chain, signatures and checkpoints; exit 1 on the first bad row.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// A checkpoint file the ledger must still extend (repeatable), besides those in the
        /// checkpoint directory, which are always read.
        #[arg(long)]
        checkpoint: Vec<PathBuf>,
        /// The trusted public key (hex, or a file holding it); default: this gate's own key.
        #[arg(long)]
        public_key: Option<String>,
        /// Pass without a public key even though the ledger has signatures (hash chain only).
        #[arg(long)]
        no_signature_check: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print a signed checkpoint (row count, head hash) to keep off this machine: a C2SP
    /// tlog-checkpoint note, or the older `airlock checkpoint v1` text.
    Checkpoint {
        #[command(flatten)]
        config: ConfigArg,
        /// Write it to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "note")]
        format: CheckpointFormat,
    },
    /// Remove the oldest rows once all of them have outlived their class's retention (a signed
    /// tombstone keeps verification whole); with --dry-run only say what has expired.
    Prune {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Copy the ledger into an empty one on the other backend (a redb file, or PostgreSQL),
    /// byte for byte, and verify both: the same rows, the same head.
    Copy {
        #[command(flatten)]
        config: ConfigArg,
        /// `postgres://USER@HOST:PORT/DATABASE`, or the path of a new redb file.
        #[arg(long)]
        to: String,
        /// The environment variable holding the target database's password.
        #[arg(long)]
        to_password_env: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The full record of one call (by call, approval or held id).
    Show {
        #[command(flatten)]
        config: ConfigArg,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Prove that VALUE is the one a redacted field of a call held: its salted commitment in the
    /// chain, recomputed (exit 1 if it does not match). The salt comes from the seal key, or
    /// from --salt; --print-salt prints it for an auditor.
    Prove {
        #[command(flatten)]
        config: ConfigArg,
        /// The call's id.
        call: String,
        /// The redacted field, as in the manifest (`/card_number`).
        pointer: String,
        /// The value as JSON (a string with its quotes: '"4111111111111111"'); `-` reads it from
        /// stdin (kept out of the process list and shell history).
        value: Option<String>,
        /// The salt in hex (from `--print-salt` on the gate's machine).
        #[arg(long)]
        salt: Option<String>,
        /// Print the salt (needs the seal key) instead of proving.
        #[arg(long)]
        print_salt: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckpointFormat {
    /// A C2SP tlog-checkpoint signed note (what the gate writes).
    Note,
    /// `airlock checkpoint v1` (rows, head, time, key, signature).
    AirlockV1,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the signing key (never overwrites one) and print its public key.
    Init {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print the public key auditors verify with.
    Public {
        #[command(flatten)]
        config: ConfigArg,
        /// Print instead the signed-note verifier key of the checkpoints (`origin+keyid+key`),
        /// for transparency-log tools.
        #[arg(long)]
        note: bool,
    },
}

pub(super) fn run(command: LedgerCommand) -> anyhow::Result<ExitCode> {
    match command {
        LedgerCommand::Export {
            config,
            format,
            since,
            until,
            class,
            tool,
            verdict,
        } => {
            if let Some(v) = verdict.as_deref() {
                if !matches!(v, "allow" | "deny" | "quarantine" | "approve") {
                    bail!("--verdict must be allow, deny, quarantine or approve, not `{v}`");
                }
            }
            let filter = Filter {
                since: since.as_deref().map(parse_time).transpose()?,
                until: until.as_deref().map(parse_time).transpose()?,
                class,
                tool,
                verdict,
            };
            export(&config.config, format, &filter)
        }
        LedgerCommand::Verify {
            config,
            checkpoint,
            public_key,
            no_signature_check,
            json,
        } => verify::verify(
            &config.config,
            &checkpoint,
            public_key.as_deref(),
            no_signature_check,
            json,
        ),
        LedgerCommand::Checkpoint {
            config,
            out,
            format,
        } => verify::checkpoint(&config.config, out.as_deref(), format),
        LedgerCommand::Prune {
            config,
            dry_run,
            json,
        } => super::audit::prune(&config.config, dry_run, json),
        LedgerCommand::Show { config, id, json } => super::show::show(&config.config, &id, json),
        LedgerCommand::Prove {
            config,
            call,
            pointer,
            value,
            salt,
            print_salt,
        } => prove::prove(
            &config.config,
            &prove::Prove {
                call: &call,
                pointer: &pointer,
                value: value.as_deref(),
                salt: salt.as_deref(),
                print_salt,
            },
        ),
        LedgerCommand::Copy {
            config,
            to,
            to_password_env,
            json,
        } => super::audit::copy(&config.config, &to, to_password_env, json),
    }
}

pub(super) fn keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Init { config } => {
            let c = cfg(&config.config)?;
            let s = Signer::create(&c.signing_key_path)?;
            println!("created {}", c.signing_key_path.display());
            println!("public key: {}", s.public_hex());
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Public { config, note } => {
            let c = cfg(&config.config)?;
            let public = Signer::load(&c.signing_key_path)?.public();
            if note {
                let origin = c
                    .checkpoints
                    .origin
                    .clone()
                    .unwrap_or_else(|| default_origin(&public));
                println!("{}", public.note_verifier_key(&origin));
            } else {
                println!("{}", public.to_hex());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn cfg(path: &Path) -> anyhow::Result<Config> {
    load_config(path).map_err(report)
}

fn parse_time(s: &str) -> anyhow::Result<DateTime<Utc>> {
    airlock::instant::parse_rfc3339(s)
        .with_context(|| format!("`{s}` is not an RFC 3339 time such as 2026-11-24T00:00:00Z"))
}

/// Which rows `export` writes.
struct Filter {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    class: Option<String>,
    tool: Option<String>,
    verdict: Option<String>,
}

/// What a call's first rows say about it: (tool, class, verdict).
type CallInfo = (Option<String>, Option<String>, Option<String>);

impl Filter {
    fn by_call(&self) -> bool {
        self.class.is_some() || self.tool.is_some() || self.verdict.is_some()
    }

    fn keeps(&self, r: &Record, info: Option<&CallInfo>) -> bool {
        if self.since.is_some() || self.until.is_some() {
            let Ok(t) = airlock::instant::parse_rfc3339(&r.time) else {
                return false;
            };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u) {
                return false;
            }
        }
        if !self.by_call() {
            return true;
        }
        let Some((tool, class, verdict)) = info else {
            return false;
        };
        let is = |want: &Option<String>, got: &Option<String>| {
            want.as_ref().is_none_or(|w| got.as_ref() == Some(w))
        };
        is(&self.tool, tool) && is(&self.class, class) && is(&self.verdict, verdict)
    }
}

/// Note what a call's proposal or verdict row says about it.
fn learn(calls: &mut HashMap<String, CallInfo>, rec: &Record) {
    if rec.call_id.is_empty() {
        return;
    }
    match rec.row() {
        Ok(Row::Proposal(p)) => calls.entry(rec.call_id.clone()).or_default().0 = Some(p.tool),
        Ok(Row::Verdict(v)) => {
            let info = calls.entry(rec.call_id.clone()).or_default();
            info.1 = v.class;
            info.2 = Some(v.verdict.name().to_string());
        }
        _ => {}
    }
}

const CSV_HEADER: &str = "seq,time,kind,call_id,tool,class,verdict,prev,hash,body";

/// One CSV cell: quoted when needed, and a leading `= + - @` defused so a spreadsheet never
/// runs a tool name (chosen by an agent) as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn export(path: &Path, format: ExportFormat, filter: &Filter) -> anyhow::Result<ExitCode> {
    let reader = LedgerReader::open_at(&cfg(path)?.ledger)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if format == ExportFormat::Csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    // A call is known by its proposal and verdict; with call filters, learn every call first so
    // its earlier rows (the proposal) are kept too.
    let mut calls: HashMap<String, CallInfo> = HashMap::new();
    if filter.by_call() {
        reader.records(|r| {
            if let Ok(rec) = r {
                learn(&mut calls, &rec);
            }
        })?;
    }
    let mut bad = None;
    reader.records(|r| match r {
        Ok(rec) => {
            if bad.is_some() {
                return;
            }
            learn(&mut calls, &rec);
            let info = calls.get(&rec.call_id);
            if !filter.keeps(&rec, info) {
                return;
            }
            let line = match format {
                ExportFormat::Jsonl => serde_json::to_value(&rec)
                    .map(|v| canonical::to_string(&v))
                    .unwrap_or_default(),
                ExportFormat::Csv => {
                    let (tool, class, verdict) = info.cloned().unwrap_or_default();
                    [
                        rec.seq.to_string(),
                        rec.time.clone(),
                        rec.kind.clone(),
                        rec.call_id.clone(),
                        tool.unwrap_or_default(),
                        class.unwrap_or_default(),
                        verdict.unwrap_or_default(),
                        rec.prev.clone(),
                        rec.hash.clone(),
                        canonical::to_string(&rec.body),
                    ]
                    .iter()
                    .map(|f| csv_field(f))
                    .collect::<Vec<_>>()
                    .join(",")
                }
            };
            if let Err(e) = writeln!(out, "{line}") {
                bad = Some(format!("cannot write: {e}"));
            }
        }
        Err((seq, e)) => {
            bad.get_or_insert(format!("row {seq} cannot be decoded: {e}"));
        }
    })?;
    out.flush()?;
    match bad {
        Some(e) => bail!("{e}"),
        None => Ok(ExitCode::SUCCESS),
    }
}
