//! `ledger_floor`: what one allowed call's durable record costs at one call in flight, layer by
//! layer, in one sitting on one disk — the experiment behind the c=1 and CPU targets of
//! `BENCHMARKS.md` ("The engine").
//!
//! Each layer is measured `--calls` times in a fresh temporary directory under `--tmp`:
//! - `fdatasync`: a 4 KiB block appended and synced (the "one fsync" of the targets);
//! - `redb, the rows alone`: one durable redb transaction (one sync, no two-phase commit, as the
//!   ledger commits) inserting a call's rows, as bytes of the ledger's size, into one table;
//! - `redb, a call's tables`: the same, plus what the ledger's commit of an allowed call also
//!   writes at one call in flight — the `forwarded` mark (this call's set, the last call's
//!   removed) and the head and its signature in `meta` — with the bytes precomputed;
//! - `redb, a call's tables, on a writer thread`: the same commit made by a thread of its own,
//!   the caller handing it over through a channel and waiting for the answer on a tokio oneshot,
//!   as the ledger's callers do (the cost of the hand-over, with no chain, JSON or signature);
//! - `Ed25519 head signature`: one signature over a head, as each commit signs one;
//! - `Airlock's ledger`: the library's `Ledger` (chain, hashes, head signature) in the gate's
//!   pattern: the proposal, verdict and mark submitted and awaited, the outcome queued without
//!   waiting (it rides the next commit) — once on a tokio runtime of one worker (every commit
//!   the writer thread's) and once on two workers, as `airlock serve` runs on two cores (the
//!   awaiting task commits when nobody else is committing).
//!
//! Wall time per call (p50, p99) and this process's CPU per call (every thread's, from
//! `/proc/self/task/*/schedstat`). It opens only ledgers it creates, and removes them.
//!
//! `cargo run --release --example ledger_floor -- --calls 2000 --tmp /var/tmp`

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use redb::{Database, Durability, TableDefinition};
use serde_json::json;

#[path = "common/rows.rs"]
mod rows;

use airlock::ledger::{Change, Ledger, NewRow};
use airlock::signing::Signer;

const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const FORWARDED: TableDefinition<&str, &[u8]> = TableDefinition::new("forwarded");

const GATE: &str = "Airlock's ledger (the gate's pattern, two workers)";
const WRITER_THREAD: &str = "Airlock's ledger, one worker (writer thread only)";

#[derive(Debug, Parser)]
#[command(about = "What one call's durable record costs, layer by layer")]
struct Cli {
    /// Calls per layer.
    #[arg(long, default_value_t = 2_000)]
    calls: usize,
    /// Where the temporary directories go (default: the system's): the disk being measured.
    #[arg(long)]
    tmp: Option<PathBuf>,
    /// Only Airlock's ledger (to profile it alone).
    #[arg(long)]
    only_airlock: bool,
}

/// This process's CPU time so far, every thread's, in nanoseconds.
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// One layer's result: per-call wall times (µs, sorted) and CPU per call (µs).
struct Layer {
    name: &'static str,
    walls: Vec<u64>,
    cpu_us: f64,
}

impl Layer {
    fn p(&self, q: f64) -> u64 {
        let i = ((self.walls.len() - 1) as f64 * q).round() as usize;
        self.walls[i]
    }
}

