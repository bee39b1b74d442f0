//! Airlock: an MCP tool-gating server. Agents connect to Airlock as an MCP server; Airlock wraps
//! their tool servers and decides, before each `tools/call` runs, whether it may.
//!
//! Code map (the path of a call, top to bottom):
//! - [`mcp::upstream`] receives `tools/call` from the agent and hands a [`gate::GateCall`] to the gate.
//! - [`gate`] sequences effects: resolve → [`decide`] → durable [`ledger`] rows → forward through
//!   [`mcp::downstream`] → outcome row → reply.
//! - [`decide`] is the pure core: call + [`manifest`] + [`policy`] + context → verdict with reasons.
//! - [`config`] loads `airlock.toml`, manifests and the policy into a checked [`config::Setup`];
//!   [`diag`] locates every problem by file, line and key.
//! - [`ledger`] is the append-only, hash-chained record (a redb file, or PostgreSQL shared by
//!   replicas, see [`replica`]); [`canonical`] gives the bytes it hashes.
//!
//! Invariants: `decide` does no I/O; only `mcp` imports rmcp; only `ledger` touches redb or PostgreSQL; nothing is
//! forwarded before its proposal and verdict are durable; unknown tools never run.

pub mod approval;
pub mod auth;
pub mod authority;
pub mod canonical;
pub mod channel;
pub mod condition;
pub mod config;
pub mod decide;
pub mod desk;
pub mod diag;
pub mod drift;
pub mod envelope;
pub mod forward;
pub mod gate;
pub mod identity;
pub mod instant;
pub mod ledger;
pub mod live;
pub mod mail;
pub mod manifest;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod pins;
pub mod policy;
pub mod private;
pub mod quarantine;
pub mod redact;
pub mod refusals;
pub mod replay;
pub mod replica;
pub mod retry;
pub mod reviewer;
pub mod schema;
pub mod seal;
pub mod shown;
pub mod signing;
pub mod stats;
pub mod summary;
pub mod web;
