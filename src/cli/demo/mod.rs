//! `airlock demo`: the whole walk-through from the binary alone. It writes a demo setup into a
//! directory it names ([`files`]), starts `airlock serve` on it as a child over stdio (this same
//! executable; the demo shop is built in), is the agent ([`walk`]), plays or waits for the person
//! ([`person`]), and tells the ledger's story at the end ([`story`]).
//!
//! It must never write outside its directory, never act for the person unless told
//! (`--approve`, `--deny`), and never hold gate logic: every verdict comes from the gate it started.

mod files;
mod person;
mod progress;
mod story;
mod walk;

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Instant;

use airlock::mcp::client::StdioClient;
use anyhow::Context;

use super::runtime;
use files::DemoDir;
use person::Person;

/// `airlock demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Where the demo writes its files (config, manifests, policy, ledger, outbox, keys). An
    /// existing directory is reused only if an earlier `airlock demo` made it.
    #[arg(long, default_value = "airlock-demo")]
    dir: PathBuf,
    /// Act as the person: release the held call and approve the refund over HTTP, as a click
    /// on the pages would.
    #[arg(long, conflicts_with = "deny")]
    approve: bool,
    /// Act as the person, saying no: reject the held call and deny the refund.
    #[arg(long)]
    deny: bool,
    /// Address of the approval and review pages (default: a free port on 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: String,
}

pub(crate) fn demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let person = match (args.approve, args.deny) {
        (true, _) => Person::Approves,
        (_, true) => Person::Denies,
        _ => Person::InTheBrowser,
    };
    let dir = files::prepare(&args.dir, &args.bind)?;
    println!("Airlock demo: this command is the agent; `airlock serve` gates the demo shop.\n");
    println!("{}", dir.describe());
    let started = runtime()?.block_on(async {
        let agent = start_gate(&dir).await?;
        let outcomes = walk::Walk::new(&agent, &dir, person).run().await;
        // The gate exits when its agent leaves; then its ledger can be read.
        agent.close().await.context("closing the MCP session")?;
        outcomes
    })?;
    story::tell(&dir, &started)?;
    Ok(ExitCode::SUCCESS)
}

/// Start `airlock serve` on the demo's config (its log in the demo directory) and connect.
async fn start_gate(dir: &DemoDir) -> anyhow::Result<StdioClient> {
    let exe = std::env::current_exe().context("cannot find the airlock executable")?;
    let log = std::fs::File::create(&dir.gate_log)
        .with_context(|| format!("cannot write {}", dir.gate_log.display()))?;
    let mut serve = tokio::process::Command::new(exe);
    serve.arg("serve").arg("--config").arg(&dir.config);
    println!(
        "… starting the gate (airlock serve --config {})",
        dir.config.display()
    );
    let begun = Instant::now();
    let agent = progress::while_waiting(
        "starting the gate",
        StdioClient::start(serve, Stdio::from(log)),
    )
    .await
    .with_context(|| format!("the gate did not start (see {})", dir.gate_log.display()))?;
    let tools = agent.tools().await?;
    println!(
        "  the gate is up ({:.1} s); the agent sees {} tools: {}\n",
        begun.elapsed().as_secs_f64(),
        tools.len(),
        tools.join(", ")
    );
    Ok(agent)
}
