//! `quarantine` and `drift`: the review loop from a terminal.
//!
//! A running `airlock serve` owns the ledger (one writer), so these commands act through its
//! web listener, with a short-lived personal token made from the key file for the person named
//! by `--as` (recorded with `via: cli` and the OS user; the gate's authority rule decides whether
//! that person may); its address comes from `--url` or the runtime file `serve` writes beside
//! the ledger. Listing also works with no gate running, read-only from the ledger.
//!
//! A matter whose role requires more than a link — signing in with the company's provider, a
//! TOTP code — is never decided from here: the command prints the person's own page (where they
//! sign in and enter the code) and exits with an error, and the gate refuses a CLI token for it
//! anyway. A release or rejection sends the SHA-256 of the held call's canonical JSON as this
//! command fetched it (`seen_json`): the gate refuses it if the call changed since, and records
//! it as `seen_sha256` (`seen_of: json`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Value, json};

use super::{printable, runtime_file};
pub use args::{DriftCommand, QuarantineCommand};

mod args;
mod gate;
use airlock::ledger::LedgerReader;
use gate::{Gate, config, needs_their_page, running, runtime};

pub(super) fn quarantine(command: QuarantineCommand) -> anyhow::Result<ExitCode> {
    match command {
        QuarantineCommand::List {
            gate,
            json,
            for_whom,
        } => quarantine_list(
            &gate.config.config,
            gate.url.as_deref(),
            json,
            for_whom.as_deref(),
        ),
        QuarantineCommand::Classify {
            gate,
            tool,
            class,
            target,
            impact,
            reversal,
            by,
            print,
        } => quarantine_classify(
            &gate.config.config,
            gate.url.as_deref(),
            &ClassifyArgs {
                tool: &tool,
                class: &class,
                target: &target,
                impact: &impact,
                reversal: &reversal,
                by: &by,
                print,
            },
        ),
        QuarantineCommand::Release { gate, id, by } => quarantine_act(
            &gate.config.config,
            gate.url.as_deref(),
            &id,
            "release",
            &by,
            "",
        ),
        QuarantineCommand::Reject {
            gate,
            id,
            reason,
            by,
        } => quarantine_act(
            &gate.config.config,
            gate.url.as_deref(),
            &id,
            "reject",
            &by,
            &reason,
        ),
    }
}

pub(super) fn drift(command: DriftCommand) -> anyhow::Result<ExitCode> {
    match command {
        DriftCommand::List { gate, json } => {
            drift_list(&gate.config.config, gate.url.as_deref(), json)
        }
        DriftCommand::Resume { gate, scope, by } => {
            drift_resume(&gate.config.config, gate.url.as_deref(), &scope, &by)
        }
    }
}

/// Held calls, unclassified tools and pauses, and the review page's URL: from the running
/// gate, else (no URL) from the ledger.
fn state(
    path: &Path,
    url: Option<&str>,
    for_whom: Option<&str>,
) -> anyhow::Result<(Value, Option<String>)> {
    let c = config(path)?;
    if let Some(g) = Gate::find(&c, url)? {
        let page = for_whom.map_or_else(|| g.base.clone(), |e| g.page_for(e));
        if let Ok(v) = g.state() {
            return Ok((v, Some(page)));
        }
        if url.is_some() {
            return g.state().map(|v| (v, Some(page)));
        }
    }
    let reader = LedgerReader::open_at(&c.ledger)?;
    let pauses: Vec<Value> = reader
        .drift()?
        .into_iter()
        .filter(|(k, _)| k.starts_with("pause/"))
        .map(|(_, v)| v)
        .collect();
    Ok((
        json!({"held": reader.held()?, "pauses": pauses, "unclassified": []}),
        None,
    ))
}

