//! `[ledger]`: where checkpoints go besides their directory — a witness off the machine, an
//! auditor's mailbox — and the name they carry. Compiled together with `[gate] checkpoints` and
//! `checkpoint_every` into the checkpoint writer's [`Settings`].

use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;

use super::ConfigFile;
use crate::diag::{Diagnostic, Source};
use crate::ledger::checkpoint::{Settings, dir};

/// `[ledger]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSection {
    /// An `http://` URL that receives every checkpoint the gate writes, as a POST of the signed
    /// note (retried with back-off; failures show in `/readyz` and the log). Put it on another
    /// machine: it is what catches a ledger rolled back together with its checkpoint directory.
    /// https is not built in: reach an https witness through a local TLS proxy.
    #[schemars(with = "Option<String>")]
    pub witness: Option<Spanned<String>>,
    /// An auditor's address that is mailed the newest checkpoint, at most once per `mail_every`
    /// and at every clean stop (through `[mail]`).
    #[schemars(with = "Option<String>")]
    pub mail_to: Option<Spanned<String>>,
    /// How often at most the auditor is mailed a checkpoint, e.g. `1h`.
    pub mail_every: String,
    /// The checkpoints' origin line and key name, e.g. `example.com/airlock/prod` (no spaces or
    /// `+`). Default: `airlock/` and the first 16 hex characters of the signing key.
    #[schemars(with = "Option<String>")]
    pub origin: Option<Spanned<String>>,
}

impl Default for LedgerSection {
    fn default() -> Self {
        LedgerSection {
            witness: None,
            mail_to: None,
            mail_every: "1h".into(),
            origin: None,
        }
    }
}

/// The checkpoint settings: `[gate] checkpoints` (default: beside the ledger file,
/// `<ledger>.checkpoints`; `checkpoints` beside this file for a PostgreSQL ledger) and
/// `checkpoint_every`, with `[ledger]`.
pub(super) fn compile(
    src: &Source,
    dir: &Path,
    file: &ConfigFile,
    errors: &mut Vec<Diagnostic>,
) -> Settings {
    let (gate, section, postgres) = (&file.gate, &file.ledger, file.store.is_some());
    let checkpoints = match &gate.checkpoints {
        Some(d) => dir.join(d),
        None if postgres => dir.join("checkpoints"),
        None => dir::beside(&dir.join(&gate.ledger)),
    };
    let mut duration = |key: &str, value: &str, default: u64| {
        crate::policy::parse_duration(value).unwrap_or_else(|msg| {
            errors.push(src.error(None, key, msg));
            Duration::from_secs(default)
        })
    };
    let every = duration("gate.checkpoint_every", &gate.checkpoint_every, 60);
    let mail_every = duration("ledger.mail_every", &section.mail_every, 3600);
    let mut checked =
        |key: &str, value: &Option<Spanned<String>>, check: fn(&str) -> Result<(), String>| {
            let v = value.as_ref()?;
            match check(v.get_ref()) {
                Ok(()) => Some(v.get_ref().clone()),
                Err(msg) => {
                    errors.push(src.error(Some(v.span()), key, msg));
                    None
                }
            }
        };
    Settings {
        dir: checkpoints,
        every,
        origin: checked("ledger.origin", &section.origin, check_origin),
        witness: checked("ledger.witness", &section.witness, check_witness),
        mail_to: checked("ledger.mail_to", &section.mail_to, check_mail_to),
        mail_every,
    }
}

fn check_origin(o: &str) -> Result<(), String> {
    if o.is_empty()
        || o.len() > 255
        || o.chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
    {
        return Err(format!(
            "`{o}` cannot be a checkpoint origin: 1-255 characters without spaces or `+`, e.g. `example.com/airlock`"
        ));
    }
    Ok(())
}

fn check_witness(u: &str) -> Result<(), String> {
    if u.starts_with("https://") {
        return Err("https is not built in: reach the witness through a local TLS proxy (http://127.0.0.1:PORT/…), or over http (a checkpoint is signed and holds no secret)".into());
    }
    let Some(rest) = u.strip_prefix("http://") else {
        return Err(format!(
            "`{u}` must be an http:// URL, e.g. http://witness.example.com/airlock"
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("`{u}` names no host"));
    }
    if authority.contains('@') {
        return Err("credentials in the URL would be shown in the log: the witness needs none (a checkpoint is signed)".into());
    }
    Ok(())
}

fn check_mail_to(a: &str) -> Result<(), String> {
    if !a.contains('@') || a.chars().any(char::is_whitespace) {
        return Err(format!("`{a}` is not an email address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_origin, check_witness};

    #[test]
    fn witness_urls_and_origins_are_checked() {
        assert!(check_witness("http://witness.example.com:8080/airlock").is_ok());
        assert!(
            check_witness("https://w.example.com/")
                .unwrap_err()
                .contains("TLS proxy")
        );
        assert!(check_witness("ftp://w").unwrap_err().contains("http://"));
        assert!(
            check_witness("http://u:p@w/")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(check_witness("http:///x").unwrap_err().contains("no host"));
        assert!(check_origin("example.com/airlock").is_ok());
        assert!(check_origin("a b").is_err());
        assert!(check_origin("a+b").is_err());
        assert!(check_origin("").is_err());
    }
}
