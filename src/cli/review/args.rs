//! The arguments of `quarantine` and `drift`.

use clap::Subcommand;

use crate::cli::ConfigArg;

/// Where the running gate listens (default: the address `airlock serve` wrote beside the ledger).
#[derive(Debug, clap::Args)]
pub struct GateArg {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Base URL of the running gate's web listener, e.g. `http://127.0.0.1:8080`.
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// Calls held for review, grouped by tool, and tools no manifest describes.
    List {
        #[command(flatten)]
        gate: GateArg,
        #[arg(long)]
        json: bool,
        /// Print the review page's link for this person (valid 24 hours), to hand to them.
        #[arg(long = "as", value_name = "EMAIL")]
        for_whom: Option<String>,
    },
    /// Classify a tool: Airlock writes its manifest into the manifests directory.
    Classify {
        #[command(flatten)]
        gate: GateArg,
        /// The tool, as agents call it.
        tool: String,
        #[arg(long)]
        class: String,
        #[arg(long)]
        target: String,
        #[arg(long)]
        impact: String,
        /// `tool:NAME` or `none: why it cannot be undone`.
        #[arg(long)]
        reversal: String,
        /// Who classifies: a member of the policy's `[review] role` (recorded with `via: cli`
        /// and your OS user). Where that role signs in or needs a TOTP code, nothing is decided: the
        /// person's own page is printed. `--by` is the old name of this flag.
        #[arg(long = "as", alias = "by", value_name = "EMAIL")]
        by: String,
        /// Print the manifest (for a pull request) instead of writing it.
        #[arg(long)]
        print: bool,
    },
    /// Release a held call: it runs once.
    Release {
        #[command(flatten)]
        gate: GateArg,
        id: String,
        /// Who decides: a member of the role the call needs (recorded with `via: cli` and your
        /// OS user). Where that role signs in or needs a TOTP code, nothing is decided: the
        /// person's own page is printed. `--by` is the old name of this flag.
        #[arg(long = "as", alias = "by", value_name = "EMAIL")]
        by: String,
    },
    /// Reject a held call: it never runs.
    Reject {
        #[command(flatten)]
        gate: GateArg,
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Who decides: a member of the role the call needs (recorded with `via: cli` and your
        /// OS user). Where that role signs in or needs a TOTP code, nothing is decided: the
        /// person's own page is printed. `--by` is the old name of this flag.
        #[arg(long = "as", alias = "by", value_name = "EMAIL")]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// Scopes where a rate limit paused autopilot.
    List {
        #[command(flatten)]
        gate: GateArg,
        #[arg(long)]
        json: bool,
    },
    /// Resume autopilot for a scope (its counters start afresh).
    Resume {
        #[command(flatten)]
        gate: GateArg,
        /// The scope, as `drift list` shows it, e.g. `tool:shop/refund_order@agent`.
        scope: String,
        /// Who decides: a member of the role the call needs (recorded with `via: cli` and your
        /// OS user). Where that role signs in or needs a TOTP code, nothing is decided: the
        /// person's own page is printed. `--by` is the old name of this flag.
        #[arg(long = "as", alias = "by", value_name = "EMAIL")]
        by: String,
    },
}
