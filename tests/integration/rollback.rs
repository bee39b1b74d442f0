//! A ledger file replaced by an older copy of itself, with default settings: `serve` refuses to
//! start naming the checkpoint and what to do, `ledger verify --public-key` fails — and a copy
//! that ran on without its checkpoints is caught when they come back (from a witness, a backup).
//! Only in the redb suite (main.rs): a PostgreSQL ledger has no file to copy back.

use crate::checkpoints::{calls, public_key, refused_start, verify};
use crate::support::World;

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, to.join(p.file_name().expect("name"))).expect("copy");
    }
}

#[tokio::test]
async fn a_ledger_replaced_by_an_older_copy_of_itself_is_refused_by_serve_and_fails_verify() {
    let w = World::demo();
    calls(&w, 1).await;
    let ledger = w.path("ledger.redb");
    std::fs::copy(&ledger, w.path("old.redb")).expect("copy");
    calls(&w, 2).await;
    let (newest, file) = w.checkpoints().pop().expect("a checkpoint");
    std::fs::copy(w.path("old.redb"), &ledger).expect("put the old copy back");

    let said = refused_start(&w);
    let name = file.file_name().and_then(|f| f.to_str()).expect("name");
    assert!(said.contains(name), "names the checkpoint: {said}");
    assert!(
        said.contains(&format!("saw {newest}")) && said.contains("older copy"),
        "{said}"
    );
    assert!(
        said.contains("Restore the newest copy of the ledger"),
        "says what to do: {said}"
    );

    let (code, report) = verify(&w, &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["first_bad"]["fault"], "truncated", "{report}");
    let detail = report["first_bad"]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("ledger.redb.checkpoints/checkpoint-") && detail.contains("rolled back"),
        "names the first checkpoint it does not extend: {detail}"
    );
    // the text report says so too
    let out = w.airlock(&["ledger", "verify", "--public-key", &public_key(&w)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NOT consistent") && text.contains("FAILED"),
        "{text}"
    );
}

#[tokio::test]
async fn an_older_copy_that_ran_on_without_its_checkpoints_is_caught_when_they_come_back() {
    let w = World::demo();
    calls(&w, 1).await;
    let ledger = w.path("ledger.redb");
    std::fs::copy(&ledger, w.path("old.redb")).expect("copy");
    calls(&w, 2).await;
    let (newest, _) = w.checkpoints().pop().expect("a checkpoint");
    // the intruder keeps the old copy and hides the checkpoints; the witness kept a copy of them
    copy_dir(&w.checkpoint_dir(), &w.path("witnessed"));
    std::fs::copy(w.path("old.redb"), &ledger).expect("put the old copy back");
    std::fs::rename(w.checkpoint_dir(), w.path("hidden")).expect("hide them");
    calls(&w, 4).await; // another history, longer than the one checkpointed
    let (grown, _) = w.checkpoints().pop().expect("new checkpoints");
    assert!(grown > newest, "{grown} > {newest}");
    assert_eq!(
        verify(&w, &[]).0,
        Some(0),
        "alone, the new history looks whole"
    );

    // the witnessed checkpoints come back beside it
    copy_dir(&w.path("witnessed"), &w.checkpoint_dir());
    let said = refused_start(&w);
    assert!(
        said.contains(&format!("row {newest} of the ledger")) && said.contains("rewritten"),
        "{said}"
    );
    let (code, report) = verify(&w, &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["first_bad"]["fault"], "rewritten", "{report}");
}
