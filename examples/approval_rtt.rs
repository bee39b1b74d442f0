//! `approval_rtt`: the approval round trip, from the approver's decision POST to the agent's
//! `tools/call` result.
//!
//! Starts `airlock serve` (a fresh temporary directory: config, ledger, outbox; the demo shop as
//! tool server; `refund_order` needs one approver of role `finance`) and connects to it over stdio
//! as an MCP client (rmcp), as an agent would. Each repetition: the agent calls `refund_order`,
//! which is suspended; the approval mail lands in the outbox; the approver GETs the page (for the
//! form nonce), then POSTs Approve. Measured from just before the POST is sent to the moment the
//! agent's call returns its result, over K repetitions, one at a time. The tool's own time is the
//! `duration_us` of each approved call's `outcome` row, read from the ledger afterwards.
//!
//! It must never touch a ledger, key or outbox outside its own temporary directory, and never
//! point the gate at a real tool server: only the demo shop, which moves no money.
//!
//! `cargo run --release --example approval_rtt -- --reps 50`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::json;

use airlock::ledger::{LedgerError, LedgerReader, Row};

#[path = "common/approver.rs"]
mod approver;

#[derive(Debug, Parser)]
#[command(about = "Approval round trip: decision POST → the agent's tools/call result")]
struct Cli {
    /// Measured repetitions.
    #[arg(long, default_value_t = 50)]
    reps: usize,
    /// Unmeasured repetitions first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// The demo shop's refund delay (the tool's own time), ms.
    #[arg(long, default_value_t = 0)]
    tool_ms: u64,
    /// The airlock binary (default: target/<profile>/airlock, beside examples/).
    #[arg(long)]
    airlock: Option<PathBuf>,
    /// The demo shop binary (default: beside this program).
    #[arg(long)]
    demo_shop: Option<PathBuf>,
    /// Where the temporary directory goes (default: the system's).
    #[arg(long)]
    tmp: Option<PathBuf>,
}

/// One measured repetition, microseconds from just before the POST.
struct Rep {
    post_answered: u64,
    result_arrived: u64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The approver: GET the page for its form, then POST Approve. Returns (POST sent, POST answered).
fn approve(http: &ureq::Agent, link: &str) -> anyhow::Result<(Instant, Instant)> {
    let page = http.get(link).call()?.body_mut().read_to_string()?;
    let form = approver::approve_form(&page, "approval_rtt");
    let sent = Instant::now();
    let status = http
        .post(link)
        .send_form(form.iter().map(|(k, v)| (*k, v.as_str())))?
        .status();
    let answered = Instant::now();
    if !status.is_success() {
        bail!("the approval POST answered {status}");
    }
    Ok((sent, answered))
}

fn write_config(dir: &Path, demo_shop: &Path, tool_ms: u64) -> anyhow::Result<PathBuf> {
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests");
    std::fs::create_dir_all(dir.join("p"))?;
    std::fs::write(
        dir.join("p/policy.toml"),
        "version = \"approval-rtt\"\n[classes]\nread_only = { path = \"allow\" }\n\
         internal_reversible = { path = \"allow\", require_reversal = true, role = \"ops\" }\n\
         customer_facing = { path = \"conditional\", require_evidence = true, role = \"ops\" }\n\
         destructive = { path = \"deny\", signed = true }\n\
         financial = { path = \"approve\", role = \"finance\", timeout = \"30m\", on_timeout = \"deny\", signed = true }\n\
         [roles]\nops = { emails = [\"ops@example.com\"] }\nfinance = { emails = [\"ann@example.com\"] }\n",
    )?;
    let config = dir.join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "[gate]\nmanifests = {m:?}\npolicies = \"p\"\nledger = \"ledger.redb\"\nactor = \"agent:rtt\"\nmax_wait = \"5m\"\n\n\
             [web]\nbind = \"127.0.0.1:0\"\n\n[mail]\noutbox = \"outbox\"\n\n\
             [[server]]\nname = \"shop\"\ncommand = {cmd:?}\nargs = [\"--refund-delay-ms\", \"{tool_ms}\"]\nprefix = \"\"\n",
            m = manifests.display().to_string(),
            cmd = demo_shop.display().to_string(),
        ),
    )?;
    Ok(config)
}

