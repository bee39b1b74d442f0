//! The approvals tables: state and open-approvals index change together, and a ledger written
//! before the index is reported unindexed until the desk completes it.

use redb::{Database, ReadableDatabase, TableHandle};

use super::super::approvals::OPEN_APPROVALS;
use super::super::{ApprovalState, Change, Ledger, META};

fn state(id: &str, open: bool) -> ApprovalState {
    ApprovalState {
        id: id.into(),
        state: format!("{{\"id\":\"{id}\",\"open\":{open}}}").into_bytes(),
        open: open.then(|| format!("entry-{id}").into_bytes()),
    }
}

#[tokio::test]
async fn the_index_holds_exactly_the_open_approvals_and_states_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    let l = Ledger::open(&path).unwrap();
    assert_eq!(
        l.open_approvals().unwrap(),
        Some(vec![]),
        "a new ledger is indexed"
    );
    l.commit(Change {
        approvals: vec![state("a", true), state("b", true)],
        ..Change::default()
    })
    .await
    .unwrap();
    // `a` finishes: it leaves the index, its last state stays readable
    l.commit(Change {
        approvals: vec![state("a", false)],
        ..Change::default()
    })
    .await
    .unwrap();
    drop(l);
    let l = Ledger::open(&path).unwrap();
    assert_eq!(
        l.open_approvals().unwrap(),
        Some(vec![("b".to_string(), b"entry-b".to_vec())])
    );
    assert_eq!(l.approval("a").unwrap(), Some(state("a", false).state));
    assert_eq!(l.approval("b").unwrap(), Some(state("b", true).state));
    assert_eq!(l.approval("nope").unwrap(), None);
}

#[tokio::test]
async fn a_ledger_from_before_the_index_is_unindexed_until_completed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    let l = Ledger::open(&path).unwrap();
    l.commit(Change {
        approvals: vec![state("a", true), state("b", false)],
        ..Change::default()
    })
    .await
    .unwrap();
    drop(l);
    // what an older airlock left: states, no index, no mark
    {
        let db = Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        assert!(tx.delete_table(OPEN_APPROVALS).unwrap());
        tx.open_table(META)
            .unwrap()
            .remove("approvals_indexed")
            .unwrap();
        tx.commit().unwrap();
        let tables: Vec<String> = db
            .begin_read()
            .unwrap()
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        assert!(!tables.contains(&"open_approvals".to_string()));
    }
    let l = Ledger::open(&path).unwrap();
    assert_eq!(
        l.open_approvals().unwrap(),
        None,
        "not indexed: read all once"
    );
    let all: Vec<String> = l
        .approvals()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(all, vec!["a", "b"]);
    // a commit before the index is complete does not mark it
    l.append(vec![super::row("c1", "proposal")]).await.unwrap();
    assert_eq!(l.open_approvals().unwrap(), None);
    l.commit(Change {
        approvals: vec![state("a", true)],
        approvals_indexed: true,
        ..Change::default()
    })
    .await
    .unwrap();
    drop(l);
    let l = Ledger::open(&path).unwrap();
    assert_eq!(
        l.open_approvals().unwrap(),
        Some(vec![("a".to_string(), b"entry-a".to_vec())])
    );
}
