//! `gen_ledger`: build a large ledger for the storage-scale measurements (`bench/scale`).
//!
//! Writes, into a new directory, an `airlock.toml` (the demo shop as tool server, the repo's
//! manifests, a benchmark policy whose `financial` class is signed and waits 30 days), and a ledger
//! of about `--rows` rows through the library's own `Ledger` (`open_signed`, `submit`): the same
//! writer, chain, signatures and approvals table `airlock serve` uses, so `airlock serve` and
//! `airlock ledger verify` run against it unchanged. The rows are what the gate and the desk write
//! for a mix of autopilot calls (reads, reversible changes, customer mail, denied deletions),
//! refunds approved and closed (`--closed`), and `--pending` refunds still waiting for finance
//! (mail already sent, so a start sends nothing). Many calls go into one commit, so 10 million
//! rows take minutes, not the hours one commit per call would.
//!
//! Two differences from a live gate's file, both from batching: the writer stamps its `signature`
//! rows with the real time (the generated rows carry times over the last `--days`), and there are
//! fewer of them (one per commit holding signed rows; `gen.json` says how many a live gate would
//! have written and what each costs `verify`).
//!
//! Also writes `links.txt` (approval page paths of a few pending approvals, for a lookup) and
//! `gen.json` (what was generated).
//!
//! It must never touch a ledger it did not create: it refuses a `--dir` that exists and is not
//! empty, and writes nothing outside it.
//!
//! `cargo run --release --example gen_ledger -- --dir /tmp/scale --rows 10000000 --pending 100000`

mod calls;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::TimeDelta;
use clap::Parser;
use serde_json::json;

use airlock::approval::link::LinkKey;
use airlock::config::load_setup;
use airlock::ledger::{Change, Ledger, NewRow, Pending, Row, row};
use airlock::signing::Signer;
use calls::{Gen, Kind};

#[derive(Debug, Parser)]
#[command(about = "Generate a large Airlock ledger (and its config) for scale measurements")]
struct Cli {
    /// A new (or empty) directory to write the config, keys, ledger and outbox into.
    #[arg(long)]
    dir: PathBuf,
    /// Ledger rows to write (the writer's signature rows come on top).
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    /// Approvals left pending (the approvals table and their rows).
    #[arg(long, default_value_t = 100_000)]
    pending: u64,
    /// Approvals approved, run and closed in the history; default: 2% of the calls. They stay in
    /// the approvals table, as in a real gate (nothing removes finished approvals).
    #[arg(long)]
    closed: Option<u64>,
    /// Rows per generator change; the writer may join several queued changes in one commit.
    #[arg(long, default_value_t = 4_000)]
    batch: usize,
    /// Changes queued ahead of the writer.
    #[arg(long, default_value_t = 4)]
    depth: usize,
    /// The demo shop binary the config starts (default: beside this program).
    #[arg(long)]
    demo_shop: Option<PathBuf>,
    /// Pending approvals whose page path goes to links.txt.
    #[arg(long, default_value_t = 20)]
    links: u64,
    /// Days the history spans, ending now (the pending approvals wait 30 days from their request).
    #[arg(long, default_value_t = 7)]
    days: u32,
}

const POLICY: &str = r#"# Written by examples/gen_ledger: the repo's default policy, with finance signed and patient.
version = "bench-scale.1"

[classes]
read_only           = { path = "allow" }
internal_reversible = { path = "allow", require_reversal = true, role = "ops", timeout = "2h", on_timeout = "expire", limits = [{ window = "1m", max_calls = 30 }] }
customer_facing     = { path = "conditional", require_evidence = true, role = "support", timeout = "1h", on_timeout = "escalate" }
financial           = { path = "approve", role = "finance", timeout = "30d", on_timeout = "deny", signed = true }
destructive         = { path = "deny", signed = true }

[roles]
ops      = { emails = ["ops-approvers@example.com"] }
support  = { emails = ["support-approvers@example.com"], escalate_to = "ops" }
finance  = { emails = ["finance-approvers@example.com"], escalate_to = "cfo" }
cfo      = { emails = ["cfo@example.com"] }
"#;

