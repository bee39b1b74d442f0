//! `ledger_load`: durable ledger appends per second under concurrent load.
//!
//! T tasks each play the gate's part in an allowed call, over and over, through the library's
//! `Ledger` (the same writer thread and group commit `airlock serve` uses): `submit` the proposal
//! and verdict and wait until they are durable, then `append` the outcome and wait again. Rows per
//! second = 3 × calls per second. Nothing is forwarded, so this is the ledger's ceiling, not the
//! gate's.
//!
//! Batch sizes: the writer does not report them. In `signed` mode every verdict asks for its call
//! to be signed, so the writer ends each commit with one `signature` row whose `signed_rows` is the
//! number of rows in that commit: reading those rows back gives the exact rows per commit. That
//! costs one Ed25519 signature and a `signed_calls` insert per call, so `plain` mode (no signed
//! calls, as for autopilot classes) is measured too; its batch sizes are not observable.
//!
//! Each run uses a fresh ledger in its own temporary directory (removed afterwards). It must never
//! open any other ledger.
//!
//! `cargo run --release --example ledger_load -- --rows 300000 --tasks 1,32,256`

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use serde_json::json;

#[path = "common/rows.rs"]
mod rows;

use airlock::ledger::{Change, Ledger, NewRow, Row};
use airlock::signing::Signer;

#[derive(Debug, Parser)]
#[command(about = "Durable ledger appends per second under concurrent load")]
struct Cli {
    /// Rows per run (3 per call).
    #[arg(long, default_value_t = 300_000)]
    rows: u64,
    /// Concurrent tasks, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128,512")]
    tasks: Vec<usize>,
    /// plain, signed or both.
    #[arg(long, default_value = "both")]
    mode: String,
    /// At most this many calls per task, so a run with few tasks (one durable commit per
    /// request) ends in seconds: rows per run = min(--rows, 3 × this × tasks).
    #[arg(long, default_value_t = 2_000)]
    max_calls_per_task: u64,
    /// Where the temporary directories go (default: the system's).
    #[arg(long)]
    tmp: Option<std::path::PathBuf>,
}

