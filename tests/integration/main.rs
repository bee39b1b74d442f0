//! Integration tests: the real `airlock` binary, driven as its users drive it — an MCP client over
//! stdio, the CLI, and tool servers nobody here wrote. Every ledger is a redb file here;
//! `pg.rs` (the `integration_pg` target) runs the same tests on PostgreSQL.
//!
//! Tests that need a peer (aiosmtpd, the MCP SDKs, chromium, …) are `#[ignore]`d in a plain
//! `cargo test`; `scripts/test` installs every peer and runs them too.

include!("suite.rs");
mod demo;
mod rollback;
mod upgrade;
