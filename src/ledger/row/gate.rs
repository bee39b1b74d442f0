//! Gate-wide rows (their `call_id` is empty): starts, policy loads, the rug-pull guard's
//! findings, tool lists, and the ledger's own signature and prune rows.

use serde::{Deserialize, Serialize};

/// `gate_started`: a gate started serving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateStarted {
    pub policy_version: String,
    pub policy_file: String,
    pub actor: String,
    pub servers: Vec<ServerState>,
    /// Every exposed tool.
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub web: WebAddress,
    /// `smtp`, or the outbox directory.
    #[serde(default)]
    pub mail: String,
    #[serde(default)]
    pub airlock_version: String,
    /// The ledger signing key's public half (hex).
    #[serde(default)]
    pub signing_key: String,
    /// The program that wrote the ledger, when it was not a gate (`examples/gen_ledger`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_by: Option<String>,
}

/// A tool server's state at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerState {
    pub name: String,
    pub status: String,
}

/// Where the pages are served.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebAddress {
    pub bound: String,
    pub public_url: String,
}

/// `policy_loaded`: an edited setup swapped in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyLoaded {
    pub version: String,
    pub previous_version: String,
    pub file: String,
    /// Manifests loaded.
    pub manifests: u64,
}

/// `policy_rejected`: an edited setup rejected; the active one stays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRejected {
    pub active_version: String,
    pub errors: Vec<String>,
}

/// `tool_seen`: a tool seen for the first time; its definition is trusted from now on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSeen {
    /// `server/name`.
    pub tool: String,
    pub hash: String,
}

/// `tool_changed`: a tool's definition differs from the trusted (or pinned) one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolChanged {
    pub tool: String,
    pub was: String,
    pub now: String,
    /// The trusted hash is the manifest's pin.
    pub pinned: bool,
}

/// `tool_accepted`: a definition trusted because the manifest pins it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolAccepted {
    pub tool: String,
    pub hash: String,
    /// The hash trusted before (`null`: none).
    pub was: Option<String>,
    /// `manifest pin`.
    pub by: String,
}

/// `tools_relisted`: tool servers listed again; every exposed tool after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolsRelisted {
    pub servers: Vec<String>,
    pub tools: Vec<String>,
}

/// `signature`: the writer's Ed25519 signature over the head (`airlock.ledger.v1.sig\0` ‖
/// head_seq ‖ head), covering every row up to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub head_seq: u64,
    /// Hex.
    pub head: String,
    /// Rows of signed calls this signature was written for.
    pub signed_rows: u64,
    /// The public key (hex).
    pub key: String,
    /// Hex.
    pub signature: String,
}

/// `pruned`: rows through `through` removed behind a signed tombstone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pruned {
    pub through: u64,
    /// The hash of row `through` (hex).
    pub head: String,
    pub rows_removed: u64,
    /// The removed rows' times (RFC 3339).
    pub oldest: Option<String>,
    pub newest: Option<String>,
    pub tombstone_signature: String,
}
