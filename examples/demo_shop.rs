//! `demo_shop`: the fake shop of the demo as a stand-alone MCP tool server (stdio, or `--http`).
//! The shop itself is `airlock::mcp::demo_shop`, which `airlock demo-shop` and
//! `builtin = "demo-shop"` also run; this example gives tests and `bench/run` a binary of its own.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "demo_shop",
    about = "Fake in-memory shop served as an MCP tool server on stdio"
)]
struct Cli {
    #[command(flatten)]
    options: airlock::mcp::demo_shop::Options,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    airlock::mcp::demo_shop::run(Cli::parse().options).await?;
    Ok(())
}
