//! `ledger verify` and `ledger checkpoint`: the chain held to the trusted key and to every
//! checkpoint — those in the checkpoint directory without being asked (a file there that proves
//! nothing is a warning, as `serve` skips it), and any given (which must hold).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::{CheckpointFormat, cfg};
use airlock::config::Config;
use airlock::ledger::checkpoint::{Checkpoint, Saved, SignedNote, default_origin, dir};
use airlock::ledger::{CheckpointReport, LedgerReader, VerifyOptions, VerifyReport};
use airlock::signing::{Public, Signer};

/// The trusted key: given (hex or a file), else this gate's own (if it has one).
fn public_key(c: &Config, given: Option<&str>) -> anyhow::Result<(Option<Public>, String)> {
    match given {
        Some(g) => {
            let text = if Path::new(g).is_file() {
                std::fs::read_to_string(g).with_context(|| format!("cannot read {g}"))?
            } else {
                g.to_string()
            };
            Ok((Some(Public::parse(&text)?), "given".into()))
        }
        None if c.signing_key_path.exists() => Ok((
            Some(Signer::load(&c.signing_key_path)?.public()),
            format!(
                "this gate's own key ({}); an auditor passes --public-key",
                c.signing_key_path.display()
            ),
        )),
        None => Ok((
            None,
            "none: signatures checked for shape only (pass --public-key)".into(),
        )),
    }
}

