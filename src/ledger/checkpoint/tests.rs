//! Checkpoints on real ledger files: the directory keeps the newest, and the start check refuses
//! a ledger replaced by an older copy of itself or a rewritten one, and skips files that prove
//! nothing (not a checkpoint, or not signed by the ledger's key).

use std::path::Path;

use super::guard::{Refusal, ledger_extends};
use super::{Checkpoint, Saved, SignedNote, dir};
use crate::ledger::row::sample;
use crate::ledger::{Ledger, NewRow};
use crate::signing::Signer;

fn key(n: u8) -> Signer {
    Signer::from_seed([n; 32])
}

async fn grow(path: &Path, signer: &Signer, calls: &[&str]) {
    let l = Ledger::open_signed(path, Some(signer.clone())).unwrap();
    for c in calls {
        l.append(vec![NewRow::now(c, sample::proposal(c))])
            .await
            .unwrap();
    }
}

/// A C2SP checkpoint of the ledger as it is, into `dir`.
fn checkpoint(path: &Path, signer: &Signer, into: &Path, stamp: i64) -> SignedNote {
    signed_by(path, signer, signer, into, stamp)
}

/// The same, signed by `by` (another key than the ledger's `signer`).
fn signed_by(path: &Path, signer: &Signer, by: &Signer, into: &Path, stamp: i64) -> SignedNote {
    let l = Ledger::open_signed(path, Some(signer.clone())).unwrap();
    let (rows, head) = l.head().unwrap();
    let mut root = [0u8; 32];
    hex::decode_to_slice(&head, &mut root).unwrap();
    let note = SignedNote::sign(by, "test.example/airlock", rows, &root).unwrap();
    dir::write(into, &note, stamp).unwrap();
    note
}

fn check(path: &Path, signer: &Signer, cps: &Path) -> Result<super::guard::Held, Refusal> {
    let l = Ledger::open_signed(path, Some(signer.clone())).unwrap();
    ledger_extends(&l, cps, &signer.public())
}

#[tokio::test]
async fn a_ledger_that_extends_its_newest_checkpoint_starts() {
    let d = tempfile::tempdir().unwrap();
    let (p, cps, s) = (d.path().join("l.redb"), d.path().join("cps"), key(1));
    assert!(check(&p, &s, &cps).unwrap().is_none(), "no checkpoint yet");
    grow(&p, &s, &["a", "b"]).await;
    checkpoint(&p, &s, &cps, 1);
    grow(&p, &s, &["c"]).await;
    let (file, rows) = check(&p, &s, &cps).unwrap().unwrap();
    assert_eq!(rows, 2);
    assert!(file.ends_with("checkpoint-2-1.txt"), "{}", file.display());
    checkpoint(&p, &s, &cps, 2);
    assert_eq!(
        check(&p, &s, &cps).unwrap().unwrap().1,
        3,
        "at the head itself"
    );
}

#[tokio::test]
async fn an_older_copy_of_the_ledger_is_refused_naming_the_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let (p, cps, s) = (d.path().join("l.redb"), d.path().join("cps"), key(1));
    grow(&p, &s, &["a", "b"]).await;
    let old = d.path().join("old.redb");
    std::fs::copy(&p, &old).unwrap();
    grow(&p, &s, &["c", "d"]).await;
    checkpoint(&p, &s, &cps, 7);
    std::fs::copy(&old, &p).unwrap();
    let err = check(&p, &s, &cps).unwrap_err();
    assert!(
        matches!(
            err,
            Refusal::Behind {
                has: 2,
                rows: 4,
                ..
            }
        ),
        "{err}"
    );
    let said = err.to_string();
    assert!(said.contains("checkpoint-4-7.txt"), "{said}");
    assert!(
        said.contains("older copy") && said.contains("Restore the newest copy"),
        "{said}"
    );
}

#[tokio::test]
async fn a_rewritten_ledger_with_as_many_rows_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (p, cps, s) = (d.path().join("l.redb"), d.path().join("cps"), key(1));
    grow(&p, &s, &["a", "b", "c"]).await;
    checkpoint(&p, &s, &cps, 1);
    // the same key (stolen with the file) writes another history of the same length, and more
    std::fs::remove_file(&p).unwrap();
    grow(&p, &s, &["x", "y", "z", "more"]).await;
    let err = check(&p, &s, &cps).unwrap_err();
    assert!(matches!(err, Refusal::Rewritten { rows: 3, .. }), "{err}");
    assert!(err.to_string().contains("ledger verify"), "{err}");
    // the gate, run on the rewritten file, wrote a newer checkpoint of it: the older one still
    // catches the rewrite
    checkpoint(&p, &s, &cps, 2);
    let err = check(&p, &s, &cps).unwrap_err();
    assert!(matches!(err, Refusal::Rewritten { rows: 3, .. }), "{err}");
}

