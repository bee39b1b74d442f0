//! Manifests: what a developer says about each tool — its action class, target, business impact,
//! reversal handle and evidence fields.
//!
//! Owns the manifest file format (`tool-manifests/*.toml`), its JSON Schema and the compiled
//! [`ToolManifest`]. It must never decide a path (that is [`crate::decide`]) nor trust anything a
//! tool server says about itself: a manifest is written by people, the server's hints are not.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;

use crate::diag::{Diagnostic, Source};

/// A manifest file: one or more `[[tool]]` tables.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Airlock tool manifest")]
pub struct ManifestFile {
    #[serde(default)]
    #[schemars(with = "Vec<ToolEntryFile>")]
    pub tool: Vec<Spanned<ToolEntryFile>>,
}

/// One `[[tool]]` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolEntryFile {
    /// The `[[server]] name` that serves the tool.
    #[schemars(with = "String")]
    pub server: Spanned<String>,
    /// The tool's name on that server (without Airlock's prefix).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// An action class the policy defines.
    #[schemars(with = "String")]
    pub class: Spanned<String>,
    /// The system or record the tool touches, e.g. `payments.refunds`.
    pub target: String,
    /// The business impact in a few words, shown to approvers.
    pub impact: String,
    /// `tool:NAME` (a tool on the same server that undoes it) or `none: why it cannot be undone`.
    #[schemars(with = "String")]
    pub reversal: Spanned<String>,
    /// Argument names (or `_meta.KEY`) that carry evidence references, e.g. a ticket id.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// The one line an approver reads first: a template over the arguments, e.g.
    /// `"Refund {amount_cents|money:USD} on order {order_id}"`. A field is an argument name or a
    /// JSON pointer (`{/order/id}`, `{/_meta/ticket}`), optionally with one formatter:
    /// `money:CUR` (minor units), `number`, `date` (RFC 3339 or unix seconds), `short:N`.
    /// `{{` and `}}` are literal braces. Default: the tool and its target.
    #[schemars(with = "Option<String>")]
    pub summary: Option<Spanned<String>>,
    /// The tool definition this entry was reviewed against (`airlock map` shows each tool's
    /// `definition_hash`); a server presenting anything else is quarantined until re-pinned.
    pub pin: Option<String>,
    /// Conditions on the arguments that must hold for autopilot (`[[tool.condition]]`).
    #[serde(default)]
    #[schemars(with = "Vec<crate::condition::ConditionFile>")]
    pub condition: Vec<Spanned<crate::condition::ConditionFile>>,
    /// Rate limits on this tool's autopilot calls (`[[tool.limit]]`); crossing one pauses
    /// autopilot for the tool and notifies a role (`notify`, else the class's `role`).
    #[serde(default)]
    #[schemars(with = "Vec<crate::drift::LimitFile>")]
    pub limit: Vec<Spanned<crate::drift::LimitFile>>,
    /// Sensitive argument fields, as JSON pointers (`["/card_number", "/auth/api_key"]`): never
    /// in the ledger, mail, pages, exports or logs — a marker with a short keyed digest stands
    /// there, the chain covers a salted commitment, and the value is kept sealed only until the
    /// call has run (or was refused, or expired).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub redact: Vec<Spanned<String>>,
}

/// How an action can be undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reversal {
    /// A tool on the same server that undoes the action.
    Tool { tool: String },
    /// It cannot be undone, and why.
    None { reason: String },
}

impl std::fmt::Display for Reversal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reversal::Tool { tool } => write!(f, "tool:{tool}"),
            Reversal::None { reason } => write!(f, "none: {reason}"),
        }
    }
}

/// A compiled manifest entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolManifest {
    pub server: String,
    pub name: String,
    pub class: String,
    pub target: String,
    pub impact: String,
    pub reversal: Reversal,
    pub evidence: Vec<String>,
    /// The approver's one-line summary template; `None`: the tool and its target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<crate::summary::Template>,
    /// Conditions that must hold for autopilot.
    #[serde(skip)]
    pub conditions: Vec<crate::condition::Condition>,
    /// Rate limits on autopilot calls.
    #[serde(skip)]
    pub limits: Vec<crate::drift::Limit>,
    /// The reviewed definition hash, if pinned.
    pub pin: Option<String>,
    /// Sensitive argument fields (JSON pointers): redacted wherever the call is recorded or shown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
    /// The line of each `redact` pointer, for `check`.
    #[serde(skip)]
    pub redact_lines: Vec<usize>,
    /// Where it was written (`file:line`), for `map` and `explain`.
    pub origin: String,
}

/// Where a compiled entry's checked keys sit, so cross-file checks can point at them.
#[derive(Debug, Clone)]
pub struct EntrySpans {
    pub entry: std::ops::Range<usize>,
    pub server: std::ops::Range<usize>,
    pub name: std::ops::Range<usize>,
    pub class: std::ops::Range<usize>,
    pub reversal: std::ops::Range<usize>,
}

