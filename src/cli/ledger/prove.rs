//! `ledger prove CALL POINTER`: show that a value is the one a redacted field of a call held —
//! its salted commitment, covered by the hash chain, recomputed and compared — without the ledger
//! ever holding the value. The salt comes from the seal key (the operator), or is given
//! (`--salt`, handed to an auditor with `--print-salt`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::Value;

use super::super::report;
use airlock::config::load_config;
use airlock::ledger::LedgerReader;
use airlock::redact::{MARKER, commitment, digest_of};

/// What to prove.
pub(in crate::cli) struct Prove<'a> {
    pub call: &'a str,
    pub pointer: &'a str,
    /// The value as JSON (a string is `"..."`).
    pub value: Option<&'a str>,
    /// The salt in hex, from whoever holds the seal key.
    pub salt: Option<&'a str>,
    pub print_salt: bool,
}

pub(in crate::cli) fn prove(config: &Path, p: &Prove<'_>) -> anyhow::Result<ExitCode> {
    let c = load_config(config).map_err(report)?;
    let salt = match p.salt {
        Some(hex_salt) => {
            let mut s = [0u8; 32];
            hex::decode_to_slice(hex_salt.trim(), &mut s)
                .context("--salt must be 64 hex characters")?;
            s
        }
        None => {
            if !c.seal_key_path.exists() {
                bail!(
                    "no seal key at {}: give the salt with --salt",
                    c.seal_key_path.display()
                );
            }
            airlock::seal::redaction_keys(&c.seal_key_path)?.salt(p.call, p.pointer)
        }
    };
    if p.print_salt {
        println!("{}", hex::encode(salt));
        return Ok(ExitCode::SUCCESS);
    }
    let Some(given) = p.value else {
        bail!(
            "give the value (as JSON, e.g. '\"4111111111111111\"', or `-` to read it from stdin), or --print-salt"
        );
    };
    // `-`: from stdin, so the secret is in no process list or shell history
    let text = match given {
        "-" => {
            std::io::read_to_string(std::io::stdin()).context("cannot read the value from stdin")?
        }
        v => v.to_string(),
    };
    let value: Value = serde_json::from_str(text.trim())
        .context("the value is not JSON (a string needs its quotes)")?;
    // every marker the call's rows hold at the pointer: the proposal's, each envelope's
    let mut found = Vec::new();
    LedgerReader::open_at(&c.ledger)?.records(|r| {
        let Ok(r) = r else { return };
        if r.call_id != p.call {
            return;
        }
        for args in [
            r.body.get("arguments"),
            r.body.pointer("/envelope/arguments"),
        ] {
            let marker = args.and_then(|a| a.pointer(p.pointer));
            if let Some(m) = marker.filter(|m| digest_of(m).is_some()) {
                let c = m[MARKER]["commitment"].as_str().unwrap_or("").to_string();
                found.push((r.seq, r.kind.clone(), c));
            }
        }
    })?;
    if found.is_empty() {
        bail!(
            "call `{}` has no redacted field at `{}` in {}",
            p.call,
            p.pointer,
            c.ledger
        );
    }
    let mine = hex::encode(commitment(&salt, &value));
    let matching: Vec<_> = found.iter().filter(|(_, _, c)| *c == mine).collect();
    for (seq, kind, _) in &matching {
        println!(
            "matches: row {seq} ({kind}) commits to this value at {}",
            p.pointer
        );
    }
    if matching.is_empty() {
        println!(
            "does not match: none of the {} commitment(s) at {} is to this value (with this salt)",
            found.len(),
            p.pointer
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
