//! The integration suite again, every ledger in its own PostgreSQL database
//! (`$AIRLOCK_TEST_PG_URL`, which `scripts/test` sets), plus what only a shared ledger has:
//! the backend's own behaviour (`store`), and several replicas on one database (`replicas`,
//! `held_replicas`). Not part of a plain `cargo test` (`test = false` in Cargo.toml): run it with
//! `scripts/test`, which starts the database.

include!("suite.rs");
mod held_replicas;
mod replicas;
mod store;