/// Write the config, policy and manifests; return the config path.
fn write_files(dir: &Path, demo_shop: &Path) -> anyhow::Result<PathBuf> {
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests/demo_shop.toml");
    std::fs::create_dir_all(dir.join("tool-manifests"))?;
    std::fs::create_dir_all(dir.join("policies"))?;
    std::fs::copy(&manifests, dir.join("tool-manifests/demo_shop.toml"))
        .with_context(|| format!("cannot copy {}", manifests.display()))?;
    std::fs::write(dir.join("policies/bench.toml"), POLICY)?;
    let config = dir.join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "# Written by examples/gen_ledger for bench/scale.\n[gate]\nmanifests = \"tool-manifests\"\npolicies = \"policies\"\nledger = \"ledger.redb\"\nactor = \"agent:bench\"\nmax_wait = \"2m\"\n\n[web]\nbind = \"127.0.0.1:0\"\n\n[mail]\noutbox = \"outbox\"\n\n[[server]]\nname = \"shop\"\ncommand = {cmd:?}\nprefix = \"\"\n",
            cmd = demo_shop.display().to_string(),
        ),
    )?;
    Ok(config)
}

/// `target/<profile>/examples/demo_shop`, beside this program.
fn default_demo_shop() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no directory for this program")?;
    Ok(dir.join("demo_shop"))
}

/// Which kind the next call is, so that the pending and closed approvals are spread evenly
/// over the history and all of them fit in the row budget.
fn next_kind(g: &mut Gen<'_>, budget: u64, pending: u64, closed: u64) -> Kind {
    let reserved = pending * Kind::Pending.rows() + closed * Kind::Closed.rows();
    let free = budget.saturating_sub(reserved);
    if free < Kind::Autopilot.rows() {
        return if pending > 0 {
            Kind::Pending
        } else {
            Kind::Closed
        };
    }
    let calls_left = free / Kind::Autopilot.rows() + pending + closed;
    let r = g.below(calls_left);
    if r < pending {
        Kind::Pending
    } else if r < pending + closed {
        Kind::Closed
    } else {
        Kind::Autopilot
    }
}