/// One run's result.
struct Run {
    mode: &'static str,
    tasks: usize,
    rows: u64,
    secs: f64,
    /// Per durable wait (submit → durable), microseconds.
    waits: Vec<u64>,
    /// Rows per commit, from the signature rows (signed mode only).
    batches: Vec<u64>,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The rows of one allowed call, sized like the gate's (a search on the demo shop).
fn call_rows(call_id: &str, n: u64, signed: bool) -> (Vec<NewRow>, NewRow) {
    let args = json!({"query": format!("A-{}", 1000 + n % 5)});
    rows::call_rows(
        call_id,
        "search_orders",
        args,
        ("agent:load", "load.1"),
        signed,
        &n.to_le_bytes(),
    )
}

/// One task: `calls` allowed calls, each waiting for its rows to be durable, as the gate does.
async fn task(ledger: Arc<Ledger>, calls: u64, signed: bool) -> anyhow::Result<Vec<u64>> {
    let mut waits = Vec::with_capacity(calls as usize * 2);
    for n in 0..calls {
        let call_id = uuid::Uuid::new_v4().to_string();
        let (first, outcome) = call_rows(&call_id, n, signed);
        let t = Instant::now();
        let pending = ledger.submit(Change {
            rows: first,
            ..Change::default()
        })?;
        pending.await?;
        waits.push(t.elapsed().as_micros() as u64);
        let t = Instant::now();
        ledger.append(vec![outcome]).await?;
        waits.push(t.elapsed().as_micros() as u64);
    }
    Ok(waits)
}

async fn run(tmp: &Path, mode: &'static str, tasks: usize, rows: u64) -> anyhow::Result<Run> {
    let dir = tempfile::Builder::new()
        .prefix("ledger_load-")
        .tempdir_in(tmp)?;
    let signer = Signer::create(&dir.path().join("signing.key"))?;
    let ledger = Arc::new(Ledger::open_signed(
        &dir.path().join("ledger.redb"),
        Some(signer),
    )?);
    let signed = mode == "signed";
    let calls = (rows / 3).max(tasks as u64);
    let per = calls / tasks as u64;
    let extra = calls % tasks as u64;
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for i in 0..tasks {
        let n = per + u64::from((i as u64) < extra);
        handles.push(tokio::spawn(task(ledger.clone(), n, signed)));
    }
    let mut waits = Vec::new();
    for h in handles {
        waits.extend(h.await??);
    }
    let secs = t0.elapsed().as_secs_f64();
    waits.sort_unstable();
    let mut batches = Vec::new();
    let mut bad = None;
    if signed {
        ledger.records(|r| match r {
            Ok(r) => {
                if let Ok(Row::Signature(s)) = r.row() {
                    batches.push(s.signed_rows);
                }
            }
            Err((seq, e)) => bad = Some(format!("row {seq}: {e}")),
        })?;
        batches.sort_unstable();
    }
    if let Some(b) = bad {
        bail!("the ledger did not read back: {b}");
    }
    drop(ledger);
    dir.close().context("cannot remove the temporary ledger")?;
    Ok(Run {
        mode,
        tasks,
        rows: calls * 3,
        secs,
        waits,
        batches,
    })
}

/// Median time of a 4 KiB write + fdatasync in `tmp`: the floor under one durable commit
/// (the ledger commits with one sync).
fn fsync_probe(tmp: &Path) -> anyhow::Result<Duration> {
    use std::io::Write as _;
    let dir = tempfile::Builder::new().prefix("fsync-").tempdir_in(tmp)?;
    let mut f = std::fs::File::create(dir.path().join("probe"))?;
    let block = [0u8; 4096];
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        times.push(t.elapsed());
    }
    times.sort_unstable();
    Ok(times[times.len() / 2])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let modes: Vec<&'static str> = match cli.mode.as_str() {
        "plain" => vec!["plain"],
        "signed" => vec!["signed"],
        "both" => vec!["plain", "signed"],
        other => bail!("--mode {other}: plain, signed or both"),
    };
    if cli.tasks.contains(&0) {
        bail!("--tasks values must be at least 1");
    }
    let tmp = cli.tmp.clone().unwrap_or_else(std::env::temp_dir);
    let probe = fsync_probe(&tmp)?;
    println!(
        "fsync probe ({}): 4 KiB write + fdatasync median {:.2} ms; a durable ledger commit syncs once",
        tmp.display(),
        probe.as_secs_f64() * 1e3
    );
    println!();
    println!(
        "| mode | tasks | rows | seconds | rows/s | durable wait p50 / p99 (ms) | commits | rows per commit mean / p50 / p90 / max |"
    );
    println!("|---|---:|---:|---:|---:|---|---:|---|");
    for tasks in &cli.tasks {
        for &mode in &modes {
            let rows = cli.rows.min(3 * cli.max_calls_per_task * *tasks as u64);
            let r = run(&tmp, mode, *tasks, rows).await?;
            let batches = if r.batches.is_empty() {
                (
                    "n/a".to_string(),
                    "not observable (no signed rows)".to_string(),
                )
            } else {
                let n = r.batches.len() as u64;
                let total: u64 = r.batches.iter().sum();
                (
                    n.to_string(),
                    format!(
                        "{:.1} / {} / {} / {}",
                        total as f64 / n as f64,
                        percentile(&r.batches, 0.5),
                        percentile(&r.batches, 0.9),
                        r.batches.last().copied().unwrap_or(0)
                    ),
                )
            };
            println!(
                "| {} | {} | {} | {:.2} | {:.0} | {:.2} / {:.2} | {} | {} |",
                r.mode,
                r.tasks,
                r.rows,
                r.secs,
                r.rows as f64 / r.secs,
                percentile(&r.waits, 0.5) as f64 / 1e3,
                percentile(&r.waits, 0.99) as f64 / 1e3,
                batches.0,
                batches.1
            );
        }
    }
    Ok(())
}
