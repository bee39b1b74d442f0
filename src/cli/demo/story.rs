//! The ledger's story, told once the gate has stopped: every call of this run with its verdict,
//! the rows of the refund from proposal to outcome, and a verification of the whole chain. It
//! only reads the ledger.

use std::time::{Duration, Instant};

use airlock::config::{Config, load_config};
use airlock::ledger::row::Decided;
use airlock::ledger::{LedgerError, LedgerReader, Record, Row, RowError, VerifyOptions};
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
    reader.records(|r| rows.extend(r.ok().map(|r| (r.row(), r))))?;
    // this run: from the last start of the gate
    let start = rows
        .iter()
        .rposition(|(row, _)| matches!(row, Ok(Row::GateStarted(_))))
        .unwrap_or(0);
    let run = &rows[start..];
    println!(
        "The ledger ({}): each call of this run and its verdict",
        config.ledger
    );
    for (row, r) in run {
        let Ok(Row::Verdict(v)) = row else { continue };
        let tool = run
            .iter()
            .find_map(|(p, pr)| match p {
                Ok(Row::Proposal(p)) if pr.call_id == r.call_id => Some(p.tool.as_str()),
                _ => None,
            })
            .unwrap_or("?");
        println!(
            "  #{:<4} {tool:<20} {:<15} {}",
            r.seq,
            verdict_words(&v.verdict),
            v.explanation
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

fn verdict_words(v: &Decided) -> &'static str {
    match v {
        Decided::Allow => "allowed",
        Decided::Deny => "denied",
        Decided::Quarantine => "held (unknown)",
        Decided::Approve { .. } => "needs approval",
    }
}

/// Every row of the last refund, from proposal to outcome.
fn refund_rows(run: &[(Result<Row, RowError>, Record)]) {
    let Some(call) = run.iter().rev().find_map(|(row, r)| match row {
        Ok(Row::Proposal(p)) if p.tool == "refund_order" => Some(r.call_id.clone()),
        _ => None,
    }) else {
        return;
    };
    println!(
        "\nThe refund's rows, in order (all of them: airlock ledger export --tool refund_order):"
    );
    for (row, r) in run.iter().filter(|(_, r)| r.call_id == call) {
        let detail = row.as_ref().map(detail).unwrap_or_default();
        println!("  #{:<4} {:<17} {}", r.seq, r.kind, detail);
    }
}

/// One line about a row of the refund.
fn detail(row: &Row) -> String {
    // an absent value reads `null`, as the JSON it was
    let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "null".to_string());
    let short = |v: &Option<String>| s(v).chars().take(12).collect::<String>();
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    match row {
        Row::Proposal(p) => format!(
            "{} {} by {}",
            p.tool,
            airlock::redact::for_people(&p.arguments),
            p.actor
        ),
        Row::Verdict(v) => format!("{} — {}", verdict_words(&v.verdict), v.explanation),
        Row::Envelope(e) => format!(
            "what the approver sees, hash {}…, for role {}",
            short(&Some(e.envelope_hash.clone())),
            text(&e.envelope["role"])
        ),
        Row::MailSent(m) => format!("to {} via {}", m.to, s(&m.via)),
        Row::Decision(d) => format!("{} by {} ({})", d.choice.as_str(), d.approver, d.comment),
        Row::ExecutionIntent(i) => format!("idempotency key {}", i.idempotency_key),
        Row::Outcome(o) => format!(
            "{}, result hash {}…",
            o.status.as_str(),
            short(&o.result_sha256)
        ),
        Row::ApprovalClosed(c) => c.outcome["outcome"]
            .as_str()
            .map_or_else(|| c.outcome.to_string(), str::to_string),
        Row::SealedDestroyed(d) => format!("the sealed redacted values are destroyed ({})", d.why),
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
