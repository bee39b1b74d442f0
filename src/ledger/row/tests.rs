use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Row, RowError};
use crate::ledger::Record;
use crate::ledger::chain::{entry, leaf, link};

/// Rows exported (`airlock ledger export`) from ledgers written before rows were typed: the
/// integration tests' and a `gen_ledger` ledger with a prune; one row of every body shape found,
/// and samples.
const BEFORE_TYPING: &str = include_str!("../../../tests/fixtures/ledger-rows-before-typing.jsonl");

fn hex32(s: &str) -> [u8; 32] {
    let v = hex::decode(s).expect("hex");
    v.try_into().expect("32 bytes")
}

#[test]
fn every_row_written_before_typing_reads_back_to_the_same_bytes_and_hash() {
    let mut kinds = BTreeSet::new();
    let mut wrong = Vec::new();
    for (n, line) in BEFORE_TYPING.lines().enumerate() {
        let r: Record = serde_json::from_str(line).expect("an exported row");
        let row = match r.row() {
            Ok(row) => row,
            Err(e) => {
                wrong.push(format!("line {}: {e}", n + 1));
                continue;
            }
        };
        kinds.insert(row.kind());
        let stored = entry(r.seq, &r.time, &r.kind, &r.call_id, &r.body);
        let again = entry(r.seq, &r.time, row.kind(), &r.call_id, &row.body());
        if again != stored {
            wrong.push(format!(
                "line {}: {}\n  stored {}\n  again  {}",
                n + 1,
                r.kind,
                String::from_utf8_lossy(&stored),
                String::from_utf8_lossy(&again)
            ));
            continue;
        }
        let hash = link(&hex32(&r.prev), &leaf(&again));
        assert_eq!(hex::encode(hash), r.hash, "line {}: the row's hash", n + 1);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // every kind is in the fixture but `tool_classify_failed` (covered below) and the kinds
    // added after it was written (their own round-trip tests: `row/channel.rs`)
    let missing: Vec<&str> = Row::KINDS
        .iter()
        .copied()
        .filter(|k| !kinds.contains(k))
        .collect();
    assert_eq!(
        missing,
        vec![
            "tool_classify_failed",
            "channel_delivered",
            "channel_failed",
            "channel_gave_up",
            "reminder"
        ]
    );
}

/// Every string under `v` that reads as an RFC 3339 instant.
fn instants<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) if crate::instant::parse_rfc3339(s).is_ok() => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| instants(i, out)),
        Value::Object(m) => m.values().for_each(|i| instants(i, out)),
        _ => {}
    }
}

#[test]
fn every_instant_written_before_chrono_is_written_again_to_the_same_bytes() {
    let (mut in_bodies, mut envelopes) = (0, 0);
    for (n, line) in BEFORE_TYPING.lines().enumerate() {
        let r: Record = serde_json::from_str(line).expect("an exported row");
        // the row's own time, through chrono: the same entry bytes, the same hash
        let t = crate::instant::parse_rfc3339(&r.time).expect("the row's time reads");
        let time = crate::instant::rfc3339(&t);
        let again = entry(r.seq, &time, &r.kind, &r.call_id, &r.body);
        assert_eq!(time, r.time, "line {}", n + 1);
        let hash = link(&hex32(&r.prev), &leaf(&again));
        assert_eq!(hex::encode(hash), r.hash, "line {}: the row's hash", n + 1);
        // the instants its body holds (expires_at, since, held_at, …)
        let mut found = Vec::new();
        instants(&r.body, &mut found);
        for s in found {
            let t = crate::instant::parse_rfc3339(s).expect("reads");
            assert_eq!(crate::instant::rfc3339(&t), s, "line {}", n + 1);
            in_bodies += 1;
        }
        // an envelope read into its type and written again: the same JSON, the same hash
        if r.kind == "envelope" {
            let stored = &r.body["envelope"];
            let e: crate::envelope::Envelope =
                serde_json::from_value(stored.clone()).expect("an envelope");
            assert_eq!(
                &serde_json::to_value(&e).expect("writes"),
                stored,
                "line {}",
                n + 1
            );
            assert_eq!(e.hash(), r.body["envelope_hash"], "line {}", n + 1);
            envelopes += 1;
        }
    }
    assert!(in_bodies >= 30, "only {in_bodies} instants in the bodies");
    assert!(envelopes >= 5, "only {envelopes} envelopes");
}

#[test]
fn a_failed_classification_row_is_the_json_written_before_typing() {
    // as src/web/review.rs wrote it: json!({"server", "tool", "error"})
    let before = json!({"server": "shop", "tool": "export_orders", "error": "tool-manifests/shop.export_orders.toml already exists"});
    let row = Row::parse("tool_classify_failed", &before).expect("reads");
    assert_eq!(row.kind(), "tool_classify_failed");
    assert_eq!(row.body(), before);
}

#[test]
fn each_kind_serde_names_is_the_kind_the_row_says() {
    let row = Row::parse(
        "held_voided",
        &json!({"reason": "the tool changed since it was held"}),
    )
    .expect("reads");
    let tagged = serde_json::to_value(&row).expect("serialises");
    assert_eq!(tagged["kind"], row.kind());
    assert_eq!(tagged["body"], row.body());
    let back: Row = serde_json::from_value(tagged).expect("reads back");
    assert_eq!(back, row);
}

#[test]
fn a_kind_from_a_newer_airlock_is_unknown_not_misread() {
    match Row::parse("something_new", &json!({})) {
        Err(RowError::Unknown(k)) => assert_eq!(k, "something_new"),
        other => panic!("expected unknown, got {other:?}"),
    }
    assert!(matches!(
        Row::parse("verdict", &Value::Null),
        Err(RowError::Body {
            kind: "verdict",
            ..
        })
    ));
}

#[test]
fn kinds_are_unique() {
    let set: BTreeSet<&str> = Row::KINDS.iter().copied().collect();
    assert_eq!(set.len(), Row::KINDS.len());
}
