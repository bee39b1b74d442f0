//! The approvals tables: state and open-approvals index change together, and a ledger written
//! before the index is reported unindexed until the desk completes it.

use redb::{Database, ReadableDatabase, TableHandle};

use super::super::row::sample;
use super::super::schema::{META, OPEN_APPROVALS};
use super::super::{Change, ItemKind, ItemState, Ledger, LedgerError, NewRow, Prior};

fn state(id: &str, open: bool) -> ItemState {
    ItemState {
        kind: ItemKind::Approval,
        id: id.into(),
        state: format!("{{\"id\":\"{id}\",\"open\":{open}}}").into_bytes(),
        open: open.then(|| format!("entry-{id}").into_bytes()),
        prior: Prior::Any,
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
        items: vec![state("a", true), state("b", true)],
        ..Change::default()
    })
    .await
    .unwrap();
    // `a` finishes: it leaves the index, its last state stays readable
    l.commit(Change {
        items: vec![state("a", false)],
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
        items: vec![state("a", true), state("b", false)],
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
    l.append(vec![super::row("c1", super::proposal())])
        .await
        .unwrap();
    assert_eq!(l.open_approvals().unwrap(), None);
    l.commit(Change {
        items: vec![state("a", true)],
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

/// The conditions that make one verdict and one execution across replicas hold on redb too: a
/// change made from a state read earlier commits only if that state is still the stored one.
#[tokio::test]
async fn a_change_from_a_stale_state_is_refused_whole_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.redb")).unwrap();
    // the rows' kinds do not matter here, only the conditions they commit under
    let row = |_about: &str| NewRow::now("c1", sample::proposal("t"));
    l.commit(Change {
        rows: vec![row("envelope")],
        items: vec![state("a1", true).new_one()],
        ..Change::default()
    })
    .await
    .unwrap();
    // a second approval under the same id is refused
    let again = l
        .commit(Change {
            items: vec![state("a1", true).new_one()],
            ..Change::default()
        })
        .await;
    assert!(matches!(again, Err(LedgerError::Conflict(_))), "{again:?}");
    let read = l.approval("a1").unwrap().unwrap();
    let mut approve = state("a1", false).replacing(read.clone());
    approve.state = b"approved".to_vec();
    let mut deny = state("a1", false).replacing(read);
    deny.state = b"denied".to_vec();
    // both decided from the same read, queued together: the first wins, the second is refused
    let first = l
        .submit(Change {
            rows: vec![row("decision")],
            items: vec![approve],
            ..Change::default()
        })
        .unwrap();
    let second = l
        .submit(Change {
            rows: vec![row("decision")],
            items: vec![deny],
            ..Change::default()
        })
        .unwrap();
    assert_eq!(first.await.unwrap(), vec![2]);
    let refused = second.await;
    assert!(
        matches!(&refused, Err(LedgerError::Conflict(m)) if m.contains("a1")),
        "{refused:?}"
    );
    assert_eq!(l.approval("a1").unwrap().unwrap(), b"approved".to_vec());
    assert_eq!(l.head().unwrap().0, 2, "the refused change wrote no row");
    // one forwarded mark per call: the second execution intent is refused
    let route = serde_json::json!({"server": "s", "tool": "t"});
    let mark = || Change {
        rows: vec![row("execution_intent")],
        forwarded: vec![("c1".into(), route.clone())],
        ..Change::default()
    };
    l.commit(mark()).await.unwrap();
    assert!(matches!(
        l.commit(mark()).await,
        Err(LedgerError::Conflict(_))
    ));
    assert_eq!(l.head().unwrap().0, 3);
}

/// Held calls are desk items like approvals: the same condition, checked the same way.
#[tokio::test]
async fn a_held_call_changed_from_a_stale_state_is_refused_like_an_approval() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.redb")).unwrap();
    let row = |_about: &str| NewRow::now("h1", sample::proposal("t"));
    let held = |state: &str| {
        let bytes = serde_json::to_vec(&serde_json::json!({"id": "h1", "state": state})).unwrap();
        ItemState::of(ItemKind::Held, "h1", bytes, None)
    };
    l.commit(Change {
        rows: vec![row("held")],
        items: vec![held("held")],
        ..Change::default()
    })
    .await
    .unwrap();
    let read = l.held_state("h1").unwrap().unwrap();
    // a release and a rejection from the same read, queued together: one commits
    let release = l
        .submit(Change {
            rows: vec![row("held_released")],
            items: vec![held("releasing").replacing(read.clone())],
            ..Change::default()
        })
        .unwrap();
    let reject = l
        .submit(Change {
            rows: vec![row("held_rejected")],
            items: vec![held("rejected").replacing(read)],
            ..Change::default()
        })
        .unwrap();
    assert!(release.await.is_ok());
    let refused = reject.await;
    assert!(
        matches!(&refused, Err(LedgerError::Conflict(m)) if m.contains("held call h1")),
        "{refused:?}"
    );
    assert_eq!(
        l.held().unwrap(),
        vec![serde_json::json!({"id": "h1", "state": "releasing"})]
    );
    assert_eq!(l.head().unwrap().0, 2, "the refused change wrote no row");
}

/// A call's key is stored like a desk item: new only if unused, replaced only if as read.
#[tokio::test]
async fn a_call_key_is_taken_once_and_replaced_only_from_what_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.redb")).unwrap();
    let key = |v: &str| ItemState::of(ItemKind::CallKey, "k", v.as_bytes().to_vec(), None);
    let put = |item: ItemState| {
        l.commit(Change {
            items: vec![item],
            ..Change::default()
        })
    };
    assert!(put(key("one").new_one()).await.is_ok());
    assert_eq!(l.call_key("k").unwrap(), Some(b"one".to_vec()));
    let taken = put(key("two").new_one()).await;
    assert!(
        matches!(&taken, Err(LedgerError::Conflict(m)) if m.contains("identical call")),
        "{taken:?}"
    );
    assert!(put(key("two").replacing(b"one".to_vec())).await.is_ok());
    let stale = put(key("three").replacing(b"one".to_vec())).await;
    assert!(matches!(stale, Err(LedgerError::Conflict(_))), "{stale:?}");
    assert_eq!(l.call_key("k").unwrap(), Some(b"two".to_vec()));
    assert_eq!(l.call_key("nope").unwrap(), None);
}
