//! `ledger export` and `ledger verify`: read-only, for auditors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;

use super::report;
use airlock::canonical;
use airlock::ledger::LedgerReader;

fn ledger_path(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(airlock::config::load_config(path)
        .map_err(report)?
        .ledger_path)
}

pub(super) fn export(path: &Path) -> anyhow::Result<ExitCode> {
    let reader = LedgerReader::open(&ledger_path(path)?)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut bad = None;
    reader.records(|r| match r {
        Ok(rec) => {
            if bad.is_none() {
                let line = serde_json::to_value(&rec)
                    .map(|v| canonical::to_string(&v))
                    .unwrap_or_default();
                if let Err(e) = writeln!(out, "{line}") {
                    bad = Some(format!("cannot write: {e}"));
                }
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

pub(super) fn verify(path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let ledger = ledger_path(path)?;
    let report = LedgerReader::open(&ledger)?.verify()?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("ledger:  {}", ledger.display());
        println!("rows:    {}", report.rows);
        if let (Some(first), Some(last)) = (&report.first_time, &report.last_time) {
            println!("time:    {first} .. {last}");
        }
        println!("head:    {}", report.head);
        match &report.first_bad {
            None => println!("result:  OK, the hash chain verifies"),
            Some(b) => println!("result:  FAILED at seq {}: {}", b.seq, b.fault),
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