/// Every compiled manifest entry, keyed by (server, tool name): the unit `decide` classifies by.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestSet {
    /// server → tool → manifest, so lookups by `&str` allocate nothing.
    entries: std::collections::BTreeMap<String, std::collections::BTreeMap<String, ToolManifest>>,
}

impl ManifestSet {
    /// Insert an entry; returns the entry already there for the same (server, tool), if any.
    pub fn insert(&mut self, m: ToolManifest) -> Option<ToolManifest> {
        self.entries
            .entry(m.server.clone())
            .or_default()
            .insert(m.name.clone(), m)
    }

    pub fn get(&self, server: &str, tool: &str) -> Option<&ToolManifest> {
        self.entries.get(server)?.get(tool)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ToolManifest> {
        self.entries.values().flat_map(|tools| tools.values())
    }

    pub fn len(&self) -> usize {
        self.entries.values().map(|t| t.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.values().all(|t| t.is_empty())
    }
}

/// Parse the reversal field.
pub fn parse_reversal(s: &str) -> Result<Reversal, String> {
    let s = s.trim();
    if let Some(tool) = s.strip_prefix("tool:") {
        let tool = tool.trim();
        if tool.is_empty() {
            return Err("`tool:` must name a tool, e.g. `tool:cancel_refund`".into());
        }
        return Ok(Reversal::Tool { tool: tool.into() });
    }
    if let Some(reason) = s.strip_prefix("none:") {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err("`none:` must say why the action cannot be undone".into());
        }
        return Ok(Reversal::None {
            reason: reason.into(),
        });
    }
    Err(format!("`{s}` is neither `tool:NAME` nor `none: REASON`"))
}

/// Compile one parsed manifest file; entry-local problems are reported with their location.
pub fn compile(
    src: &Source,
    file: ManifestFile,
) -> Result<Vec<(ToolManifest, EntrySpans)>, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, entry) in file.tool.into_iter().enumerate() {
        let key = format!("tool[{i}]");
        let span = entry.span();
        let e = entry.into_inner();
        for (field, value) in [
            ("name", &e.name),
            ("server", &e.server),
            ("class", &e.class),
        ] {
            if value.get_ref().trim().is_empty() {
                errors.push(src.error(
                    Some(value.span()),
                    &format!("{key}.{field}"),
                    "must not be empty",
                ));
            }
        }
        for (field, value) in [("target", &e.target), ("impact", &e.impact)] {
            if value.trim().is_empty() {
                errors.push(src.error(
                    Some(span.clone()),
                    &format!("{key}.{field}"),
                    "must not be empty: approvers read it",
                ));
            }
        }
        let reversal = match parse_reversal(e.reversal.get_ref()) {
            Ok(r) => r,
            Err(msg) => {
                errors.push(src.error(Some(e.reversal.span()), &format!("{key}.reversal"), msg));
                continue;
            }
        };
        let summary = match e
            .summary
            .as_ref()
            .map(|t| (t, crate::summary::Template::parse(t.get_ref())))
        {
            Some((_, Ok(t))) => Some(t),
            Some((t, Err(msg))) => {
                errors.push(src.error(Some(t.span()), &format!("{key}.summary"), msg.to_string()));
                None
            }
            None => None,
        };
        let mut conditions = Vec::new();
        for (j, c) in e.condition.iter().enumerate() {
            match crate::condition::compile(c.get_ref()) {
                Ok(c) => conditions.push(c),
                Err(msg) => {
                    errors.push(src.error(Some(c.span()), &format!("{key}.condition[{j}]"), msg))
                }
            }
        }
        let mut limits = Vec::new();
        for (j, l) in e.limit.iter().enumerate() {
            match crate::drift::compile(l.get_ref()) {
                Ok(l) => limits.push(l),
                Err(msg) => {
                    errors.push(src.error(Some(l.span()), &format!("{key}.limit[{j}]"), msg))
                }
            }
        }
        if let Some(j) = crate::drift::duplicate(&limits) {
            errors.push(src.error(
                Some(span.clone()),
                &format!("{key}.limit[{j}]"),
                "counts the same thing over the same window as an earlier limit; keep one",
            ));
        }
        let mut redact = Vec::new();
        let mut redact_lines = Vec::new();
        for (j, p) in e.redact.iter().enumerate() {
            let pointer = p.get_ref().trim();
            let problem = if !pointer.starts_with('/') || pointer.len() < 2 {
                Some("a JSON pointer into the arguments, like `/card_number`".to_string())
            } else if pointer.starts_with("/_meta") {
                Some("`_meta` is not redacted: name an argument".to_string())
            } else if redact.iter().any(|q: &String| q == pointer) {
                Some(format!("`{pointer}` is listed twice"))
            } else {
                None
            };
            match problem {
                Some(msg) => {
                    errors.push(src.error(Some(p.span()), &format!("{key}.redact[{j}]"), msg))
                }
                None => {
                    redact.push(pointer.to_string());
                    redact_lines.push(src.line_col(p.span().start).0);
                }
            }
        }
        let (line, _) = src.line_col(span.start);
        let spans = EntrySpans {
            entry: span,
            server: e.server.span(),
            name: e.name.span(),
            class: e.class.span(),
            reversal: e.reversal.span(),
        };
        out.push((
            ToolManifest {
                server: e.server.into_inner(),
                name: e.name.into_inner(),
                class: e.class.into_inner(),
                target: e.target,
                impact: e.impact,
                reversal,
                evidence: e.evidence,
                summary,
                conditions,
                limits,
                pin: e
                    .pin
                    .map(|p| p.trim().trim_start_matches("sha256:").to_ascii_lowercase()),
                redact,
                redact_lines,
                origin: format!("{}:{line}", src.path.display()),
            },
            spans,
        ));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The path of a manifest file, for listing.
pub fn is_manifest_file(p: &std::path::Path) -> bool {
    p.extension().is_some_and(|e| e == "toml")
}

/// Sorted `*.toml` files of a directory.
pub fn toml_files(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_manifest_file(p))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::{Diagnostic, EntrySpans, ManifestFile, Reversal, Source, ToolManifest, compile};

    fn load(text: &str) -> Result<Vec<(ToolManifest, EntrySpans)>, Vec<Diagnostic>> {
        let src = Source {
            path: "m.toml".into(),
            text: text.into(),
        };
        let file: ManifestFile = src.parse().map_err(|d| vec![d])?;
        compile(&src, file)
    }

    #[test]
    fn compiles_the_contract_format() {
        let m = load(
            r#"
[[tool]]
server = "shop"
name   = "refund_order"
class  = "financial"
target = "payments.refunds"
impact = "Moves money to a customer"
reversal = "none: refunds cannot be clawed back"

[[tool]]
server = "shop"
name = "tag_order"
class = "internal_reversible"
target = "orders.tags"
impact = "Adds a tag"
reversal = "tool:untag_order"
evidence = ["order_id"]
"#,
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].0.reversal,
            Reversal::None {
                reason: "refunds cannot be clawed back".into()
            }
        );
        assert_eq!(
            m[1].0.reversal,
            Reversal::Tool {
                tool: "untag_order".into()
            }
        );
        assert_eq!(m[1].0.origin, "m.toml:10");
    }

    #[test]
    fn bad_reversal_points_at_its_line() {
        let e = load("[[tool]]\nserver = \"s\"\nname = \"t\"\nclass = \"c\"\ntarget = \"x\"\nimpact = \"y\"\nreversal = \"maybe\"\n").unwrap_err();
        assert_eq!(e[0].line, 7);
        assert_eq!(e[0].key, "tool[0].reversal");
    }

    #[test]
    fn bad_summary_template_points_at_its_line_and_key() {
        let e = load("[[tool]]\nserver = \"s\"\nname = \"t\"\nclass = \"c\"\ntarget = \"x\"\nimpact = \"y\"\nreversal = \"none: n\"\nsummary = \"Refund {amount|mony}\"\n").unwrap_err();
        assert_eq!((e[0].line, e[0].key.as_str()), (8, "tool[0].summary"));
        assert!(
            e[0].message
                .contains("at character 16: unknown formatter `mony`"),
            "{}",
            e[0]
        );
        let ok = load("[[tool]]\nserver = \"s\"\nname = \"t\"\nclass = \"c\"\ntarget = \"x\"\nimpact = \"y\"\nreversal = \"none: n\"\nsummary = \"Refund {amount|money:USD}\"\n").unwrap();
        assert_eq!(
            ok[0].0.summary.as_ref().map(|t| t.source()),
            Some("Refund {amount|money:USD}")
        );
    }

    #[test]
    fn missing_field_is_a_located_parse_error() {
        let src = Source {
            path: "m.toml".into(),
            text: "[[tool]]\nserver = \"s\"\nname = \"t\"\n".into(),
        };
        let d = src.parse::<ManifestFile>().unwrap_err();
        assert!(d.line >= 1, "{d}");
        assert!(d.message.contains("missing field"), "{}", d.message);
    }

    #[test]
    fn unknown_key_is_refused() {
        let src = Source {
            path: "m.toml".into(),
            text: "[[tool]]\nserver = \"s\"\nname = \"t\"\nclas = \"c\"\n".into(),
        };
        let d = src.parse::<ManifestFile>().unwrap_err();
        assert_eq!(d.line, 4, "{d}");
    }
}
