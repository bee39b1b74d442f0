//! The rug-pull guard: a tool is trusted with the definition it was first seen with (or the one
//! its manifest pins); a server that later presents a different one gets the tool quarantined
//! until someone reviews it and pins the new definition.
//!
//! Owns the comparison, pure: live hashes + manifests + what the ledger remembers in, the changed
//! tools and the rows and trust updates to commit out. It must never trust a server's own
//! annotations (`readOnlyHint`, ...): they are not part of the hash and never gate.

use std::collections::BTreeMap;

use crate::ledger::row::{self, Row};
use crate::manifest::ManifestSet;

/// A tool as served now.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub server: &'a str,
    pub tool: &'a str,
    pub hash: &'a str,
}

/// A tool whose definition is not the trusted one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The trusted hash (first seen, or the manifest's pin).
    pub was: String,
    /// What the server presents now.
    pub now: String,
    /// Whether `was` comes from a manifest pin.
    pub pinned: bool,
}

/// What the guard concluded at start-up.
#[derive(Debug, Default)]
pub struct Assessment {
    /// (server, tool) → change.
    pub changed: BTreeMap<(String, String), Changed>,
    /// Ledger rows to write: `tool_seen`, `tool_accepted`, `tool_changed`.
    pub rows: Vec<Row>,
    /// (`server/tool`, hash) to remember as trusted.
    pub trust: Vec<(String, String)>,
}

/// The key under which a tool's trusted hash is remembered.
pub fn key(server: &str, tool: &str) -> String {
    format!("{server}/{tool}")
}

/// Compare what is served with what is trusted.
pub fn assess(
    seen: &[Seen<'_>],
    manifests: &ManifestSet,
    recorded: &BTreeMap<String, String>,
) -> Assessment {
    let mut a = Assessment::default();
    for s in seen {
        let k = key(s.server, s.tool);
        let remembered = recorded.get(&k);
        let pin = manifests
            .get(s.server, s.tool)
            .and_then(|m| m.pin.as_deref());
        let change = |was: &str, pinned: bool, a: &mut Assessment| {
            a.rows.push(Row::ToolChanged(row::ToolChanged {
                tool: k.clone(),
                was: was.to_string(),
                now: s.hash.to_string(),
                pinned,
            }));
            a.changed.insert(
                (s.server.to_string(), s.tool.to_string()),
                Changed {
                    was: was.to_string(),
                    now: s.hash.to_string(),
                    pinned,
                },
            );
        };
        match (pin, remembered) {
            (Some(p), _) if p != s.hash => change(p, true, &mut a),
            (Some(_), Some(r)) if r == s.hash => {}
            (Some(_), r) => {
                a.rows.push(Row::ToolAccepted(row::ToolAccepted {
                    tool: k.clone(),
                    hash: s.hash.to_string(),
                    was: r.cloned(),
                    by: "manifest pin".to_string(),
                }));
                a.trust.push((k, s.hash.to_string()));
            }
            (None, None) => {
                a.rows.push(Row::ToolSeen(row::ToolSeen {
                    tool: k.clone(),
                    hash: s.hash.to_string(),
                }));
                a.trust.push((k, s.hash.to_string()));
            }
            (None, Some(r)) if r == s.hash => {}
            (None, Some(r)) => change(r, false, &mut a),
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::{Assessment, BTreeMap, Changed, ManifestSet, Seen, assess, key};
    use crate::manifest::{Reversal, ToolManifest};

    fn manifests(pin: Option<&str>) -> ManifestSet {
        let mut set = ManifestSet::default();
        set.insert(ToolManifest {
            server: "shop".into(),
            name: "refund".into(),
            class: "financial".into(),
            target: "t".into(),
            impact: "i".into(),
            reversal: Reversal::None {
                reason: "no".into(),
            },
            evidence: vec![],
            summary: None,
            conditions: vec![],
            limits: vec![],
            pin: pin.map(String::from),
            redact: vec![],
            redact_lines: vec![],
            origin: "m.toml:1".into(),
        });
        set
    }

    fn run(hash: &str, pin: Option<&str>, recorded: Option<&str>) -> Assessment {
        let rec: BTreeMap<String, String> = recorded
            .map(|r| (key("shop", "refund"), r.to_string()))
            .into_iter()
            .collect();
        assess(
            &[Seen {
                server: "shop",
                tool: "refund",
                hash,
            }],
            &manifests(pin),
            &rec,
        )
    }

    fn kinds(a: &Assessment) -> Vec<&str> {
        a.rows.iter().map(|r| r.kind()).collect()
    }

    #[test]
    fn first_sight_is_remembered() {
        let a = run("h1", None, None);
        assert!(a.changed.is_empty());
        assert_eq!(kinds(&a), ["tool_seen"]);
        assert_eq!(a.trust, [("shop/refund".to_string(), "h1".to_string())]);
    }

    #[test]
    fn the_same_definition_changes_nothing() {
        let a = run("h1", None, Some("h1"));
        assert!(a.changed.is_empty() && a.rows.is_empty() && a.trust.is_empty());
    }

    #[test]
    fn a_different_definition_is_a_change() {
        let a = run("h2", None, Some("h1"));
        assert_eq!(
            a.changed[&("shop".to_string(), "refund".to_string())],
            Changed {
                was: "h1".into(),
                now: "h2".into(),
                pinned: false
            }
        );
        assert_eq!(kinds(&a), ["tool_changed"]);
        assert!(a.trust.is_empty(), "a change is never trusted by itself");
    }

    #[test]
    fn a_pin_decides_over_memory() {
        let a = run("h2", Some("h2"), Some("h1"));
        assert!(a.changed.is_empty());
        assert_eq!(kinds(&a), ["tool_accepted"]);
        assert_eq!(a.trust[0].1, "h2");
        let a = run("h1", Some("h2"), Some("h1"));
        assert!(
            a.changed[&("shop".to_string(), "refund".to_string())].pinned,
            "served definition differs from the pin"
        );
        let a = run("h1", Some("h2"), None);
        assert_eq!(kinds(&a), ["tool_changed"], "even at first sight");
    }
}
