// The test modules both suites run: `integration` (main.rs, every ledger a redb file) and
// `integration_pg` (pg.rs, every ledger a PostgreSQL database). Each root adds the modules only
// it can run, so no test passes in a suite where it tests nothing.
mod agents;
mod approvals;
mod audit;
mod authority;
mod browser;
mod cancel;
mod checkpoints;
mod cli;
mod conditions;
mod conformance;
mod display;
mod drift;
mod gate;
mod http;
mod inspector;
mod limits;
mod live;
mod oauth;
mod ops;
mod outcomes;
mod peers;
mod protocol;
mod questions;
mod relay;
mod remote;
mod review;
mod retries;
mod redaction;
mod review_signin;
mod rugpull;
mod signin;
mod smtp;
mod support;
mod tssdk;
mod versions;
