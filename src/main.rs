//! The `airlock` binary: parse the command line, run it, turn errors into exit codes. Nothing else.

mod cli;

use std::process::ExitCode;

use clap::Parser;

// mimalloc, not the system allocator: a call's JSON and rmcp's messages allocate many small
// short-lived buffers across tokio's threads (BENCHMARKS.md, issue 20: measured A/B).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `AIRLOCK_LOG`, with rmcp held at `info` unless it names rmcp itself: rmcp's debug lines carry
/// whole MCP messages, redacted arguments included.
fn log_filter() -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    let asked = std::env::var("AIRLOCK_LOG").ok();
    let directives = match asked.as_deref() {
        Some(v) if v.contains("rmcp") => v.to_string(),
        Some(v) => format!("{v},rmcp=info"),
        None => "info,rmcp=warn,refinery_core=warn,postgres=warn,tokio_postgres=warn".to_string(),
    };
    EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"))
}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // Logs go to stderr: stdout carries MCP for `serve` and data for the other commands.
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(log_filter())
        .with_ansi(false);
    let json = args.log_format == cli::LogFormat::Json;
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            if json {
                tracing::error!(error = %format!("{e:#}"), "airlock stopped with an error");
            } else {
                eprintln!("airlock: {e:#}");
            }
            ExitCode::from(2)
        }
    }
}
