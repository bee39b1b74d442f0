//! `airlock approver enroll EMAIL`: give an approver a TOTP second factor.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

use super::ConfigArg;
use airlock::auth::totp;
use airlock::config::load_config;

#[derive(Debug, Subcommand)]
pub(crate) enum ApproverCommand {
    /// Enrol an approver's authenticator app: print its `otpauth://` URI and QR code, and keep
    /// the secret in a 0600 file beside the link key (never in the ledger).
    Enroll {
        #[command(flatten)]
        config: ConfigArg,
        /// The approver's address, as listed in the policy's roles.
        email: String,
        /// Give an address already enrolled a new secret (its old app entry stops working).
        #[arg(long)]
        replace: bool,
    },
}

pub(crate) fn run(command: ApproverCommand) -> anyhow::Result<ExitCode> {
    match command {
        ApproverCommand::Enroll {
            config,
            email,
            replace,
        } => enroll(&config.config, &email, replace),
    }
}

fn enroll(config: &Path, email: &str, replace: bool) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config).map_err(super::report)?;
    let now = airlock::instant::rfc3339(&airlock::instant::now());
    let e = totp::enroll(&cfg.key_path, email, replace, &now).map_err(anyhow::Error::msg)?;
    let qr = QrCode::new(e.uri.as_bytes())
        .map(|c| c.render::<Dense1x2>().quiet_zone(true).build())
        .unwrap_or_default();
    println!(
        "Enrolled {who}. The secret is in {file} (mode 0600, never in the ledger).\n\
         Scan the code with the approver's authenticator app, or enter this URI:\n\n{uri}\n\n{qr}\n\
         Decisions of classes or roles with `second_factor = \"totp\"` now ask {who} for a code.",
        who = email.trim().to_ascii_lowercase(),
        file = e.file.display(),
        uri = e.uri,
    );
    Ok(ExitCode::SUCCESS)
}
