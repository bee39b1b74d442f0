//! The checkpoint directory: one file per checkpoint, `checkpoint-<rows>-<unix seconds>.txt`,
//! each written whole (a temporary file, synced, renamed). The newest [`KEEP`] are kept: each one
//! vouches for every row before it, so older ones add nothing the newest does not say.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{Saved, SignedNote};

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
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("checkpoint-{}-{unix}.txt", note.size));
    let tmp = dir.join(format!(".checkpoint-{}.tmp", uuid::Uuid::new_v4()));
    let mut f = std::fs::File::create(&tmp)?;
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
pub fn read(dir: &Path) -> std::io::Result<Vec<(PathBuf, Result<Saved, String>)>> {
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

/// One checkpoint file, in either format.
pub fn read_file(path: &Path) -> Result<Saved, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_FILE {
        return Err(format!("{len} bytes is too large for a checkpoint"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    Saved::parse(&bytes)
}
