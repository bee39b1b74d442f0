//! Stats over a generated ledger whose rates are known.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::compute;
use crate::ledger::row::{self, Choice};
use crate::ledger::{Ledger, LedgerReader, NewRow, Record, Row};

const T0: DateTime<Utc> = crate::instant::utc(2026, 11, 1, 9, 0, 0);

fn envelope(id: &str, class: &str, role: &str, at: DateTime<Utc>) -> NewRow {
    NewRow::at(
        id,
        at,
        Row::Envelope(row::Envelope {
            approval_id: id.into(),
            stage: 0,
            envelope: json!({"class": class, "role": role}),
            envelope_hash: String::new(),
            approvers: Vec::new(),
        }),
    )
}

fn decision(id: &str, who: &str, choice: Choice, at: DateTime<Utc>) -> NewRow {
    NewRow::at(
        id,
        at,
        Row::Decision(row::Decision {
            approval_id: id.into(),
            stage: 0,
            approver: who.into(),
            choice,
            comment: String::new(),
            seen_sha256: String::new(),
            envelope_hash: String::new(),
            policy_version: String::new(),
            roles: None,
            auth: None,
            diff: None,
            new_envelope_hash: None,
            redacted: None,
        }),
    )
}

fn timeout(id: &str, at: DateTime<Utc>) -> NewRow {
    NewRow::at(
        id,
        at,
        Row::Timeout(row::Timeout {
            approval_id: id.into(),
            stage: 0,
            role: "ops".into(),
            on_timeout: crate::policy::OnTimeout::Deny,
            expires_at: String::new(),
        }),
    )
}

fn closed(id: &str, at: DateTime<Utc>) -> NewRow {
    NewRow::at(
        id,
        at,
        Row::ApprovalClosed(row::ApprovalClosed {
            approval_id: id.into(),
            outcome: json!({"outcome": "denied"}),
        }),
    )
}

/// 20 refunds all approved by ann (after 1..20 minutes); 12 deletions: 8 denied by bob, 4 timed out.
async fn generated(path: &std::path::Path) -> Vec<Record> {
    let l = Ledger::open(path).unwrap();
    for i in 1..=20i64 {
        let id = format!("r{i}");
        let open = T0 + TimeDelta::hours(i);
        let done = open + TimeDelta::minutes(i);
        l.append(vec![
            envelope(&id, "financial", "finance", open),
            decision(&id, "Ann@example.com", Choice::Approve, done),
            closed(&id, done),
        ])
        .await
        .unwrap();
    }
    for i in 1..=12i64 {
        let id = format!("d{i}");
        let open = T0 + TimeDelta::days(2) + TimeDelta::minutes(i);
        let done = open + TimeDelta::hours(1);
        let last = if i <= 8 {
            decision(&id, "bob@example.com", Choice::Deny, done)
        } else {
            timeout(&id, done)
        };
        l.append(vec![
            envelope(&id, "destructive", "ops", open),
            last,
            closed(&id, done),
        ])
        .await
        .unwrap();
    }
    drop(l);
    let mut rows = Vec::new();
    LedgerReader::open(path)
        .unwrap()
        .records(|r| rows.push(r.unwrap()))
        .unwrap();
    rows
}

#[tokio::test]
async fn rates_times_depth_and_flags_come_out_as_generated() {
    let dir = tempfile::tempdir().unwrap();
    let rows = generated(&dir.path().join("l.redb")).await;
    let s = compute(&rows, None);
    assert_eq!(s.requests, 32);

    let fin = &s.by_class["financial"];
    assert_eq!((fin.requests, fin.approve, fin.deny), (20, 20, 0));
    assert_eq!(fin.approve_rate, Some(1.0));
    assert_eq!(
        fin.median_secs_to_decide,
        Some(600.0),
        "10th of 1..20 minutes"
    );
    assert_eq!(
        fin.p90_secs_to_decide,
        Some(1080.0),
        "18th of 1..20 minutes"
    );
    let ann = &s.by_approver["ann@example.com"];
    assert_eq!(
        (ann.requests, ann.approve),
        (20, 20),
        "addresses are compared case-insensitively"
    );

    let del = &s.by_class["destructive"];
    assert_eq!((del.requests, del.deny, del.timeout), (12, 8, 4));
    assert_eq!(del.approve_rate, Some(0.0));
    assert_eq!(
        s.by_role["ops"].median_secs_to_decide,
        Some(3600.0),
        "timeouts are not decisions"
    );

    let flagged: Vec<(&str, &str)> = s
        .flags
        .iter()
        .map(|f| (f.kind, f.subject.as_str()))
        .collect();
    assert_eq!(
        flagged,
        [
            ("rubber_stamp", "role:finance"),
            ("rubber_stamp", "approver:ann@example.com"),
            ("times_out_often", "class:destructive"),
            ("autopilot_candidate", "class:financial"),
        ]
    );
    // refunds never overlap (each closes within the hour it opened); deletions open 12 at once
    assert_eq!(s.queue_depth.iter().map(|d| d.1).max(), Some(12));
    assert_eq!(s.queue_depth[0], ("2026-11-01T10:00:00Z".to_string(), 1));

    // --since keeps only the later requests
    let later = compute(&rows, Some(T0 + TimeDelta::days(1)));
    assert_eq!(later.requests, 12);
    assert!(!later.by_class.contains_key("financial"));
}