#[tokio::test]
async fn a_row_edited_in_place_at_the_checkpoint_is_refused() {
    use redb::ReadableTable as _;
    let d = tempfile::tempdir().unwrap();
    let (p, cps, s) = (d.path().join("l.redb"), d.path().join("cps"), key(1));
    grow(&p, &s, &["alice", "bob"]).await;
    checkpoint(&p, &s, &cps, 1);
    {
        let db = redb::Database::create(&p).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(crate::ledger::schema::ROWS).unwrap();
            let mut row = t.get(2).unwrap().unwrap().value().to_vec();
            let at = row.windows(3).position(|w| w == b"bob").unwrap();
            row[at..at + 3].copy_from_slice(b"eve");
            t.insert(2, row.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    let err = check(&p, &s, &cps).unwrap_err();
    assert!(matches!(err, Refusal::Rewritten { rows: 2, .. }), "{err}");
}

#[tokio::test]
async fn files_that_prove_nothing_are_skipped_and_a_signed_checkpoint_still_holds() {
    let d = tempfile::tempdir().unwrap();
    let (p, cps, s) = (d.path().join("l.redb"), d.path().join("cps"), key(1));
    grow(&p, &s, &["a"]).await;
    let old = d.path().join("old.redb");
    std::fs::copy(&p, &old).unwrap();
    grow(&p, &s, &["b", "c"]).await;
    // another key's checkpoint of a longer ledger, junk, a directory, a note edited to say more
    // rows: none of them is this gate's, so none of them can refuse a start
    let mut foreign = SignedNote::sign(&key(2), "o", 50, &[9; 32]).unwrap();
    dir::write(&cps, &foreign, 1).unwrap();
    std::fs::write(cps.join("checkpoint-7-1.txt"), "hello\n").unwrap();
    std::fs::create_dir_all(cps.join("checkpoint-8-1.txt")).unwrap();
    let ours = checkpoint(&p, &s, &cps, 2);
    foreign.bytes = String::from_utf8(ours.bytes.clone())
        .unwrap()
        .replacen(&format!("\n{}\n", ours.size), "\n40\n", 1)
        .into_bytes();
    std::fs::write(cps.join("checkpoint-40-3.txt"), &foreign.bytes).unwrap();

    let (file, rows) = check(&p, &s, &cps).unwrap().unwrap();
    assert_eq!(rows, ours.size, "held to our own checkpoint only");
    assert!(
        file.ends_with(format!("checkpoint-{rows}-2.txt")),
        "{}",
        file.display()
    );
    let sorted = dir::sort(&cps, Some(&s.public())).unwrap();
    let mut said: Vec<String> = sorted.skipped.iter().map(ToString::to_string).collect();
    said.sort();
    assert_eq!(said.len(), 4, "{said:?}");
    for (text, name) in [
        (
            "is not signed by this ledger's key (or was altered)",
            "checkpoint-40-3.txt",
        ),
        (
            "is not signed by this ledger's key (or was altered)",
            "checkpoint-50-1.txt",
        ),
        (
            "is not a checkpoint (not a signed note",
            "checkpoint-7-1.txt",
        ),
        (
            "is not a checkpoint (not a regular file)",
            "checkpoint-8-1.txt",
        ),
    ] {
        assert!(
            said.iter()
                .any(|s| s.contains(text) && s.contains(name) && s.contains("skipped")),
            "{name}: {said:?}"
        );
    }
    // without a trusted key a note cannot be judged: every one that reads is kept
    assert_eq!(dir::sort(&cps, None).unwrap().checkpoints.len(), 3);

    // fail-closed stays for what is signed: the older copy put back is refused by our checkpoint
    std::fs::copy(&old, &p).unwrap();
    let err = check(&p, &s, &cps).unwrap_err();
    assert!(matches!(err, Refusal::Behind { has: 1, .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("checkpoint-{}-2.txt", ours.size)),
        "{err}"
    );
}

#[tokio::test]
async fn an_old_format_checkpoint_in_the_directory_is_held_to_as_well() {
    let d = tempfile::tempdir().unwrap();
    let (p, cps, s) = (d.path().join("l.redb"), d.path().join("cps"), key(1));
    grow(&p, &s, &["a", "b"]).await;
    let v1 = {
        let l = Ledger::open_signed(&p, Some(s.clone())).unwrap();
        super::sign_now(&l, &s).unwrap()
    };
    std::fs::create_dir_all(&cps).unwrap();
    std::fs::write(cps.join("checkpoint-2-5.txt"), v1.render()).unwrap();
    let old = d.path().join("old.redb");
    std::fs::copy(&p, &old).unwrap();
    grow(&p, &s, &["c"]).await;
    assert_eq!(check(&p, &s, &cps).unwrap().unwrap().1, 2);
    std::fs::remove_file(&p).unwrap();
    grow(&p, &s, &["x", "y"]).await;
    assert!(matches!(
        check(&p, &s, &cps).unwrap_err(),
        Refusal::Rewritten { .. }
    ));
}

#[test]
fn the_directory_keeps_the_newest_and_reads_both_formats() {
    let d = tempfile::tempdir().unwrap();
    let s = key(1);
    for n in 0..(dir::KEEP as u64 + 5) {
        let note = SignedNote::sign(&s, "o", n, &[1; 32]).unwrap();
        dir::write(d.path(), &note, 1000 + n as i64).unwrap();
    }
    std::fs::write(
        d.path().join("checkpoint-3-1.txt"),
        Checkpoint::sign(&s, 3, &"ab".repeat(32), "2026-11-24T00:00:00Z").render(),
    )
    .unwrap();
    std::fs::write(d.path().join("notes.md"), "not a checkpoint").unwrap();
    let read = dir::read(d.path()).unwrap();
    assert_eq!(
        read.len(),
        dir::KEEP + 1,
        "the newest kept, the old-format file read too"
    );
    let rows: Vec<u64> = read
        .iter()
        .map(|(_, r)| r.as_ref().unwrap().rows())
        .collect();
    assert_eq!(rows.first(), Some(&3));
    assert_eq!(rows.last(), Some(&(dir::KEEP as u64 + 4)));
    let formats: Vec<&str> = read
        .iter()
        .map(|(_, r)| r.as_ref().unwrap().format())
        .collect();
    assert!(formats.contains(&"airlock-v1") && formats.contains(&"tlog-checkpoint"));
    assert!(dir::read(&d.path().join("missing")).unwrap().is_empty());
    let saved = Saved::parse(b"airlock checkpoint v1\nrows: 1\n").unwrap_err();
    assert!(saved.contains("head"), "{saved}");
    assert_eq!(
        dir::beside(Path::new("/var/lib/airlock/ledger.redb")),
        Path::new("/var/lib/airlock/ledger.redb.checkpoints")
    );
}

#[tokio::test]
async fn the_writer_writes_at_start_and_at_a_clean_stop_and_not_twice_for_the_same_rows() {
    let d = tempfile::tempdir().unwrap();
    let (p, cps, s) = (d.path().join("l.redb"), d.path().join("cps"), key(1));
    let l = std::sync::Arc::new(Ledger::open_signed(&p, Some(s.clone())).unwrap());
    l.append(vec![NewRow::now("", sample::proposal("start"))])
        .await
        .unwrap();
    let settings = super::Settings {
        dir: cps.clone(),
        every: std::time::Duration::from_secs(3600),
        origin: None,
        witness: None,
        mail_to: None,
        mail_every: std::time::Duration::from_secs(3600),
    };
    let running = super::start(l.clone(), s.clone(), &settings, None)
        .await
        .unwrap();
    assert_eq!(l.checkpoints().latest().map(|n| n.size), Some(1));
    l.append(vec![NewRow::now("c", sample::proposal("t"))])
        .await
        .unwrap();
    running.stop().await;
    let rows: Vec<u64> = dir::read(&cps)
        .unwrap()
        .iter()
        .map(|(_, r)| r.as_ref().unwrap().rows())
        .collect();
    assert_eq!(rows, [1, 2], "one at start, one at the stop");
    let footer = l.checkpoint_footer();
    assert!(
        footer.contains(&format!("{} 2 ", super::default_origin(&s.public()))),
        "{footer}"
    );
    assert!(
        l.checkpoints().health().is_ok(),
        "no witness, nothing failing"
    );
}
