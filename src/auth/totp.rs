//! Second factors: TOTP (RFC 6238) codes, enrolled per approver, checked with the decision.
//!
//! Owns the secrets file (`<link key>.totp`, 0600, written only by `airlock approver enroll`),
//! the used-code state (`<link key>.totp-used`, 0600, written only by `serve`), and the pure
//! check: 6 digits, 30-second steps, one step either side; a code is used once (each approver's
//! last accepted step is kept, and no step at or before it is accepted again); five failures
//! lock that approver out of that decision. The state is written (atomically, synced) before a
//! check answers, so after a crash a used code is still used and a lockout still holds. It must
//! never write a secret anywhere but its file, nor into the ledger or a log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, TOTP};

/// Wrong codes that lock an approver out of one decision.
pub const MAX_FAILURES: u32 = 5;
const STEP: u64 = 30;
const DIGITS: usize = 6;
/// Failure counts older than this are forgotten (their decisions are long closed).
const KEEP_FAILURES_SECS: i64 = 30 * 24 * 3600;

/// Who has enrolled: address → base32 secret.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Secrets {
    pub approvers: BTreeMap<String, Enrolled>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolled {
    pub secret: String,
    pub enrolled_at: String,
}

/// What a check remembers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Used {
    /// Per approver: the last time step whose code was accepted.
    pub last_step: BTreeMap<String, u64>,
    /// Per `decision approver`: failures so far and when the last one happened.
    pub failures: BTreeMap<String, (u32, i64)>,
}

/// Why a code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no code was entered: enter the 6-digit code from your authenticator app")]
    Missing,
    #[error(
        "{0} has no authenticator enrolled: ask the operator to run `airlock approver enroll {0}` and scan its code, then decide again"
    )]
    NotEnrolled(String),
    #[error(
        "the code is wrong ({left} tries left): enter the current 6-digit code from your authenticator app"
    )]
    Wrong { left: u32 },
    #[error(
        "that code was already used ({left} tries left): wait for the next code in your authenticator app and enter it"
    )]
    Reused { left: u32 },
    #[error(
        "five wrong codes were entered for this request, so you can no longer decide it: ask another member of the role to decide"
    )]
    Locked,
    #[error("the code could not be checked ({0}), so nothing was decided: tell the operator")]
    Broken(String),
}

impl Refusal {
    /// Whether this refusal counts toward the lockout.
    fn counts(&self) -> bool {
        matches!(self, Refusal::Wrong { .. } | Refusal::Reused { .. })
    }
}

fn totp(secret: &[u8], email: &str) -> Result<TOTP, Refusal> {
    let account = email.replace(':', "");
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        0,
        STEP,
        secret.to_vec(),
        Some("Airlock".into()),
        account,
    )
    .map_err(|e| Refusal::Broken(format!("unusable secret: {e}")))
}

/// Check `code` for `email` deciding `decision` at `now` (unix seconds). Pure: the outcome is
/// folded into `used` (accepted step, or one more failure), which the caller must persist
/// before acting on the answer. Returns the accepted time step.
pub fn check(
    used: &mut Used,
    secret: &[u8],
    decision: &str,
    email: &str,
    code: &str,
    now: i64,
) -> Result<u64, Refusal> {
    let email = email.to_ascii_lowercase();
    let key = format!("{decision} {email}");
    let failures = used.failures.get(&key).map_or(0, |f| f.0);
    if failures >= MAX_FAILURES {
        return Err(Refusal::Locked);
    }
    let code = code.trim();
    if code.is_empty() {
        return Err(Refusal::Missing);
    }
    let t = totp(secret, &email)?;
    let now_step = u64::try_from(now).unwrap_or(0) / STEP;
    let matched = (now_step.saturating_sub(1)..=now_step + 1)
        .find(|s| code.len() == DIGITS && t.check(code, s * STEP));
    let left = MAX_FAILURES - failures - 1;
    let outcome = match matched {
        None => Err(Refusal::Wrong { left }),
        Some(s) if used.last_step.get(&email).is_some_and(|last| s <= *last) => {
            Err(Refusal::Reused { left })
        }
        Some(s) => Ok(s),
    };
    used.failures
        .retain(|_, (_, at)| now - *at <= KEEP_FAILURES_SECS);
    match outcome {
        Ok(s) => {
            used.last_step.insert(email, s);
            Ok(s)
        }
        Err(r) if r.counts() => {
            used.failures.insert(key, (failures + 1, now));
            Err(if failures + 1 >= MAX_FAILURES {
                Refusal::Locked
            } else {
                r
            })
        }
        Err(r) => Err(r),
    }
}

