//! Files only their owner reads: the ledger, the checkpoint directory and its notes, the mail
//! outbox and its messages. Whatever the process umask, a directory made here is 0700 and a file
//! 0600 (key files are written 0600 where they are made).
//!
//! It must never widen a mode, and never follow a path it did not make into somewhere else.

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Make `dir` (and its parents, as usual) and set it to 0700.
pub fn dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(0o700))
}

/// Create (or truncate) `path` as a 0600 file for writing.
pub fn create(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // an existing file keeps its mode through open: narrow it too
    f.set_permissions(Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Create `path` as a new 0600 file for writing; an error if it exists (never overwrite a file
/// that appeared meanwhile).
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// A 32-byte secret kept as 64 hex characters in `path`: read, or made from the OS CSPRNG and
/// written 0600 (never overwriting a file that appeared meanwhile). The one way the link key and
/// the seal key are kept.
pub fn secret(path: &Path) -> Result<[u8; 32], String> {
    use std::io::Write;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut k = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut k)
                .map_err(|e| format!("not 64 hex characters: {e}"))?;
            Ok(k)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut k = [0u8; 32];
            getrandom::fill(&mut k).map_err(|e| e.to_string())?;
            let mut f = create_new(path).map_err(|e| e.to_string())?;
            f.write_all(hex::encode(k).as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| e.to_string())?;
            Ok(k)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Set an existing file to 0600 (a database file its library created).
pub fn file(path: &Path) -> io::Result<()> {
    std::fs::set_permissions(path, Permissions::from_mode(0o600))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn what_it_makes_only_the_owner_reads_whatever_was_there() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("a/b");
        super::dir(&d).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        let f = d.join("x");
        std::fs::write(&f, b"old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::create(&f).unwrap().write_all(b"new").unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(std::fs::read(&f).unwrap(), b"new");
    }
}