pub(super) fn verify(
    path: &Path,
    checkpoints: &[PathBuf],
    key: Option<&str>,
    no_signature_check: bool,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let c = cfg(path)?;
    let (public, whose) = public_key(&c, key)?;
    // the directory's files that prove nothing are skipped with a warning, never a failure
    let sorted = dir::sort(&c.checkpoints.dir, public.as_ref()).with_context(|| {
        format!(
            "cannot read the checkpoint directory {}",
            c.checkpoints.dir.display()
        )
    })?;
    let skipped: Vec<String> = sorted.skipped.iter().map(ToString::to_string).collect();
    let mut found: Vec<(String, Saved)> = sorted
        .checkpoints
        .into_iter()
        .map(|(p, s)| (p.display().to_string(), s))
        .collect();
    let from_dir = found.len();
    for p in checkpoints {
        let cp = dir::read_file(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        found.push((p.display().to_string(), cp));
    }
    let opts = VerifyOptions {
        public,
        checkpoints: found,
    };
    let report = LedgerReader::open_at(&c.ledger)?.verify_with(&opts)?;
    // Signatures nobody could check are not a pass.
    let unchecked = report.checkpoints.iter().any(|c| !c.signature_checked);
    let unverified = opts.public.is_none()
        && (report.signatures.signature_rows > 0 || unchecked)
        && !no_signature_check;
    let passed = report.ok() && !unverified;
    let result = result(&report, unverified);
    if as_json {
        let mut v = serde_json::to_value(&report)?;
        v["unverified"] = Value::Bool(unverified);
        v["passed"] = Value::Bool(passed);
        v["result"] = Value::String(result);
        v["checkpoint_dir"] = Value::String(c.checkpoints.dir.display().to_string());
        v["skipped_checkpoints"] = serde_json::to_value(&skipped)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(exit(passed));
    }
    println!("ledger:      {}", c.ledger);
    println!("rows:        {}", report.rows);
    if let (Some(a), Some(b)) = (report.first_seq, report.last_seq) {
        println!("sequence:    {a} .. {b}");
    }
    if let (Some(first), Some(last)) = (&report.first_time, &report.last_time) {
        println!("time:        {first} .. {last}");
    }
    println!("head:        {}", report.head);
    println!(
        "signatures:  {} signature row(s) covering {} signed row(s); key: {whose}",
        report.signatures.signature_rows, report.signatures.signed_rows
    );
    if let Some(n) = report.pruned_through {
        println!(
            "pruned:      rows 1..={n} (removed under retention; verified from their signed tombstone)"
        );
    }
    let (in_dir, given) = report.checkpoints.split_at(from_dir);
    let dir_line = summary(in_dir, &c.checkpoints.dir);
    println!("checkpoints: {dir_line}");
    for cp in in_dir.iter().filter(|cp| !holds(cp)).chain(given) {
        println!("checkpoint:  {}", line(cp));
    }
    for s in &skipped {
        println!("warning:     {s}");
    }
    println!("result:      {result}");
    Ok(exit(passed))
}

/// The result in one sentence: OK, or the first reason it is not, with what to do.
fn result(report: &VerifyReport, unverified: bool) -> String {
    let unsigned = report
        .checkpoints
        .iter()
        .find(|c| c.signature_checked && !c.signature_ok);
    match (&report.first_bad, unsigned) {
        (Some(b), _) => format!(
            "FAILED at seq {}: {}{}",
            b.seq,
            b.fault,
            b.detail
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ),
        (None, Some(cp)) => format!(
            "FAILED: checkpoint {} is not signed by this ledger's key (or was altered), so it proves nothing about this ledger (no rollback is implied). Check that --public-key is the key of the gate that wrote it (`airlock keys public` there); if it is, the file was changed: keep it as evidence, and get the checkpoint again from the witness or mailbox it came from",
            cp.name
        ),
        (None, None) if unverified => "UNVERIFIED: the ledger has signatures or checkpoints but no public key was given (pass --public-key, or --no-signature-check for the hash chain alone)".into(),
        (None, None) if report.ok() => "OK".into(),
        (None, None) => "FAILED: a checkpoint does not hold".into(),
    }
}

fn exit(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Whether a checkpoint holds: a valid signature (or none to check it with) and a ledger that
/// extends it (or a row pruned since).
fn holds(cp: &CheckpointReport) -> bool {
    (cp.signature_ok || !cp.signature_checked) && (cp.consistent || !cp.checkable)
}

/// One line for the checkpoint directory as a whole.
fn summary(in_dir: &[CheckpointReport], dir: &Path) -> String {
    let Some(newest) = in_dir.iter().map(|c| c.rows).max() else {
        return format!(
            "none in {} yet (`airlock serve` writes them)",
            dir.display()
        );
    };
    let bad = in_dir.iter().filter(|c| !holds(c)).count();
    let verdict = if bad == 0 {
        "the ledger extends every one".to_string()
    } else {
        format!("{bad} do NOT hold (below)")
    };
    format!(
        "{} in {} (newest: {newest} rows): {verdict}",
        in_dir.len(),
        dir.display()
    )
}

fn line(cp: &CheckpointReport) -> String {
    let when = if cp.time.is_empty() {
        String::new()
    } else {
        format!(", {}", cp.time)
    };
    format!(
        "{} ({} rows{when}): signature {}, {}",
        cp.name,
        cp.rows,
        match (cp.signature_checked, cp.signature_ok) {
            (false, _) => "not checked (no key)",
            (true, true) => "valid",
            (true, false) => "INVALID: not signed by this ledger's key (or altered)",
        },
        if cp.signature_checked && !cp.signature_ok {
            "not held to the ledger (it proves nothing)"
        } else if !cp.checkable {
            "names a pruned row: no longer checkable"
        } else if cp.consistent {
            "the ledger extends it"
        } else {
            "NOT consistent"
        }
    )
}

pub(super) fn checkpoint(
    path: &Path,
    out: Option<&Path>,
    format: CheckpointFormat,
) -> anyhow::Result<ExitCode> {
    let c = cfg(path)?;
    let signer = Signer::load(&c.signing_key_path)
        .context("no signing key: run `airlock keys init` (or start `airlock serve` once)")?;
    let reader = LedgerReader::open_at(&c.ledger)?;
    let report = reader.verify_with(&VerifyOptions {
        public: Some(signer.public()),
        checkpoints: Vec::new(),
    })?;
    if let Some(b) = &report.first_bad {
        bail!(
            "the ledger does not verify (seq {}: {}); no checkpoint signed",
            b.seq,
            b.fault
        );
    }
    let bytes = match format {
        CheckpointFormat::Note => {
            let origin = c
                .checkpoints
                .origin
                .clone()
                .unwrap_or_else(|| default_origin(&signer.public()));
            let mut root = [0u8; 32];
            hex::decode_to_slice(&report.head, &mut root)?;
            SignedNote::sign(&signer, &origin, report.rows, &root)?.bytes
        }
        CheckpointFormat::AirlockV1 => {
            let now = airlock::instant::rfc3339(&airlock::instant::now());
            Checkpoint::sign(&signer, report.rows, &report.head, &now)
                .render()
                .into_bytes()
        }
    };
    match out {
        Some(p) => {
            std::fs::write(p, &bytes).with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!(
                "wrote {} ({} rows); store it off this machine",
                p.display(),
                report.rows
            );
        }
        None => print!("{}", String::from_utf8_lossy(&bytes)),
    }
    Ok(ExitCode::SUCCESS)
}
