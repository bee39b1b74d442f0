//! The `airlock` binary: parse the command line, run it, turn errors into exit codes. Nothing else.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // Logs go to stderr: stdout carries MCP for `serve` and data for the other commands.
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "info,rmcp=warn,refinery_core=warn,postgres=warn,tokio_postgres=warn",
                )
            }),
        )
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
