//! Integration tests: the real `airlock` binary, driven as its users drive it — an MCP client over
//! stdio, the CLI, and tool servers nobody here wrote.

mod agents;
mod approvals;
mod audit;
mod browser;
mod cli;
mod conditions;
mod conformance;
mod demo;
mod drift;
mod gate;
mod held_replicas;
mod http;
mod inspector;
mod live;
mod ops;
mod outcomes;
mod peers;
mod protocol;
mod relay;
mod remote;
mod replicas;
mod review;
mod rugpull;
mod smtp;
mod store;
mod support;
mod upgrade;