/// The secrets file beside the link key.
pub fn secrets_path(key_path: &Path) -> PathBuf {
    key_path.with_extension("totp")
}

/// The used-code state beside the link key.
pub fn used_path(key_path: &Path) -> PathBuf {
    key_path.with_extension("totp-used")
}

/// `serve`'s view of the second factors: secrets read at each check (so an enrolment takes
/// effect at once), the used-code state kept in memory and written through.
#[derive(Debug)]
pub struct Store {
    secrets: PathBuf,
    used_path: PathBuf,
    used: Mutex<Used>,
}

impl Store {
    pub fn open(key_path: &Path) -> Result<Store, String> {
        let used_path = used_path(key_path);
        let used = match std::fs::read(&used_path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| format!("{}: not a TOTP state file ({e})", used_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Used::default(),
            Err(e) => return Err(format!("{}: {e}", used_path.display())),
        };
        Ok(Store {
            secrets: secrets_path(key_path),
            used_path,
            used: Mutex::new(used),
        })
    }

    /// Check a code and record the outcome durably before answering. Blocking (file I/O).
    pub fn verify(
        &self,
        decision: &str,
        email: &str,
        code: &str,
        now: i64,
    ) -> Result<u64, Refusal> {
        let secret = read_secrets(&self.secrets)
            .map_err(Refusal::Broken)?
            .approvers
            .get(&email.to_ascii_lowercase())
            .map(|e| totp_rs::Secret::Encoded(e.secret.clone()).to_bytes())
            .ok_or_else(|| Refusal::NotEnrolled(email.to_string()))?
            .map_err(|e| Refusal::Broken(format!("unreadable secret: {e:?}")))?;
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = used.clone();
        let outcome = check(&mut next, &secret, decision, email, code, now);
        if next != *used {
            let bytes = serde_json::to_vec(&next).unwrap_or_default();
            write_private(&self.used_path, &bytes).map_err(|e| {
                Refusal::Broken(format!(
                    "cannot record the code's use in {}: {e}",
                    self.used_path.display()
                ))
            })?;
            *used = next;
        }
        outcome
    }
}

fn read_secrets(path: &Path) -> Result<Secrets, String> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| format!("{}: not a TOTP secrets file ({e})", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Secrets::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// A new enrolment: the `otpauth://` URI for the app, and the file the secret went to.
#[derive(Debug)]
pub struct Enrolment {
    pub uri: String,
    pub file: PathBuf,
}

/// Enrol `email`: a fresh 160-bit secret from the OS CSPRNG, kept in the secrets file beside
/// the link key (0600). An address already enrolled is kept unless `replace`.
pub fn enroll(key_path: &Path, email: &str, replace: bool, now: &str) -> Result<Enrolment, String> {
    let email = email.trim().to_ascii_lowercase();
    if !email.contains('@') || email.contains(char::is_whitespace) {
        return Err(format!("`{email}` is not an email address"));
    }
    let file = secrets_path(key_path);
    let mut secrets = read_secrets(&file)?;
    if secrets.approvers.contains_key(&email) && !replace {
        return Err(format!(
            "{email} is already enrolled (in {}): pass --replace to give them a new secret (the old app entry stops working)",
            file.display()
        ));
    }
    let mut raw = [0u8; 20];
    getrandom::fill(&mut raw).map_err(|e| format!("no randomness: {e}"))?;
    let t = totp(&raw, &email).map_err(|e| e.to_string())?;
    secrets.approvers.insert(
        email,
        Enrolled {
            secret: t.get_secret_base32(),
            enrolled_at: now.to_string(),
        },
    );
    let bytes = serde_json::to_vec_pretty(&secrets).unwrap_or_default();
    write_private(&file, &bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(Enrolment {
        uri: t.get_url(),
        file,
    })
}

/// The temporary file a write of `path` goes through: named for the file itself and this
/// process, so the secrets file and the used-code file (and two writers) never share one.
fn tmp_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Replace `path` with `bytes`, readable by the owner only: a synced temporary file renamed over
/// it, then the directory synced, so a crash leaves the old or the new content, never neither.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = tmp_path(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
