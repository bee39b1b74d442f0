//! `ledger show ID`: the full record of one call, as a reviewer needs it later — the envelope as
//! the approver saw it, every event with its time and actor, decisions and modify diffs, and
//! what finally ran.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use serde_json::{Value, json};

use super::report;
use airlock::config::load_config;
use airlock::ledger::{LedgerReader, Record};

/// The call id an id names: a call id itself, or an approval id (held ids are call ids).
fn call_of(rows: &[Record], id: &str) -> Option<String> {
    if rows.iter().any(|r| r.call_id == id) {
        return Some(id.to_string());
    }
    rows.iter()
        .find(|r| r.body.get("approval_id").and_then(Value::as_str) == Some(id))
        .map(|r| r.call_id.clone())
}

/// A string field, with control characters (terminal escapes an agent could plant) made visible.
fn s(v: &Value, k: &str) -> String {
    super::printable(v.get(k).and_then(Value::as_str).unwrap_or(""))
}

/// One line about a row: who did what.
fn summary(r: &Record) -> String {
    let b = &r.body;
    match r.kind.as_str() {
        "proposal" => format!(
            "{} called `{}` on `{}`",
            s(b, "actor"),
            s(b, "tool"),
            s(b, "server")
        ),
        "verdict" => format!("{}: {}", s(b, "verdict"), s(b, "explanation")),
        "envelope" => format!(
            "envelope (stage {}) sent to role `{}`: {}",
            b.get("stage").cloned().unwrap_or(Value::Null),
            s(&b["envelope"], "role"),
            b.get("approvers").cloned().unwrap_or(Value::Null)
        ),
        "mail_sent" | "mail_failed" => format!("{} to {} {}", r.kind, s(b, "to"), s(b, "via")),
        "decision" => {
            let comment = s(b, "comment");
            format!(
                "{} by {}{}",
                s(b, "choice"),
                s(b, "approver"),
                if comment.is_empty() {
                    String::new()
                } else {
                    format!(": {comment:?}")
                }
            )
        }
        "execution_intent" => format!(
            "about to run (arguments sha256 {})",
            s(b, "arguments_sha256")
        ),
        "outcome" => format!(
            "outcome {} (result sha256 {}{})",
            s(b, "status"),
            s(b, "result_sha256"),
            if s(b, "error").is_empty() {
                String::new()
            } else {
                format!(", error {}", s(b, "error"))
            }
        ),
        "held" => "held for review".to_string(),
        "held_released" => format!("released by {}", s(b, "by")),
        "held_rejected" => format!("rejected by {}: {}", s(b, "by"), s(b, "reason")),
        "timeout" => format!("timed out; then {}", s(b, "on_timeout")),
        _ => canonical_short(b),
    }
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
    if let Some(p) = mine.iter().find(|r| r.kind == "proposal") {
        println!(
            "arguments as proposed (sha256 {}):",
            s(&p.body, "arguments_sha256")
        );
        println!("{}", serde_json::to_string_pretty(&p.body["arguments"])?);
    }
    println!("\nevents:");
    for r in &mine {
        println!("  #{:<6} {}  {:<17} {}", r.seq, r.time, r.kind, summary(r));
        if r.kind == "decision" {
            if let Some(diff) = r.body.get("diff").filter(|d| !d.is_null()) {
                println!(
                    "          modify diff: {}",
                    airlock::canonical::to_string(diff)
                );
            }
        }
    }
    for r in mine.iter().filter(|r| r.kind == "envelope") {
        println!(
            "\nenvelope as the approver saw it (stage {}, hash {}):",
            r.body.get("stage").cloned().unwrap_or(Value::Null),
            s(&r.body, "envelope_hash")
        );
        println!("{}", serde_json::to_string_pretty(&r.body["envelope"])?);
    }
    Ok(ExitCode::SUCCESS)
}
