//! The demo's directory: the setup `airlock demo` writes from copies embedded in the binary (the
//! repository's policy and shop manifests, minus one tool so a call to it is held), its config,
//! and the rule for a directory that exists already.
//!
//! It never writes outside that directory, and never writes into a non-empty directory an
//! earlier `airlock demo` did not make.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The repository's policy, as shipped.
const POLICY: &str = include_str!("../../../policies/default.toml");
/// The repository's manifests for the demo shop.
const MANIFESTS: &str = include_str!("../../../tool-manifests/demo_shop.toml");
/// The shop tool the demo leaves without a manifest: the shop serves it, so calling it shows a
/// held call and its review.
pub(super) const HELD_TOOL: &str = "echo";
/// Marks a directory `airlock demo` made (and may reuse).
const MARKER: &str = ".airlock-demo";

/// The demo's files.
pub(super) struct DemoDir {
    pub(super) dir: PathBuf,
    pub(super) config: PathBuf,
    pub(super) outbox: PathBuf,
    pub(super) gate_log: PathBuf,
    /// Whether an earlier demo's ledger and keys were kept.
    pub(super) reused: bool,
}

impl DemoDir {
    /// What is where, for the reader.
    pub(super) fn describe(&self) -> String {
        let d = self.dir.display();
        let how = if self.reused {
            "reused: the ledger of earlier runs is kept, this run appends to it"
        } else {
            "new"
        };
        format!(
            "Files in {d} ({how}):\n  airlock.toml, tool-manifests/, policies/  the setup (the shop is built into airlock)\n  airlock.redb                              the ledger\n  airlock.redb.checkpoints/                 signed checkpoints of it (C2SP notes)\n  outbox/                                   approval mail (.eml), as no SMTP server is set\n  airlock.key, airlock.signing.key          link and ledger signing keys (secret)\n  airlock.seal.key, airlock.seal.chain      seal redacted values until their call ends (secret)\n  gate.log                                  what `airlock serve` logged\n"
        )
    }
}

/// Write the demo setup into `dir` (made if missing; reused if an earlier demo made it).
pub(super) fn prepare(dir: &Path, bind: &str) -> anyhow::Result<DemoDir> {
    let reused = dir.join(MARKER).exists();
    if !reused && dir.exists() && !is_empty(dir)? {
        bail!(
            "{} exists and was not made by `airlock demo`; pass --dir with a new directory",
            dir.display()
        );
    }
    for sub in ["tool-manifests", "policies", "outbox"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
    }
    write(
        &dir.join(MARKER),
        "made by `airlock demo`; it reuses this directory\n",
    )?;
    write(&dir.join("policies/default.toml"), POLICY)?;
    write(&dir.join("tool-manifests/demo_shop.toml"), &manifests()?)?;
    write(&dir.join("airlock.toml"), &config(bind))?;
    Ok(DemoDir {
        dir: dir.to_path_buf(),
        config: dir.join("airlock.toml"),
        outbox: dir.join("outbox"),
        gate_log: dir.join("gate.log"),
        reused,
    })
}

fn is_empty(dir: &Path) -> anyhow::Result<bool> {
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    Ok(entries.next().is_none())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The shop's manifests without the one for [`HELD_TOOL`].
fn manifests() -> anyhow::Result<String> {
    let mut file: toml::Table =
        toml::from_str(MANIFESTS).context("the embedded manifests do not parse")?;
    if let Some(toml::Value::Array(tools)) = file.get_mut("tool") {
        tools.retain(|t| t.get("name").and_then(toml::Value::as_str) != Some(HELD_TOOL));
    }
    let body = toml::to_string(&file).context("cannot write the demo's manifests")?;
    Ok(format!(
        "# The demo shop's manifests (the Airlock repository's tool-manifests/demo_shop.toml), written\n# by `airlock demo` without `{HELD_TOOL}`: the shop serves it, no manifest describes it, so a call\n# to it is held for review.\n\n{body}"
    ))
}

/// The demo's `airlock.toml`.
fn config(bind: &str) -> String {
    let bind = toml::Value::String(bind.to_string());
    format!(
        r#"# Written by `airlock demo`: the demo shop, built into the airlock binary, behind the gate.
# Any airlock command reads it with --config, e.g. `airlock map --config <this file>`.

[gate]
manifests = "tool-manifests"
policies  = "policies"
ledger    = "airlock.redb"
actor     = "agent:demo"
max_wait  = "30m"              # a call waits this long for a person before it is answered "pending"

[mail]
from   = "airlock@example.com"
outbox = "outbox"              # no SMTP server: each mail is an .eml file here

[web]
bind = {bind}

[[server]]
name    = "shop"
builtin = "demo-shop"          # started from the airlock binary itself
prefix  = ""                   # its tools under their own names
"#
    )
}
