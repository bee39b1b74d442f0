//! The arguments of `quarantine` and `drift`.

use clap::Subcommand;

use super::default_by;
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
        /// Who classifies (recorded).
        #[arg(long, default_value_t = default_by())]
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
        #[arg(long, default_value_t = default_by())]
        by: String,
    },
    /// Reject a held call: it never runs.
    Reject {
        #[command(flatten)]
        gate: GateArg,
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, default_value_t = default_by())]
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
        #[arg(long, default_value_t = default_by())]
        by: String,
    },
}
