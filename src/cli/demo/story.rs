//! The ledger's story, told once the gate has stopped: every call of this run with its verdict,
//! the rows of the refund from proposal to outcome, and a verification of the whole chain. It
//! only reads the ledger.

use std::time::{Duration, Instant};

use airlock::config::{Config, load_config};
use airlock::ledger::{LedgerError, LedgerReader, Record, VerifyOptions};
use airlock::signing::Signer;
use anyhow::anyhow;
use serde_json::Value;

use super::files::DemoDir;
use super::walk::Outcome;

/// How long the demo waits for the stopped gate to let go of its ledger.
const RELEASE: Duration = Duration::from_secs(30);

pub(super) fn tell(dir: &DemoDir, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let config = load_config(&dir.config).map_err(|d| anyhow!("{d}"))?;
    let reader = open_when_free(&config)?;
    let mut rows = Vec::new();
    reader.records(|r| rows.extend(r.ok()))?;
    // this run: from the last start of the gate
    let start = rows
        .iter()
        .rposition(|r| r.kind == "gate_started")
        .unwrap_or(0);
    let run = &rows[start..];
    println!(
        "The ledger ({}): each call of this run and its verdict",
        config.ledger
    );
    for r in run.iter().filter(|r| r.kind == "verdict") {
        let tool = run
            .iter()
            .find(|p| p.kind == "proposal" && p.call_id == r.call_id)
            .map_or("?", |p| p.body["tool"].as_str().unwrap_or("?"));
        println!(
            "  #{:<4} {tool:<20} {:<15} {}",
            r.seq,
            verdict_words(&r.body),
            r.body["explanation"].as_str().unwrap_or("")
        );
    }
    if outcomes.iter().any(|o| o.path == "approval") {
        refund_rows(run);
    }
    verify(&config, &reader)
}

/// The ledger, once the gate that held it has stopped.
fn open_when_free(config: &Config) -> anyhow::Result<LedgerReader> {
    let begun = Instant::now();
    let mut said = 0;
    loop {
        match LedgerReader::open_at(&config.ledger) {
            Err(LedgerError::InUse(_)) if begun.elapsed() < RELEASE => {
                let waited = begun.elapsed().as_secs();
                if waited >= 1 && waited / 5 >= said {
                    println!("  … waiting for the gate to stop ({waited} s)");
                    said = waited / 5 + 1;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return Ok(other?),
        }
    }
}

fn verdict_words(body: &Value) -> &'static str {
    match body["verdict"].as_str() {
        Some("allow") => "allowed",
        Some("deny") => "denied",
        Some("quarantine") => "held (unknown)",
        Some("approve") => "needs approval",
        _ => "?",
    }
}

/// Every row of the last refund, from proposal to outcome.
fn refund_rows(run: &[Record]) {
    let Some(call) = run
        .iter()
        .rev()
        .find(|r| r.kind == "proposal" && r.body["tool"] == "refund_order")
        .map(|r| r.call_id.clone())
    else {
        return;
    };
    println!(
        "\nThe refund's rows, in order (all of them: airlock ledger export --tool refund_order):"
    );
    for r in run.iter().filter(|r| r.call_id == call) {
        println!("  #{:<4} {:<17} {}", r.seq, r.kind, detail(r));
    }
}

/// One line about a row of the refund.
fn detail(r: &Record) -> String {
    let b = &r.body;
    let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let short = |v: &Value| s(v).chars().take(12).collect::<String>();
    match r.kind.as_str() {
        "proposal" => format!(
            "{} {} by {}",
            s(&b["tool"]),
            airlock::redact::for_people(&b["arguments"]),
            s(&b["actor"])
        ),
        "verdict" => format!("{} — {}", verdict_words(b), s(&b["explanation"])),
        "envelope" => format!(
            "what the approver sees, hash {}…, for role {}",
            short(&b["envelope_hash"]),
            s(&b["envelope"]["role"])
        ),
        "mail_sent" => format!("to {} via {}", s(&b["to"]), s(&b["via"])),
        "decision" => format!(
            "{} by {} ({})",
            s(&b["choice"]),
            s(&b["approver"]),
            s(&b["comment"])
        ),
        "execution_intent" => format!("idempotency key {}", s(&b["idempotency_key"])),
        "outcome" => format!(
            "{}, result hash {}…",
            s(&b["status"]),
            short(&b["result_sha256"])
        ),
        "approval_closed" => b["outcome"]["outcome"]
            .as_str()
            .map_or_else(|| b["outcome"].to_string(), str::to_string),
        _ => String::new(),
    }
}

/// Verify the chain and its signatures with the gate's own key.
fn verify(config: &Config, reader: &LedgerReader) -> anyhow::Result<()> {
    let public = Signer::load(&config.signing_key_path)?.public();
    let report = reader.verify_with(&VerifyOptions {
        public: Some(public),
        checkpoints: Vec::new(),
    })?;
    let how = format!("airlock ledger verify --config {}", config.path.display());
    match &report.first_bad {
        None if report.ok() => println!(
            "\nLedger verified ({how}): {} rows, hash chain intact, {} signature row(s) valid.",
            report.rows, report.signatures.signature_rows
        ),
        None => println!("\nLedger NOT verified ({how}): a signature is not valid."),
        Some(b) => println!("\nLedger NOT verified ({how}): row {} {}", b.seq, b.fault),
    }
    if !report.ok() {
        anyhow::bail!("the ledger does not verify");
    }
    let c = config.path.display();
    println!(
        "\nLook around: airlock map --config {c}\n             airlock explain --config {c} --tool refund_order --args '{{\"order_id\": \"A-1001\", \"amount_cents\": 100, \"reason\": \"test\"}}'\n             airlock ledger export --config {c}"
    );
    Ok(())
}
