//! Mail: approval requests and notices to people, over real SMTP (lettre) or into an outbox.
//!
//! Owns the transport (an enum, not a trait: SMTP or a directory of `.eml` files) and message
//! building (a subject is one line of at most [`SUBJECT_CHARS`] characters). It must never decide who gets mail or what a link is; the approval desk tells it.

use std::path::PathBuf;

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailConfig, MailTransport};

/// The longest subject line sent, in characters: whoever builds a subject keeps what matters
/// within it (an approval's cuts the agent's values first); anything longer is cut here.
pub const SUBJECT_CHARS: usize = 150;

/// A subject line as sent: one line, at most [`SUBJECT_CHARS`] characters, cut on a character
/// boundary with `…`.
pub fn subject_line(subject: &str) -> String {
    let one: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::summary::shorten(&one, SUBJECT_CHARS)
}

/// A message to one person.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
    /// Names the outbox file (e.g. `<approval>-s0-ann`), so a re-send after a crash overwrites.
    pub key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail to {to}: bad address: {message}")]
    Address { to: String, message: String },
    #[error("mail to {to}: {message}")]
    Send { to: String, message: String },
    #[error("smtp url `{url}`: {message}")]
    Config { url: String, message: String },
}

/// How a message left.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Smtp,
    Outbox(PathBuf),
}

#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: String,
    },
    Outbox {
        dir: PathBuf,
        from: String,
    },
}

impl Mailer {
    pub fn new(cfg: &MailConfig) -> Result<Mailer, MailError> {
        Ok(match &cfg.transport {
            MailTransport::Smtp(url) => Mailer::Smtp {
                transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| MailError::Config {
                        url: url.clone(),
                        message: e.to_string(),
                    })?
                    .build(),
                from: cfg.from.clone(),
            },
            MailTransport::Outbox(dir) => Mailer::Outbox {
                dir: dir.clone(),
                from: cfg.from.clone(),
            },
        })
    }

    pub fn is_outbox(&self) -> bool {
        matches!(self, Mailer::Outbox { .. })
    }

    pub async fn send(&self, mail: &Mail) -> Result<Sent, MailError> {
        let from = match self {
            Mailer::Smtp { from, .. } | Mailer::Outbox { from, .. } => from,
        };
        let addr = |s: &str| {
            s.parse()
                .map_err(|e: lettre::address::AddressError| MailError::Address {
                    to: mail.to.clone(),
                    message: format!("{s}: {e}"),
                })
        };
        let message = Message::builder()
            .from(addr(from)?)
            .to(addr(&mail.to)?)
            .subject(subject_line(&mail.subject))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| MailError::Send {
                to: mail.to.clone(),
                message: e.to_string(),
            })?;
        match self {
            Mailer::Smtp { transport, .. } => {
                transport.send(message).await.map_err(|e| MailError::Send {
                    to: mail.to.clone(),
                    message: e.to_string(),
                })?;
                Ok(Sent::Smtp)
            }
            Mailer::Outbox { dir, .. } => {
                let send_err = |e: std::io::Error| MailError::Send {
                    to: mail.to.clone(),
                    message: e.to_string(),
                };
                crate::private::dir(dir).map_err(send_err)?;
                let safe: String = mail
                    .key
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let path = dir.join(format!("{safe}.eml"));
                // 0600: a message carries its reader's own link
                crate::private::create(&path)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, &message.formatted()))
                    .map_err(send_err)?;
                Ok(Sent::Outbox(path))
            }
        }
    }
}

/// How one delivery went, as its ledger row records it: `Ok(via)` (`smtp`, or the `.eml`
/// path written), or the error.
pub fn delivered(sent: &Result<Sent, MailError>) -> Result<String, String> {
    match sent {
        Ok(Sent::Smtp) => Ok("smtp".to_string()),
        Ok(Sent::Outbox(path)) => Ok(path.display().to_string()),
        Err(e) => Err(e.to_string()),
    }
}
