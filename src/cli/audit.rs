//! `stats` and `replay`: what the approval queue and a candidate policy look like, from the ledger.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::report;
use airlock::config::load_config;
use airlock::ledger::postgres::PgTarget;
use airlock::ledger::{LedgerReader, Location, Record};
use airlock::signing::Signer;
use airlock::stats::{self, Group};

pub(super) fn parse_since(since: Option<&str>) -> anyhow::Result<Option<DateTime<Utc>>> {
    since
        .map(|s| {
            airlock::instant::parse_rfc3339(s).with_context(|| {
                format!("`{s}` is not an RFC 3339 time such as 2026-11-24T00:00:00Z")
            })
        })
        .transpose()
}

pub(super) fn rows(config: &Path) -> anyhow::Result<Vec<Record>> {
    let c = load_config(config).map_err(report)?;
    let mut rows = Vec::new();
    let mut bad = None;
    LedgerReader::open_at(&c.ledger)?.records(|r| match r {
        Ok(r) => rows.push(r),
        Err((seq, e)) => {
            bad.get_or_insert(format!("row {seq} cannot be decoded: {e}"));
        }
    })?;
    match bad {
        Some(e) => anyhow::bail!("{e} (run `airlock ledger verify`)"),
        None => Ok(rows),
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| {
        humantime::format_duration(std::time::Duration::from_secs_f64(s.max(0.0).round()))
            .to_string()
    })
}

fn line(name: &str, g: &Group) -> String {
    format!(
        "  {name:<32} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5}  {:>6}  {:>10} {:>10}",
        g.requests,
        g.approve,
        g.modify,
        g.deny,
        g.escalate,
        g.timeout,
        g.approve_rate
            .map_or("-".into(), |r| format!("{:.0}%", r * 100.0)),
        secs(g.median_secs_to_decide),
        secs(g.p90_secs_to_decide)
    )
}

pub(super) fn stats(config: &Path, since: Option<&str>, as_json: bool) -> anyhow::Result<ExitCode> {
    let s = stats::compute(&rows(config)?, parse_since(since)?);
    if as_json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} approval request(s)", s.requests);
    let header = format!(
        "  {:<32} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5}  {:>6}  {:>10} {:>10}",
        "", "req", "appr", "mod", "deny", "esc", "t/o", "appr%", "median", "p90"
    );
    for (title, groups) in [
        ("by role", &s.by_role),
        ("by approver", &s.by_approver),
        ("by class", &s.by_class),
    ] {
        println!("\n{title}\n{header}");
        for (name, g) in groups {
            println!("{}", line(name, g));
        }
    }
    println!("\nqueue depth (most open at once, by hour; last 24)");
    for (hour, depth) in s.queue_depth.iter().rev().take(24).rev() {
        println!("  {hour}  {depth}");
    }
    println!();
    if s.flags.is_empty() {
        println!("no flags");
    }
    for f in &s.flags {
        println!("FLAG {}: {} — {}", f.kind, f.subject, f.detail);
    }
    Ok(ExitCode::SUCCESS)
}

/// The candidate policy: a policy file, or a directory holding exactly one.
fn candidate(path: &Path) -> anyhow::Result<airlock::policy::Policy> {
    let file = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        if files.len() != 1 {
            anyhow::bail!(
                "{} holds {} policy files; name the one to replay with --policy FILE",
                path.display(),
                files.len()
            );
        }
        files.remove(0)
    } else {
        path.to_path_buf()
    };
    airlock::config::load_policy_file(&file).map_err(report)
}

pub(super) fn replay(
    config: &Path,
    policy: &Path,
    since: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let setup = super::setup(config)?;
    let candidate = candidate(policy)?;
    let r = airlock::replay::replay(
        &rows(config)?,
        &setup.manifests,
        &candidate,
        parse_since(since)?,
    );
    if as_json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "replayed {} call(s) with policy {} (active: {}): {} unchanged, {} would change",
        r.calls,
        candidate.version,
        setup.policy.version,
        r.unchanged,
        r.calls - r.unchanged
    );
    for (change, n) in &r.changes {
        println!("  {n:>6}  {change}");
    }
    if r.skipped > 0 {
        println!(
            "  ({} call(s) not replayed: held by a rate limit, whose counters depend on history, or recorded without arguments)",
            r.skipped
        );
    }
    if !r.examples.is_empty() {
        println!("\nexamples:");
    }
    for c in &r.examples {
        println!(
            "  {} {} {}: {} → {}\n      {}",
            c.time, c.call_id, c.tool, c.was, c.now, c.because
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn prune(path: &Path, dry_run: bool, as_json: bool) -> anyhow::Result<ExitCode> {
    let setup = super::setup(path)?;
    let c = &setup.config;
    let plan = airlock::ledger::prune::plan(
        &c.ledger,
        &|class| setup.policy.retention(class),
        airlock::instant::now(),
    )?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else if plan.through == 0 {
        println!("nothing has expired");
    } else {
        println!(
            "{} row(s) expired, up to seq {} ({} .. {})",
            plan.rows,
            plan.through,
            plan.oldest.as_deref().unwrap_or("?"),
            plan.newest.as_deref().unwrap_or("?")
        );
    }
    if !as_json {
        if let Some((seq, until)) = &plan.first_kept {
            println!("kept from seq {seq}: under retention until {until}");
        }
    }
    if dry_run || plan.through == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let signer = Signer::load(&c.signing_key_path)
        .context("no signing key to sign the tombstone: run `airlock keys init`")?;
    super::runtime()?.block_on(airlock::ledger::prune::apply(&c.ledger, &signer, &plan))?;
    if !as_json {
        println!(
            "pruned rows up to seq {}; a signed tombstone and a `pruned` row record it",
            plan.through
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `ledger copy`: copy, then verify the target and compare its head with the source's.
pub(super) fn copy(
    config: &Path,
    to: &str,
    password_env: Option<String>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let c = load_config(config).map_err(report)?;
    let target = if to.starts_with("postgres://") || to.starts_with("postgresql://") {
        PgTarget::check_url(to).map_err(anyhow::Error::msg)?;
        Location::Postgres(PgTarget {
            url: to.to_string(),
            password_env,
            replica: None,
        })
    } else {
        Location::File(PathBuf::from(to))
    };
    if target == c.ledger {
        anyhow::bail!("the target is the configured ledger itself");
    }
    let copied = airlock::ledger::copy::copy(&c.ledger, &target)
        .with_context(|| format!("cannot copy the ledger to {target}"))?;
    let source = LedgerReader::open_at(&c.ledger)?.verify()?;
    let copy = LedgerReader::open_at(&target)?.verify()?;
    let same = source.head == copy.head && source.rows == copy.rows;
    let ok = same && source.ok() && copy.ok();
    if as_json {
        println!(
            "{}",
            serde_json::json!({"rows": copied.rows, "head": copy.head, "source_verified": source.ok(), "target_verified": copy.ok(), "same_head": same})
        );
    } else {
        println!(
            "copied {} row(s) from {} to {target}",
            copied.rows, c.ledger
        );
        println!(
            "head {} ({}); verify: source {}, copy {}",
            copy.head,
            if same {
                "the same in both"
            } else {
                "DIFFERENT"
            },
            if source.ok() { "OK" } else { "FAILED" },
            if copy.ok() { "OK" } else { "FAILED" }
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
