//! The checkpoint directory: one file per checkpoint, `checkpoint-<rows>-<unix seconds>.txt`,
//! each written whole (a temporary file, synced, renamed). The newest [`KEEP`] are kept: each one
//! vouches for every row before it, so older ones add nothing the newest does not say. [`sort`]
//! reads it as `serve` and `ledger verify` hold a ledger to it: what is not a checkpoint signed
//! by the ledger's key proves nothing and is skipped, named; it must never drop a checkpoint
//! that is validly signed.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{Saved, SignedNote};
use crate::signing::Public;

/// Checkpoint files kept in the directory.
pub const KEEP: usize = 100;
/// Larger files are not checkpoints (a note of ours is a few hundred bytes).
const MAX_FILE: u64 = 64 * 1024;

/// The default directory: beside a ledger file, `<file>.checkpoints`.
pub fn beside(ledger_file: &Path) -> PathBuf {
    let mut name = ledger_file.file_name().unwrap_or_default().to_os_string();
    name.push(".checkpoints");
    ledger_file.with_file_name(name)
}

/// (rows, unix seconds) from a checkpoint file's name.
fn named(path: &Path) -> Option<(u64, i64)> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix("checkpoint-")?.strip_suffix(".txt")?;
    let (rows, stamp) = rest.split_once('-')?;
    Some((rows.parse().ok()?, stamp.parse().ok()?))
}

/// Write `note` into `dir` (created if missing) as taken at `unix` seconds, then remove the
/// oldest files beyond [`KEEP`]; returns the file written.
pub fn write(dir: &Path, note: &SignedNote, unix: i64) -> std::io::Result<PathBuf> {
    crate::private::dir(dir)?;
    let path = dir.join(format!("checkpoint-{}-{unix}.txt", note.size));
    let tmp = dir.join(format!(".checkpoint-{}.tmp", uuid::Uuid::new_v4()));
    let mut f = crate::private::create(&tmp)?;
    f.write_all(&note.bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    // the rename is durable once the directory is
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    if let Err(e) = prune(dir, KEEP) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove old checkpoint files");
    }
    Ok(path)
}

/// Remove all but the `keep` newest checkpoint files (by rows, then time).
fn prune(dir: &Path, keep: usize) -> std::io::Result<()> {
    let mut files: Vec<((u64, i64), PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| named(&p).map(|n| (n, p)))
        .collect();
    if files.len() <= keep {
        return Ok(());
    }
    files.sort();
    for (_, p) in &files[..files.len() - keep] {
        std::fs::remove_file(p)?;
    }
    Ok(())
}

/// Every checkpoint file in `dir` (named `checkpoint-*.txt`), oldest first, each read or with
/// the reason it cannot be; a missing directory has none.
pub fn read(dir: &Path) -> std::io::Result<Vec<(PathBuf, Result<Saved, Unread>)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("checkpoint-") && n.ends_with(".txt"))
        })
        .collect();
    files.sort_by_key(|p| (named(p), p.clone()));
    Ok(files
        .into_iter()
        .map(|p| {
            let read = read_file(&p);
            (p, read)
        })
        .collect())
}

/// Why a file is not read as a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum Unread {
    /// It could not be read: it may be a checkpoint nobody can see.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// It was read, and is not a checkpoint (not a file, too large, or not either format).
    #[error("{0}")]
    NotACheckpoint(String),
}

/// One checkpoint file, in either format.
pub fn read_file(path: &Path) -> Result<Saved, Unread> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Unread::NotACheckpoint("not a regular file".into()));
    }
    if meta.len() > MAX_FILE {
        return Err(Unread::NotACheckpoint(format!(
            "{} bytes is too large for a checkpoint",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path)?;
    Saved::parse(&bytes).map_err(Unread::NotACheckpoint)
}

/// The checkpoint directory sorted by what its files can prove.
#[derive(Debug, Default)]
pub struct Sorted {
    /// Checkpoints signed by the trusted key, oldest first (without a trusted key: every one that
    /// reads, its signature left for the caller to report as unchecked).
    pub checkpoints: Vec<(PathBuf, Saved)>,
    /// Files that prove nothing: not a checkpoint, or not signed by the trusted key.
    pub skipped: Vec<Skipped>,
}

/// A file in the checkpoint directory that proves nothing about the ledger, and why; its
/// sentence names it and says what to do (a log line, a warning of `ledger verify`).
#[derive(Debug, thiserror::Error)]
pub enum Skipped {
    #[error(
        "{file} in the checkpoint directory is not a checkpoint ({why}): it proves nothing, so it is skipped; move it out of {dir} unless it belongs there"
    )]
    NotACheckpoint {
        file: String,
        why: String,
        dir: String,
    },
    #[error(
        "checkpoint {file} is not signed by this ledger's key (or was altered): it proves nothing, so it is skipped. If the signing key was replaced, move the old key's checkpoints out of {dir}; if not, someone put it there or changed it: keep it, and find out who"
    )]
    NotSigned { file: String, dir: String },
}

impl Skipped {
    /// The file it names.
    pub fn file(&self) -> &str {
        match self {
            Skipped::NotACheckpoint { file, .. } | Skipped::NotSigned { file, .. } => file,
        }
    }
}

/// Read `dir` and keep what can prove something: a checkpoint signed by `trusted` (without one,
/// any that reads; a v1 file must still carry a valid signature by the key it names). A file
/// that is not a checkpoint, or whose signature fails, is skipped with its reason: it proves
/// nothing, and whoever could put it there could as well have removed the real ones. A file
/// that cannot be read at all is an error (it may be a checkpoint).
pub fn sort(dir: &Path, trusted: Option<&Public>) -> std::io::Result<Sorted> {
    let shown = dir.display().to_string();
    let mut sorted = Sorted::default();
    for (path, read) in read(dir)? {
        let file = path.display().to_string();
        let saved = match read {
            Ok(saved) => saved,
            Err(Unread::Io(e)) => {
                return Err(std::io::Error::new(e.kind(), format!("{file}: {e}")));
            }
            Err(Unread::NotACheckpoint(why)) => {
                sorted.skipped.push(Skipped::NotACheckpoint {
                    file,
                    why,
                    dir: shown.clone(),
                });
                continue;
            }
        };
        if saved.signature_ok(trusted) == Some(false) {
            sorted.skipped.push(Skipped::NotSigned {
                file,
                dir: shown.clone(),
            });
        } else {
            sorted.checkpoints.push((path, saved));
        }
    }
    Ok(sorted)
}