/// Run `op` `calls` times (after 100 unmeasured), timing each, and the process's CPU overall.
fn measure(
    name: &'static str,
    calls: usize,
    mut op: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Layer> {
    for i in 0..100 {
        op(i)?;
    }
    let mut walls = Vec::with_capacity(calls);
    let cpu = cpu_ns();
    for i in 100..100 + calls {
        let t = Instant::now();
        op(i)?;
        walls.push(t.elapsed().as_micros() as u64);
    }
    let cpu_us = (cpu_ns() - cpu) as f64 / 1e3 / calls as f64;
    walls.sort_unstable();
    Ok(Layer {
        name,
        walls,
        cpu_us,
    })
}

/// The rows of one allowed call, as the gate writes them (an echo on the demo shop).
fn call_rows(call_id: &str) -> (Vec<NewRow>, NewRow) {
    rows::call_rows(
        call_id,
        "echo",
        json!({"text": "hi"}),
        ("agent:bench", "bench.1"),
        false,
        call_id.as_bytes(),
    )
}

/// A stored row's size: its body, the entry's fields around it, and the two hashes.
fn stored_len(r: &NewRow) -> usize {
    r.row.body().to_string().len() + r.call_id.len() + 64 + 64
}

fn fdatasync(dir: &Path, calls: usize) -> anyhow::Result<Layer> {
    let mut f = std::fs::File::create(dir.join("probe"))?;
    let block = [7u8; 4096];
    measure("fdatasync (4 KiB appended)", calls, |_| {
        f.write_all(&block)?;
        Ok(f.sync_data()?)
    })
}

fn redb_file(dir: &Path, name: &str) -> anyhow::Result<Database> {
    Ok(Database::builder()
        .set_cache_size(airlock::ledger::CACHE_DEFAULT)
        .create(dir.join(name))?)
}

/// One durable redb commit a call; `tables`: also the mark and the signed head.
fn redb_commits(
    dir: &Path,
    calls: usize,
    tables: bool,
    name: &'static str,
) -> anyhow::Result<Layer> {
    let db = redb_file(dir, if tables { "tables.redb" } else { "rows.redb" })?;
    let (rows, outcome) = call_rows("00000000-0000-4000-8000-000000000000");
    let sizes: Vec<usize> = rows.iter().chain([&outcome]).map(stored_len).collect();
    let bodies: Vec<Vec<u8>> = sizes.iter().map(|n| vec![b'x'; *n]).collect();
    let head = vec![b'h'; 70];
    let sig = vec![b's'; 128];
    let route = br#"{"server":"shop","tool":"echo"}"#;
    let mut seq = 0u64;
    measure(name, calls, |i| {
        let mut tx = db.begin_write()?;
        tx.set_two_phase_commit(false);
        tx.set_durability(Durability::Immediate)?;
        {
            let mut t = tx.open_table(ROWS)?;
            // the last call's outcome rides this commit (c=1), then this call's two rows
            for b in bodies.iter().rev() {
                seq += 1;
                t.insert(seq, b.as_slice())?;
            }
        }
        if tables {
            let mut f = tx.open_table(FORWARDED)?;
            f.insert(format!("call-{i}").as_str(), route.as_slice())?;
            f.remove(format!("call-{}", i.wrapping_sub(1)).as_str())?;
            let mut m = tx.open_table(META)?;
            m.insert("head", head.as_slice())?;
            m.insert("head_sig", sig.as_slice())?;
        }
        Ok(tx.commit()?)
    })
}

/// [`redb_commits`]' commit with the tables, made by a thread of its own for each caller's
/// request (a std channel there, a tokio oneshot back, awaited on `rt`).
fn redb_on_a_thread(
    dir: &Path,
    calls: usize,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Layer> {
    type Reply = tokio::sync::oneshot::Sender<anyhow::Result<()>>;
    let db = redb_file(dir, "thread.redb")?;
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Reply)>();
    let writer = std::thread::spawn(move || {
        let mut seq = 0u64;
        let body = vec![b'x'; 700];
        while let Ok((i, reply)) = rx.recv() {
            let mut commit = || -> anyhow::Result<()> {
                let mut w = db.begin_write()?;
                w.set_two_phase_commit(false);
                w.set_durability(Durability::Immediate)?;
                {
                    let mut t = w.open_table(ROWS)?;
                    for _ in 0..3 {
                        seq += 1;
                        t.insert(seq, body.as_slice())?;
                    }
                    let mut f = w.open_table(FORWARDED)?;
                    f.insert(format!("call-{i}").as_str(), b"{}".as_slice())?;
                    f.remove(format!("call-{}", i.wrapping_sub(1)).as_str())?;
                    let mut m = w.open_table(META)?;
                    m.insert("head", [b'h'; 70].as_slice())?;
                    m.insert("head_sig", [b's'; 128].as_slice())?;
                }
                Ok(w.commit()?)
            };
            let _ = reply.send(commit());
        }
    });
    let layer = measure("redb, a call's tables, on a writer thread", calls, |i| {
        let (reply, answer) = tokio::sync::oneshot::channel();
        tx.send((i, reply))?;
        rt.block_on(answer)?
    })?;
    drop(tx);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    Ok(layer)
}

fn signatures(calls: usize) -> anyhow::Result<Layer> {
    let signer = Signer::from_seed([9; 32]);
    let head = [3u8; 32];
    measure("Ed25519 head signature", calls, |i| {
        std::hint::black_box(signer.sign_head(i as u64, &head));
        Ok(())
    })
}

/// Airlock's ledger in the gate's pattern, on `rt`: on a runtime with two workers (as `airlock
/// serve` has on two cores) the awaiting task commits, on one every commit is the writer thread's.
fn airlock_ledger(
    dir: &Path,
    calls: usize,
    rt: &tokio::runtime::Runtime,
    name: &'static str,
) -> anyhow::Result<Layer> {
    let file = if name == GATE {
        "gate.redb"
    } else {
        "writer.redb"
    };
    let ledger = Ledger::open_signed(&dir.join(file), Some(Signer::from_seed([9; 32])))?;
    let layer = measure(name, calls, |_| {
        let call_id = uuid::Uuid::new_v4().to_string();
        let (rows, outcome) = call_rows(&call_id);
        let mark = (call_id.clone(), json!({"server": "shop", "tool": "echo"}));
        rt.block_on(async {
            // submitted inside the runtime, as the gate does: it decides who commits
            let pending = ledger.submit(Change {
                rows,
                forwarded: vec![mark],
                ..Change::default()
            })?;
            pending.await?;
            // the outcome, not awaited: it rides the next call's commit
            drop(ledger.submit_lazy(Change {
                rows: vec![outcome],
                settled: vec![call_id],
                ..Change::default()
            })?);
            anyhow::Ok(())
        })
    })?;
    rt.block_on(ledger.flush())?;
    Ok(layer)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.calls > 0, "--calls must be at least 1");
    let tmp = cli.tmp.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("ledger-floor-")
        .tempdir_in(&tmp)
        .with_context(|| format!("a temporary directory in {}", tmp.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let n = cli.calls;
    let layers = if cli.only_airlock {
        vec![airlock_ledger(dir.path(), n, &workers, GATE)?]
    } else {
        vec![
            fdatasync(dir.path(), n)?,
            redb_commits(dir.path(), n, false, "redb, the rows alone")?,
            redb_commits(dir.path(), n, true, "redb, a call's tables")?,
            redb_on_a_thread(dir.path(), n, &rt)?,
            signatures(n)?,
            airlock_ledger(dir.path(), n, &rt, WRITER_THREAD)?,
            airlock_ledger(dir.path(), n, &workers, GATE)?,
        ]
    };
    println!(
        "ledger_floor: {n} calls a layer, one in flight, on {}",
        tmp.display()
    );
    println!();
    println!("| layer | wall p50 µs | wall p99 µs | CPU µs/call |");
    println!("|---|---:|---:|---:|");
    for l in &layers {
        println!(
            "| {} | {} | {} | {:.0} |",
            l.name,
            l.p(0.5),
            l.p(0.99),
            l.cpu_us
        );
    }
    Ok(())
}