pub(super) fn quarantine_list(
    path: &Path,
    url: Option<&str>,
    as_json: bool,
    for_whom: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let (v, page) = state(path, url, for_whom)?;
    let held: Vec<&Value> = v["held"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|h| h["status"]["state"] == "held")
                .collect()
        })
        .unwrap_or_default();
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"held": held, "unclassified": v["unclassified"], "review_url": page})
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut groups: std::collections::BTreeMap<String, Vec<&Value>> = Default::default();
    for h in &held {
        let key = format!(
            "{}/{} (called as `{}`)",
            printable(h["server"].as_str().unwrap_or("?")),
            printable(h["tool_name"].as_str().unwrap_or("?")),
            printable(h["tool"].as_str().unwrap_or("?"))
        );
        groups.entry(key).or_default().push(h);
    }
    if groups.is_empty() {
        println!("no calls held for review");
    }
    for (tool, calls) in &groups {
        println!("{tool}: {} held", calls.len());
        for h in calls {
            println!(
                "  {}  {}  by {}  {}",
                printable(h["id"].as_str().unwrap_or("")),
                printable(h["held_at"].as_str().unwrap_or("")),
                printable(h["actor"].as_str().unwrap_or("")),
                printable(h["reason"].as_str().unwrap_or(""))
            );
        }
    }
    for t in v["unclassified"].as_array().into_iter().flatten() {
        println!(
            "unclassified: {}/{} (called as `{}`): no manifest; every call is quarantined",
            printable(t["server"].as_str().unwrap_or("")),
            printable(t["tool"].as_str().unwrap_or("")),
            printable(t["exposed"].as_str().unwrap_or(""))
        );
    }
    match (page, for_whom) {
        (Some(p), Some(who)) => {
            println!("review page for {who} (valid 24 hours; theirs alone, do not forward): {p}")
        }
        (Some(p), None) => {
            println!("gate: {p} (`--as EMAIL` prints a reviewer's own link to the review page)")
        }
        (None, _) => println!("(read from the ledger: no running airlock serve was reached)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The classification form for a tool, by the name agents call it.
pub(super) struct ClassifyArgs<'a> {
    pub tool: &'a str,
    pub class: &'a str,
    pub target: &'a str,
    pub impact: &'a str,
    pub reversal: &'a str,
    pub by: &'a str,
    pub print: bool,
}

pub(super) fn quarantine_classify(
    path: &Path,
    url: Option<&str>,
    a: &ClassifyArgs<'_>,
) -> anyhow::Result<ExitCode> {
    let g = running(path, url)?;
    let v = g.state()?;
    let found = v["unclassified"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["exposed"] == a.tool)
        .map(|t| {
            (
                t["server"].clone(),
                t["tool"].clone(),
                t["definition_hash"].clone(),
            )
        })
        .or_else(|| {
            v["held"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|h| h["tool"] == a.tool)
                .map(|h| (h["server"].clone(), h["tool_name"].clone(), Value::Null))
        });
    let Some((Value::String(server), Value::String(tool), hash)) = found else {
        bail!(
            "`{}` is neither an unclassified tool nor a tool with held calls",
            a.tool
        );
    };
    let mode = if a.print { "print" } else { "write" };
    if !a.print {
        needs_their_page(&v["requires"]["classify"], a.by, &g.page_for(a.by))?;
    }
    let r = g.post(
        "classify",
        a.by,
        &[
            ("server", &server),
            ("tool", &tool),
            ("class", a.class),
            ("target", a.target),
            ("impact", a.impact),
            ("reversal", a.reversal),
            ("mode", mode),
            ("definition_hash", hash.as_str().unwrap_or("")),
        ],
    )?;
    if a.print {
        print!("{}", r["data"]["manifest"].as_str().unwrap_or(""));
    } else {
        println!("{}", r["message"].as_str().unwrap_or("done"));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn quarantine_act(
    path: &Path,
    url: Option<&str>,
    id: &str,
    action: &str,
    by: &str,
    reason: &str,
) -> anyhow::Result<ExitCode> {
    let g = running(path, url)?;
    let v = g.state()?;
    let held = v["held"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["id"] == id)
        .ok_or_else(|| anyhow!("no held call `{id}` (`airlock quarantine list` shows them)"))?;
    needs_their_page(&v["requires"]["held"][id], by, &g.page_for(by))?;
    // what this command saw: the call as fetched, hashed as the gate hashes it
    let seen = airlock::canonical::sha256_hex(airlock::canonical::to_string(held).as_bytes());
    let r = g.post(
        &format!("held/{id}"),
        by,
        &[("action", action), ("reason", reason), ("seen_json", &seen)],
    )?;
    println!("{}", r["message"].as_str().unwrap_or("done"));
    if action == "release" {
        if let Some(result) = r["data"]["status"].get("result") {
            println!("{}", serde_json::to_string_pretty(result)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn drift_list(
    path: &Path,
    url: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let (v, page) = state(path, url, None)?;
    let pauses = v["pauses"].as_array().cloned().unwrap_or_default();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&pauses)?);
        return Ok(ExitCode::SUCCESS);
    }
    if pauses.is_empty() {
        println!("autopilot is not paused anywhere");
    }
    for p in &pauses {
        println!(
            "paused: {}  since {}  limit {}  (tripped by call {})",
            printable(p["scope"].as_str().unwrap_or("")),
            printable(p["since"].as_str().unwrap_or("")),
            printable(p["limit"].as_str().unwrap_or("")),
            printable(p["call_id"].as_str().unwrap_or(""))
        );
    }
    if page.is_none() {
        println!("(read from the ledger: no running airlock serve was reached)");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn drift_resume(
    path: &Path,
    url: Option<&str>,
    scope: &str,
    by: &str,
) -> anyhow::Result<ExitCode> {
    let g = running(path, url)?;
    let v = g.state()?;
    let pause = v["pauses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["scope"] == scope);
    if let Some(id) = pause.and_then(|p| p["call_id"].as_str()) {
        needs_their_page(&v["requires"]["pauses"][id], by, &g.pause_page_for(id, by))?;
    }
    let r = g.post("resume", by, &[("scope", scope)])?;
    println!("{}", r["message"].as_str().unwrap_or("done"));
    Ok(ExitCode::SUCCESS)
}

/// `airlock status`: the running gate and each tool server's state, from its `/healthz`.
pub(super) fn status(path: &Path, url: Option<&str>, as_json: bool) -> anyhow::Result<ExitCode> {
    let c = config(path)?;
    let base = match url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => runtime(&c).map(|(base, _)| base).ok_or_else(|| {
            anyhow!(
                "no running `airlock serve` found (no {}): start it, or pass --url",
                runtime_file(&c.ledger_path).display()
            )
        })?,
    };
    let mut r = Gate::agent()
        .get(&format!("{base}/healthz"))
        .call()
        .with_context(|| format!("no airlock serve answers at {base}"))?;
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string()?)
        .map_err(|_| anyhow!("{base}/healthz did not answer like airlock serve"))?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "gate:    {base} ({})",
            printable(v["status"].as_str().unwrap_or("?"))
        );
        for (name, state) in v["servers"].as_object().into_iter().flatten() {
            println!(
                "server:  {}  {}",
                printable(name),
                printable(state.as_str().unwrap_or("?"))
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
