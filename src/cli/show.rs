//! `ledger show ID`: the full record of one call, as a reviewer needs it later — the envelope as
//! the approver saw it, every event with its time and actor, decisions and modify diffs, and
//! what finally ran.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use serde_json::{Value, json};

use super::report;
use airlock::config::load_config;
use airlock::ledger::{LedgerReader, Record, Row};

/// The call id an id names: a call id itself, or an approval id (held ids are call ids).
fn call_of(rows: &[Record], id: &str) -> Option<String> {
    if rows.iter().any(|r| r.call_id == id) {
        return Some(id.to_string());
    }
    rows.iter()
        .find(|r| r.body.get("approval_id").and_then(Value::as_str) == Some(id))
        .map(|r| r.call_id.clone())
}

/// Text an agent or a person wrote, with control characters (terminal escapes an agent could
/// plant) made visible.
fn p(v: &str) -> String {
    super::printable(v)
}

/// An optional text, empty when absent.
fn o(v: &Option<String>) -> String {
    p(v.as_deref().unwrap_or(""))
}

/// A string field of a JSON document, made printable.
fn s(v: &Value, k: &str) -> String {
    p(v.get(k).and_then(Value::as_str).unwrap_or(""))
}

/// One line about a row: who did what.
fn summary(r: &Record) -> String {
    let Ok(row) = r.row() else {
        return canonical_short(&r.body);
    };
    match row {
        Row::Proposal(x) => format!(
            "{} called `{}` on `{}`",
            p(&x.actor),
            p(&x.tool),
            o(&x.server)
        ),
        Row::Verdict(v) => format!("{}: {}", v.verdict.name(), p(&v.explanation)),
        Row::Envelope(e) => format!(
            "envelope (stage {}) sent to role `{}`: {}",
            e.stage,
            s(&e.envelope, "role"),
            serde_json::Value::from(e.approvers)
        ),
        Row::MailSent(m) => format!("{} to {} {}", r.kind, p(&m.to), o(&m.via)),
        Row::MailFailed(m) => format!("{} to {} ", r.kind, p(&m.to)),
        Row::Decision(d) => {
            let comment = p(&d.comment);
            format!(
                "{} by {}{}",
                d.choice.as_str(),
                p(&d.approver),
                if comment.is_empty() {
                    String::new()
                } else {
                    format!(": {comment:?}")
                }
            )
        }
        Row::ExecutionIntent(i) => {
            format!("about to run (arguments sha256 {})", p(&i.arguments_sha256))
        }
        Row::Outcome(x) => format!(
            "outcome {} (result sha256 {}{})",
            x.status.as_str(),
            o(&x.result_sha256),
            match x.error.as_deref().map(p) {
                Some(e) if !e.is_empty() => format!(", error {e}"),
                _ => String::new(),
            }
        ),
        Row::Held(_) => "held for review".to_string(),
        Row::HeldReleased(h) => format!("released by {}", p(&h.by.by)),
        Row::HeldRejected(h) => format!("rejected by {}: {}", p(&h.by.by), p(&h.reason)),
        Row::Timeout(t) => format!("timed out; then {}", on_timeout(t.on_timeout)),
        _ => canonical_short(&r.body),
    }
}

/// The word an `on_timeout` is stored as.
fn on_timeout(t: airlock::policy::OnTimeout) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn canonical_short(b: &Value) -> String {
    let t = airlock::canonical::to_string(b);
    match t.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &t[..cut]),
        None => t,
    }
}

pub(super) fn show(config: &Path, id: &str, as_json: bool) -> anyhow::Result<ExitCode> {
    let c = load_config(config).map_err(report)?;
    let reader = LedgerReader::open_at(&c.ledger)?;
    let mut rows = Vec::new();
    reader.records(|r| {
        if let Ok(r) = r {
            rows.push(r);
        }
    })?;
    let Some(call) = call_of(&rows, id) else {
        bail!("no call, approval or held call `{id}` in {}", c.ledger);
    };
    let mine: Vec<&Record> = rows.iter().filter(|r| r.call_id == call).collect();
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"call_id": call, "rows": mine}))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("call {call}");
    let typed: Vec<(&Record, Option<Row>)> = mine.iter().map(|r| (*r, r.row().ok())).collect();
    if let Some(x) = typed.iter().find_map(|(_, row)| match row {
        Some(Row::Proposal(x)) => Some(x),
        _ => None,
    }) {
        println!("arguments as proposed (sha256 {}):", p(&x.arguments_sha256));
        println!("{}", serde_json::to_string_pretty(&x.arguments)?);
    }
    println!("\nevents:");
    for (r, row) in &typed {
        println!("  #{:<6} {}  {:<17} {}", r.seq, r.time, r.kind, summary(r));
        if let Some(Row::Decision(d)) = row {
            if let Some(diff) = &d.diff {
                println!(
                    "          modify diff: {}",
                    airlock::canonical::to_string(&Value::from(diff.clone()))
                );
            }
        }
    }
    for (_, row) in &typed {
        let Some(Row::Envelope(e)) = row else {
            continue;
        };
        println!(
            "\nenvelope as the approver saw it (stage {}, hash {}):",
            e.stage,
            p(&e.envelope_hash)
        );
        println!("{}", serde_json::to_string_pretty(&e.envelope)?);
    }
    Ok(ExitCode::SUCCESS)
}
