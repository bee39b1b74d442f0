//! Classifying a quarantined tool: a reviewer's answer becomes a manifest file.
//!
//! Owns the manifest text written for a reviewed tool and the checks that make it valid by
//! construction (a class the policy defines, a reversal tool its server serves, a definition
//! pin). It writes one new file into `tool-manifests/` atomically and never edits or overwrites
//! an existing one: a tool that already has a manifest is changed by editing that file. The
//! running gate's live reload picks the new file up; it must never swap the setup itself.

use std::path::PathBuf;

use serde::Serialize;

use crate::config::Setup;
use crate::manifest::{Reversal, parse_reversal};

/// What a reviewer says about a tool.
#[derive(Debug, Clone)]
pub struct Classification {
    pub class: String,
    pub target: String,
    pub impact: String,
    pub reversal: String,
    /// Who classified it (recorded in the file and the ledger).
    pub by: String,
}

#[derive(Serialize)]
struct Entry<'a> {
    server: &'a str,
    name: &'a str,
    class: &'a str,
    target: &'a str,
    impact: &'a str,
    reversal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pin: Option<&'a str>,
}

#[derive(Serialize)]
struct File<'a> {
    tool: Vec<Entry<'a>>,
}

/// The tool a classification is for, as its server presents it now.
#[derive(Clone, Copy)]
pub struct Subject<'a> {
    pub server: &'a str,
    pub tool: &'a str,
    /// The definition the reviewer saw (pinned, so a later change is caught).
    pub definition_hash: Option<&'a str>,
    /// Whether a tool of that name is served by the same server (for a reversal tool).
    pub serves: &'a dyn Fn(&str) -> bool,
}

/// Check a classification against the active setup and render the manifest file for it.
pub fn render(setup: &Setup, s: Subject<'_>, c: &Classification) -> Result<String, String> {
    if let Some(m) = setup.manifests.get(s.server, s.tool) {
        return Err(format!(
            "`{}` on `{}` already has a manifest ({}); edit that file instead",
            s.tool, s.server, m.origin
        ));
    }
    if !setup.policy.classes.contains_key(&c.class) {
        let known: Vec<&str> = setup.policy.classes.keys().map(String::as_str).collect();
        return Err(format!(
            "class `{}` is not defined by policy {} (known: {})",
            c.class,
            setup.policy.version,
            known.join(", ")
        ));
    }
    for (field, v) in [("target", &c.target), ("impact", &c.impact)] {
        if v.trim().is_empty() {
            return Err(format!("{field} must not be empty: approvers read it"));
        }
    }
    let reversal = parse_reversal(c.reversal.trim())?;
    if let Reversal::Tool { tool } = &reversal {
        if !(s.serves)(tool) {
            return Err(format!(
                "reversal tool `{tool}` is not served by `{}`",
                s.server
            ));
        }
    }
    let file = File {
        tool: vec![Entry {
            server: s.server,
            name: s.tool,
            class: &c.class,
            target: c.target.trim(),
            impact: c.impact.trim(),
            reversal: reversal.to_string(),
            pin: s.definition_hash,
        }],
    };
    let body = toml::to_string(&file).map_err(|e| format!("cannot write the manifest: {e}"))?;
    let by: String = c.by.chars().filter(|ch| !ch.is_control()).collect();
    Ok(format!(
        "# Classified from a quarantine review by {by}.\n# Review it like any manifest; `airlock check` validates it.\n{body}"
    ))
}

/// The file a classification is written to.
pub fn path_for(setup: &Setup, server: &str, tool: &str) -> PathBuf {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    setup
        .config
        .manifests_dir
        .join(format!("{}.{}.toml", safe(server), safe(tool)))
}

/// Write the rendered manifest to a new file (never over an existing one), atomically.
pub fn write(setup: &Setup, server: &str, tool: &str, text: &str) -> Result<PathBuf, String> {
    let path = path_for(setup, server, tool);
    if path.exists() {
        return Err(format!(
            "{} already exists; edit it instead",
            path.display()
        ));
    }
    let dir = &setup.config.manifests_dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // A dot-file without the .toml extension is not read by the loader until it is renamed.
    let tmp = dir.join(format!(".airlock-classify-{}", uuid::Uuid::new_v4()));
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    if let Err(e) = std::fs::File::open(&tmp).and_then(|f| f.sync_all()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", tmp.display()));
    }
    // A hard link fails if the name exists, so a file written meanwhile is never replaced.
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}
