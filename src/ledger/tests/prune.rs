//! Retention: only an expired prefix goes, verification continues from a signed tombstone, and
//! checkpoints taken before stay consistent (or are reported as no longer checkable).

use std::time::Duration;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableTable};

use super::super::checkpoint::{Checkpoint, sign_now};
use super::super::prune::{Tombstone, apply, plan};
use super::super::row::sample;
use super::super::schema::META;
use super::super::{Fault, Ledger, LedgerReader, Location, NewRow, VerifyOptions};
use crate::instant::utc;
use crate::signing::Signer;

const YEAR: Duration = Duration::from_secs(31_557_600);

fn call(id: &str, class: &str, at: DateTime<Utc>) -> Vec<NewRow> {
    vec![
        NewRow::at(id, at, sample::proposal("t")),
        NewRow::at(id, at, sample::verdict(Some(class), false)),
    ]
}

fn retention(class: Option<&str>) -> Duration {
    match class {
        Some("financial") => 7 * YEAR,
        _ => YEAR,
    }
}

#[tokio::test]
async fn only_the_expired_prefix_goes_and_the_rest_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.redb");
    let key = Signer::from_seed([5; 32]);
    let early: Checkpoint;
    let before: Checkpoint;
    {
        let l = Ledger::open_signed(&p, Some(key.clone())).unwrap();
        l.append(call("a", "read_only", utc(2020, 1, 1, 0, 0, 0)))
            .await
            .unwrap();
        early = sign_now(&l, &key).unwrap();
        l.append(call("b", "read_only", utc(2020, 1, 2, 0, 0, 0)))
            .await
            .unwrap();
        l.append(call("c", "financial", utc(2020, 1, 3, 0, 0, 0)))
            .await
            .unwrap();
        l.append(call("d", "read_only", utc(2020, 1, 4, 0, 0, 0)))
            .await
            .unwrap();
        before = sign_now(&l, &key).unwrap();
    }
    let now = utc(2026, 11, 24, 0, 0, 0);
    let at = Location::File(p.clone());
    let plan = plan(&at, &retention, now).unwrap();
    assert_eq!(
        (plan.through, plan.rows),
        (4, 4),
        "a and b expired; c (7 years) keeps itself and d"
    );
    assert_eq!(plan.first_kept.as_ref().map(|k| k.0), Some(5));
    apply(&at, &key, &plan).await.unwrap();

    let verify = |checkpoints: Vec<Checkpoint>| {
        LedgerReader::open(&p)
            .unwrap()
            .verify_with(&VerifyOptions {
                public: Some(key.public()),
                checkpoints: checkpoints
                    .into_iter()
                    .map(|c| ("cp".to_string(), c.into()))
                    .collect(),
            })
            .unwrap()
    };
    let r = verify(vec![before.clone(), early.clone()]);
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.pruned_through, Some(4));
    assert!(
        r.checkpoints[0].consistent,
        "a checkpoint past the prune still holds"
    );
    assert!(
        !r.checkpoints[1].checkable,
        "one inside the pruned rows can no longer be checked"
    );
    let mut kinds = Vec::new();
    LedgerReader::open(&p)
        .unwrap()
        .records(|r| kinds.push(r.unwrap().kind))
        .unwrap();
    assert_eq!(
        kinds,
        ["proposal", "verdict", "proposal", "verdict", "pruned"]
    );
    assert_eq!(plan_again(&p, now), 0, "nothing more has expired");

    // a forged tombstone (claiming more was pruned) is caught with the key
    let db = Database::open(&p).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut meta = tx.open_table(META).unwrap();
        let mut t: Tombstone =
            serde_json::from_slice(meta.get("pruned").unwrap().unwrap().value()).unwrap();
        t.time = "2026-01-01T00:00:00Z".into();
        meta.insert("pruned", serde_json::to_vec(&t).unwrap().as_slice())
            .unwrap();
    }
    tx.commit().unwrap();
    drop(db);
    let bad = verify(vec![]).first_bad.unwrap();
    assert_eq!((bad.seq, bad.fault), (5, Fault::BadSignature));
}

fn plan_again(p: &std::path::Path, now: DateTime<Utc>) -> u64 {
    plan(&Location::File(p.to_path_buf()), &retention, now)
        .unwrap()
        .through
}