/// `duration_us` of every approved call's outcome, in ledger order (once serve has let go).
async fn tool_times(ledger: &Path) -> anyhow::Result<Vec<u64>> {
    let mut reader = None;
    for _ in 0..300 {
        match LedgerReader::open(ledger) {
            Ok(r) => {
                reader = Some(r);
                break;
            }
            Err(LedgerError::InUse(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => return Err(e.into()),
        }
    }
    let reader =
        reader.context("airlock serve kept the ledger open for 30 s after the agent left")?;
    let mut out = Vec::new();
    reader.records(|r| {
        if let Ok(r) = r {
            if let Ok(Row::Outcome(o)) = r.row() {
                if o.context.approval_id.is_some() {
                    out.push(o.duration_us.unwrap_or(0));
                }
            }
        }
    })?;
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let exe = std::env::current_exe()?;
    let examples = exe.parent().context("no directory for this program")?;
    let airlock = match &cli.airlock {
        Some(p) => p.clone(),
        None => examples
            .parent()
            .context("no target directory")?
            .join("airlock"),
    };
    let demo_shop = cli
        .demo_shop
        .clone()
        .unwrap_or_else(|| examples.join("demo_shop"));
    for p in [&airlock, &demo_shop] {
        if !p.exists() {
            bail!(
                "{} is missing: cargo build --release --bin airlock --example demo_shop",
                p.display()
            );
        }
    }
    let tmp = cli.tmp.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("approval_rtt-")
        .tempdir_in(&tmp)?;
    let config = write_config(dir.path(), &demo_shop, cli.tool_ms)?;
    let outbox = dir.path().join("outbox");

    let mut cmd = tokio::process::Command::new(&airlock);
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .env("AIRLOCK_LOG", "warn");
    // serve's log (and the demo shop's) go to a file beside the ledger, not into the report
    let log = dir.path().join("serve.log");
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let agent = std::sync::Arc::new(().serve(transport).await.with_context(|| {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        format!("MCP handshake with airlock serve; its log:\n{tail}")
    })?);
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut reps = Vec::with_capacity(cli.reps);
    for i in 0..cli.warmup + cli.reps {
        let before = approver::outbox_files(&outbox);
        let waiting = {
            let agent = agent.clone();
            tokio::spawn(async move {
                let mut p = CallToolRequestParams::new("refund_order".to_string());
                p.arguments = json!({"order_id": "A-1001", "amount_cents": 100 + i, "reason": "approval_rtt"})
                    .as_object()
                    .cloned();
                let r = agent.call_tool(p).await;
                (Instant::now(), r)
            })
        };
        let mut link = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while link.is_none() && Instant::now() < deadline {
            link = approver::outbox_files(&outbox)
                .difference(&before)
                .find_map(|p| approver::link_in(p));
            if link.is_none() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let link = link.context("no approval mail appeared in the outbox within 30 s")?;
        let h = http.clone();
        let (sent, answered) = tokio::task::spawn_blocking(move || approve(&h, &link)).await??;
        let (arrived, result) = waiting.await?;
        let result = result.context("the agent's refund_order call failed")?;
        if result.is_error == Some(true) {
            bail!("the approved refund returned an error: {result:?}");
        }
        if i >= cli.warmup {
            reps.push(Rep {
                post_answered: (answered - sent).as_micros() as u64,
                result_arrived: arrived.saturating_duration_since(sent).as_micros() as u64,
            });
        }
    }
    if let Ok(a) = std::sync::Arc::try_unwrap(agent) {
        let _ = a.cancel().await;
    }
    let tools = tool_times(&dir.path().join("ledger.redb")).await?;
    let tools: Vec<u64> = tools.into_iter().skip(cli.warmup).collect();
    let mut post: Vec<u64> = reps.iter().map(|r| r.post_answered).collect();
    let mut rtt: Vec<u64> = reps.iter().map(|r| r.result_arrived).collect();
    let mut net: Vec<u64> = reps
        .iter()
        .zip(&tools)
        .map(|(r, t)| r.result_arrived.saturating_sub(*t))
        .collect();
    let mut tool = tools.clone();
    for v in [&mut post, &mut rtt, &mut net, &mut tool] {
        v.sort_unstable();
    }
    let ms = |v: &[u64], p: f64| percentile(v, p) as f64 / 1e3;
    println!(
        "approval round trip, {} repetitions (after {} warm-up), tool delay {} ms\n",
        reps.len(),
        cli.warmup,
        cli.tool_ms
    );
    println!("| measure | p50 (ms) | p90 (ms) | max (ms) |");
    println!("|---|---:|---:|---:|");
    for (name, v) in [
        ("POST sent → POST answered (decision durable)", &post),
        ("POST sent → agent has the result", &rtt),
        ("tool's own time (outcome duration_us)", &tool),
        ("round trip minus the tool's time", &net),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} |",
            ms(v, 0.5),
            ms(v, 0.9),
            ms(v, 1.0)
        );
    }
    Ok(())
}
