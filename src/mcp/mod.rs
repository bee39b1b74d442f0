//! MCP: the only module that speaks the Model Context Protocol (and the only one that imports rmcp).
//!
//! - [`downstream`]: Airlock as a client of its tool servers — start them, list their tools, forward
//!   allowed calls.
//! - [`upstream`]: Airlock as a server to the agent — list the gated tools, turn every `tools/call`
//!   into a [`crate::gate::GateCall`] and the gate's reply back into an MCP result.
//! - [`http`]: the same server over streamable HTTP at `/mcp`, for agents with a bearer token.
//! - [`relay`]: what a tool server says to agents — progress and log messages about a call, its
//!   questions (sampling, elicitation, roots), and list and resource changes — routed back.
//! - [`mrtr`]: those questions to an agent on 2026-07-28, in the call's answer (multi round-trip
//!   requests): calls parked between rounds, retries matched to them before the gate.
//! - [`agents`]: the connected agents, what each listens for, and their resource subscriptions.
//! - `order`: a call's progress and log messages reach its agent before its result.
//! - `passthrough`: resources and prompts from the tool servers (reads; recorded, not gated).
//! - [`demo_shop`]: the fake shop the demo and the tests put behind the gate (a tool server).
//! - [`client`]: a plain MCP client of a child over stdio, answering in JSON (the demo's agent).
//!
//! It must never decide whether a call runs (that is the gate and the decision core), and it must
//! never let an rmcp type escape into the rest of the crate: everything crossing this boundary is a
//! domain type or plain JSON.

pub mod agents;
pub mod client;
pub mod demo_shop;
pub mod downstream;
pub mod http;
pub mod mrtr;
mod order;
mod passthrough;
pub mod relay;
pub mod stdio;
pub mod upstream;
