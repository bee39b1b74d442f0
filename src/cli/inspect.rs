//! `map` and `explain`: what the gate would do, without running anything.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use serde_json::{Value, json};

use super::{runtime, setup};
use airlock::canonical;
use airlock::config::Setup;
use airlock::decide::{self, Call, Context, Verdict};
use airlock::mcp::downstream::ToolServers;

pub(super) fn map(path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let setup = setup(path)?;
    let rows = runtime()?.block_on(async {
        let (servers, problems) = ToolServers::connect(&setup.config.servers).await;
        for p in &problems {
            eprintln!("server {}: {}", p.server, p.message);
        }
        let mut rows = Vec::new();
        for t in servers.tools().iter() {
            let manifest = setup.manifests.get(&t.server, &t.name);
            let mut row = class_row(
                &setup,
                &t.exposed,
                &t.server,
                &t.name,
                manifest.map(|m| m.class.as_str()),
                "served",
            );
            // what a manifest `pin` names, and the server's own hints (shown, never used to gate)
            row["definition_hash"] = json!(t.definition_hash);
            row["pinned"] = json!(
                manifest
                    .and_then(|m| m.pin.as_deref())
                    .map(|p| p == t.definition_hash)
            );
            row["annotations"] = t
                .definition
                .get("annotations")
                .cloned()
                .unwrap_or(Value::Null);
            row["summary"] = json!(manifest.map(|m| summary_of(m, &t.exposed)));
            row["redact"] = json!(manifest.map(|m| m.redact.clone()).unwrap_or_default());
            rows.push(row);
        }
        for m in setup.manifests.iter() {
            if servers
                .tools()
                .iter()
                .all(|t| !(t.server == m.server && t.name == m.name))
            {
                let exposed = setup
                    .server(&m.server)
                    .map_or_else(|| m.name.clone(), |s| s.exposed(&m.name));
                // A manifest for a tool its (running) server does not serve is stale; one whose
                // server did not start is only unreachable for now.
                let running = servers
                    .status()
                    .iter()
                    .any(|(n, st)| *n == m.server && st == "running");
                let state = if running { "stale" } else { "server_down" };
                let mut row =
                    class_row(&setup, &exposed, &m.server, &m.name, Some(&m.class), state);
                row["summary"] = json!(summary_of(m, &exposed));
                row["redact"] = json!(m.redact);
                rows.push(row);
            }
        }
        servers.shutdown().await;
        rows
    });
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"policy_version": setup.policy.version, "tools": rows})
            )?
        );
    } else {
        println!("policy {}", setup.policy.version);
        let line = |c: [&str; 8]| {
            println!(
                "{:<32} {:<10} {:<20} {:<12} {:<10} {:<8} {:<12} {}",
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
            )
        };
        line([
            "TOOL",
            "SERVER",
            "CLASS",
            "PATH",
            "ROLE",
            "TIMEOUT",
            "ON TIMEOUT",
            "SUMMARY",
        ]);
        for r in &rows {
            let s = |k: &str| r[k].as_str().unwrap_or("-");
            line([
                s("tool"),
                s("server"),
                s("class"),
                s("path"),
                s("role"),
                s("timeout"),
                s("on_timeout"),
                s("summary"),
            ]);
            let redact: Vec<&str> = r["redact"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !redact.is_empty() {
                println!("{:<32} redacted: {}", "", redact.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What an approver's summary line says for a tool: its template as written (fields unfilled, as
/// there is no call), or the default wording.
fn summary_of(m: &airlock::manifest::ToolManifest, exposed: &str) -> String {
    m.summary.as_ref().map_or_else(
        || airlock::summary::default_summary(exposed, &m.target),
        |t| t.source().to_string(),
    )
}

fn class_row(
    setup: &Setup,
    exposed: &str,
    server: &str,
    name: &str,
    class: Option<&str>,
    state: &str,
) -> Value {
    let rule = class.and_then(|c| setup.policy.classes.get(c));
    let path = match (state, class, rule) {
        ("stale", ..) => "stale".to_string(),
        (_, None, _) => "quarantine".to_string(),
        (_, Some(_), None) => "quarantine".to_string(),
        (_, Some(_), Some(r)) => serde_json::to_value(r.path)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
    };
    json!({
        "tool": exposed,
        "server": server,
        "name": name,
        "class": class,
        "path": path,
        "role": rule.and_then(|r| r.role.clone()),
        "timeout": rule.filter(|r| r.role.is_some()).map(|r| humantime::format_duration(r.timeout).to_string()),
        "on_timeout": rule.filter(|r| r.role.is_some()).and_then(|r| serde_json::to_value(r.on_timeout).ok()),
        "state": if class.is_none() { "unclassified" } else { state },
    })
}

pub(super) fn explain(
    path: &Path,
    tool: &str,
    args: &str,
    actor: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let setup = setup(path)?;
    let arguments = match serde_json::from_str::<Value>(args) {
        Ok(Value::Object(o)) => o,
        Ok(_) => bail!("--args must be a JSON object, e.g. '{{\"order_id\": \"A-1001\"}}'"),
        Err(e) => bail!("--args is not valid JSON: {e}"),
    };
    let actor = actor.unwrap_or(&setup.config.actor);
    let resolved = setup.resolve_static(tool);
    let canonical_len = canonical::to_string(&Value::Object(arguments.clone())).len();
    let d = decide::decide(
        &Call {
            tool,
            arguments: &arguments,
            meta: None,
            canonical_len,
            changed: None,
            // explain does not start the servers: a reversal tool described by a manifest counts
            reversal_served: true,
        },
        resolved.map(|(_, m)| m),
        &setup.policy,
        &Context {
            actor,
            now: airlock::instant::now(),
            // explain has no running gate: rate limits are checked against empty counters
            usage: &airlock::drift::NoUsage,
        },
    );
    if as_json {
        let mut v = serde_json::to_value(&d)?;
        if let Value::Object(o) = &mut v {
            o.insert("tool".into(), json!(tool));
            o.insert("actor".into(), json!(actor));
            o.insert("manifest".into(), json!(resolved.map(|(_, m)| m)));
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "tool:     {tool}")?;
        writeln!(out, "actor:    {actor}")?;
        match resolved {
            Some((s, m)) => writeln!(
                out,
                "manifest: {} (server `{}`, tool `{}`, class `{}`)",
                m.origin, s.name, m.name, m.class
            )?,
            None => writeln!(out, "manifest: none")?,
        }
        if let Some((_, m)) = resolved.filter(|(_, m)| !m.redact.is_empty()) {
            writeln!(
                out,
                "redacted: {} (a marker and a keyed digest in the ledger, mail, pages and exports; the value sealed until the call ends)",
                m.redact.join(", ")
            )?;
        }
        writeln!(out, "verdict:  {}", d.verdict.name())?;
        if let Verdict::Approve {
            role,
            timeout,
            on_timeout,
            ..
        } = &d.verdict
        {
            writeln!(
                out,
                "approver: role `{role}`, timeout {}, on timeout: {}",
                humantime::format_duration(*timeout),
                serde_json::to_value(on_timeout)?.as_str().unwrap_or("?")
            )?;
        }
        writeln!(out, "rule:     {} (policy {})", d.rule, d.policy_version)?;
        writeln!(out, "reasons:")?;
        for r in &d.reasons {
            writeln!(out, "  - [{}] {r}", r.code())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a class keeps of its calls: whether its rows are signed and how long they are kept.
pub(super) fn record_of(policy: &airlock::policy::Policy, class: &str) -> String {
    match policy.classes.get(class) {
        None => "unsigned, rows kept 1y (no class)".to_string(),
        Some(r) => format!(
            "{}, rows kept {}",
            if r.signed { "signed" } else { "unsigned" },
            airlock::policy::format_retention(r.retention)
        ),
    }
}

/// What a class means for a tool, in one comparable line.
pub(super) fn route_of(policy: &airlock::policy::Policy, class: &str) -> String {
    match policy.classes.get(class) {
        None => "quarantine (class not in policy)".to_string(),
        Some(r) => {
            let path = serde_json::to_value(r.path)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let mut out = path;
            if let Some(role) = &r.role {
                out.push_str(&format!(" by {role}"));
            }
            if r.require_reversal || r.require_evidence || !r.conditions.is_empty() {
                let mut req = Vec::new();
                if r.require_reversal {
                    req.push("reversal".to_string());
                }
                if r.require_evidence {
                    req.push("evidence".to_string());
                }
                req.extend(r.conditions.iter().map(|c| {
                    let mut t = format!("{} {}", c.pointer, c.describe());
                    if let Some(p) = c.on_fail {
                        t.push_str(&format!(
                            " else {}",
                            serde_json::to_value(p)
                                .ok()
                                .and_then(|v| v.as_str().map(String::from))
                                .unwrap_or_default()
                        ));
                    }
                    if let Some(role) = &c.role {
                        t.push_str(&format!(" by {role}"));
                    }
                    t
                }));
                out.push_str(&format!(" [requires {}]", req.join(", ")));
            }
            if r.path != airlock::policy::PathKind::Approve
                && (r.require_reversal || r.require_evidence || !r.conditions.is_empty())
            {
                out.push_str(&format!(
                    ", on_fail {}",
                    serde_json::to_value(r.on_fail)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                ));
            }
            if r.min_approvals > 1 {
                out.push_str(&format!(", {} approvals", r.min_approvals));
            }
            if r.role.is_some() {
                out.push_str(&format!(
                    ", {} then {}",
                    humantime::format_duration(r.timeout),
                    serde_json::to_value(r.on_timeout)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                ));
            }
            out
        }
    }
}

pub(super) fn policy_diff(
    path: &Path,
    old: &Path,
    new: &Path,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let setup = setup(path)?;
    let load = |p: &Path| airlock::config::load_policy_file(p).map_err(super::report);
    let (a, b) = (load(old)?, load(new)?);
    let mut changes = Vec::new();
    for m in setup.manifests.iter() {
        let (mut before, mut after) = (route_of(&a, &m.class), route_of(&b, &m.class));
        let records = (record_of(&a, &m.class), record_of(&b, &m.class));
        if records.0 != records.1 {
            before = format!("{before}; {}", records.0);
            after = format!("{after}; {}", records.1);
        }
        if before != after {
            let exposed = setup
                .server(&m.server)
                .map_or_else(|| m.name.clone(), |s| s.exposed(&m.name));
            changes.push(json!({"tool": exposed, "class": m.class, "old": before, "new": after}));
        }
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"old_version": a.version, "new_version": b.version, "changes": changes})
            )?
        );
    } else {
        println!("policy {} → {}", a.version, b.version);
        if changes.is_empty() {
            println!("no tool changes path");
        }
        for c in &changes {
            println!(
                "{}  ({})\n  - {}\n  + {}",
                c["tool"].as_str().unwrap_or(""),
                c["class"].as_str().unwrap_or(""),
                c["old"].as_str().unwrap_or(""),
                c["new"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