/// Microseconds one `signature` row check costs `verify` (Ed25519), measured here.
fn signature_check_us(signer: &Signer) -> f64 {
    let head = [7u8; 32];
    let sig = signer.sign_rows(41, &head);
    let public = signer.public();
    let n = 500u32;
    let t = Instant::now();
    let mut ok = 0u32;
    for _ in 0..n {
        ok += u32::from(public.verify_rows(41, &head, &sig));
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    if ok != n {
        eprintln!("gen_ledger: the signature self-check failed ({ok}/{n})");
    }
    us
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.dir.exists()
        && std::fs::read_dir(&cli.dir)
            .with_context(|| format!("cannot read {}", cli.dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty: gen_ledger only writes into a new directory",
            cli.dir.display()
        );
    }
    std::fs::create_dir_all(&cli.dir)?;
    let dir = std::fs::canonicalize(&cli.dir)?;
    let demo_shop = match &cli.demo_shop {
        Some(p) => p.clone(),
        None => default_demo_shop()?,
    };
    if !demo_shop.exists() {
        eprintln!(
            "gen_ledger: warning: {} does not exist; build it (cargo build --release --example demo_shop) before `airlock serve`",
            demo_shop.display()
        );
    }
    let config = write_files(&dir, &demo_shop)?;
    let setup = load_setup(&config).map_err(|d| anyhow::anyhow!("generated config: {d}"))?;
    let cfg = &setup.config;
    let signer = Signer::load_or_create(&cfg.signing_key_path)?;
    let key = LinkKey::load_or_create(&cfg.key_path)?;
    let ledger = Arc::new(Ledger::open_signed(&cfg.ledger_path, Some(signer.clone()))?);
    let calls_estimate = (cli.rows / Kind::Autopilot.rows()).max(1);
    let closed = cli.closed.unwrap_or(calls_estimate / 50);
    let needed = cli.pending * Kind::Pending.rows() + closed * Kind::Closed.rows();
    if needed > cli.rows {
        bail!(
            "{} pending and {closed} closed approvals need {needed} rows, more than --rows {}",
            cli.pending,
            cli.rows
        );
    }
    let span = TimeDelta::days(i64::from(cli.days));
    let started = airlock::instant::now();
    // about one tick per call, two for approvals: half the rows as ticks ends before now
    let step = span / i32::try_from((cli.rows / 2).max(1)).unwrap_or(i32::MAX);
    let mut g = Gen {
        setup: &setup,
        key: &key,
        outbox: outbox_name(cfg),
        clock: started - span,
        step,
        rng: 0x5EED,
    };
    // A first start of the gate, as `serve` records it.
    ledger
        .append(vec![NewRow::at(
            "",
            g.clock,
            Row::GateStarted(row::GateStarted {
                policy_version: setup.policy.version.clone(),
                policy_file: setup.policy_path.display().to_string(),
                actor: cfg.actor.clone(),
                servers: vec![row::ServerState {
                    name: "shop".into(),
                    status: "running".into(),
                }],
                tools: Vec::new(),
                web: row::WebAddress::default(),
                mail: String::new(),
                airlock_version: env!("CARGO_PKG_VERSION").into(),
                signing_key: signer.public_hex(),
                generated_by: Some("examples/gen_ledger".into()),
            }),
        )])
        .await?;

    let t0 = Instant::now();
    let (mut written, mut pending_left, mut closed_left) = (1u64, cli.pending, closed);
    let mut counts = [0u64; 3];
    let link_every = (cli.pending / cli.links.max(1)).max(1);
    let mut links = Vec::new();
    let mut inflight: VecDeque<Pending> = VecDeque::new();
    let mut change = Change::default();
    let mut next_report = 1_000_000u64;
    while written < cli.rows {
        let kind = next_kind(&mut g, cli.rows - written, pending_left, closed_left);
        if kind == Kind::Autopilot && cli.rows - written < Kind::Autopilot.rows() {
            break;
        }
        let call = g.call(kind).map_err(anyhow::Error::msg)?;
        match kind {
            Kind::Pending => {
                if (cli.pending - pending_left) % link_every == 0
                    && links.len() < cli.links as usize
                {
                    links.extend(call.link);
                }
                pending_left -= 1;
                counts[1] += 1;
            }
            Kind::Closed => {
                closed_left -= 1;
                counts[2] += 1;
            }
            Kind::Autopilot => counts[0] += 1,
        }
        written += call.rows.len() as u64;
        change.rows.extend(call.rows);
        change.items.extend(call.approval);
        if change.rows.len() >= cli.batch {
            inflight.push_back(ledger.submit(std::mem::take(&mut change))?);
            if inflight.len() >= cli.depth {
                if let Some(p) = inflight.pop_front() {
                    p.await?;
                }
            }
        }
        if written >= next_report {
            let s = t0.elapsed().as_secs_f64();
            eprintln!(
                "gen_ledger: {written} rows in {s:.0} s ({:.0} rows/s)",
                written as f64 / s
            );
            next_report += 1_000_000;
        }
    }
    if !change.rows.is_empty() {
        inflight.push_back(ledger.submit(change)?);
    }
    while let Some(p) = inflight.pop_front() {
        p.await?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let (head_rows, _) = ledger.head()?;
    let path = ledger.path().to_path_buf();
    drop(ledger);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    std::fs::write(dir.join("links.txt"), links.join("\n") + "\n")?;
    // A live gate commits each approval event on its own: opening (with mail), decision and
    // close each end with a signature row; here many share one commit, so there are fewer.
    let live_signatures = counts[1] * 2 + counts[2] * 4;
    let sig_us = signature_check_us(&signer);
    let summary = json!({
        "dir": dir.display().to_string(),
        "config": config.display().to_string(),
        "ledger": path.display().to_string(),
        "ledger_bytes": bytes,
        "rows": head_rows,
        "calls": {"autopilot": counts[0], "pending_approvals": counts[1], "closed_approvals": counts[2]},
        "signature_rows": head_rows.saturating_sub(written),
        "signature_rows_a_live_gate_would_write_at_most": live_signatures,
        "signature_check_us": (sig_us * 10.0).round() / 10.0,
        "seconds": (secs * 10.0).round() / 10.0,
        "rows_per_second": (written as f64 / secs).round(),
        "links": links.len(),
    });
    std::fs::write(
        dir.join("gen.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// The outbox directory as `mail_sent` rows name it.
fn outbox_name(cfg: &airlock::config::Config) -> String {
    match &cfg.mail.transport {
        airlock::config::MailTransport::Outbox(d) => d.display().to_string(),
        airlock::config::MailTransport::Smtp(_) => "smtp".to_string(),
    }
}
