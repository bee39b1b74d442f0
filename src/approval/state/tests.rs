//! The approval rules, one test each.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::{Approval, Envelope, Map, NextRole, Outcome, Refusal, Status, Step};
use crate::policy::OnTimeout;

const T0: DateTime<Utc> = crate::instant::utc(2026, 11, 24, 12, 0, 0);

fn approval(min: u32, on_timeout: OnTimeout) -> Approval {
    let envelope = Envelope {
        summary: "Refund 500".into(),
        tool: "refund_order".into(),
        server: "shop".into(),
        tool_name: "refund_order".into(),
        arguments: json!({"amount_cents": 500}),
        arguments_sha256: "x".into(),
        class: "financial".into(),
        actor: "agent:bot".into(),
        target: "payments".into(),
        impact: "money".into(),
        evidence: vec![],
        policy_version: "v1".into(),
        rule: "classes.financial".into(),
        reason: "needs finance".into(),
        reversal: "none: no".into(),
        role: "finance".into(),
        min_approvals: min,
        requested_at: T0,
        expires_at: T0 + TimeDelta::minutes(30),
        on_timeout,
        stage: 0,
        redacted: None,
    };
    Approval {
        id: "a1".into(),
        call_id: "c1".into(),
        envelope_hash: envelope.hash(),
        envelope,
        meta: None,
        timeout_secs: 1800,
        approvers: vec![
            "ann@example.com".into(),
            "bob@example.com".into(),
            "agent:bot".into(),
        ],
        approved_by: vec![],
        used: vec![],
        unsent: vec![],
        status: Status::Pending,
        sealed: None,
        remind_pct: None,
        reminded: None,
    }
}

const SOON: DateTime<Utc> = crate::instant::utc(2026, 11, 24, 12, 1, 0);
const LATE: DateTime<Utc> = crate::instant::utc(2026, 11, 24, 12, 31, 0);

fn cfo() -> Vec<String> {
    vec!["cfo@example.com".into()]
}

#[test]
fn one_approval_approves() {
    let mut a = approval(1, OnTimeout::Deny);
    assert_eq!(a.vote("ann@example.com", true, SOON), Ok(Step::Approved));
}

#[test]
fn n_distinct_approvers_and_a_duplicate_click_counts_once() {
    let mut a = approval(2, OnTimeout::Deny);
    assert_eq!(
        a.vote("ann@example.com", true, SOON),
        Ok(Step::Counted { have: 1, need: 2 })
    );
    assert_eq!(
        a.vote("ANN@example.com", true, SOON),
        Err(Refusal::AlreadyUsed)
    );
    assert_eq!(a.vote("bob@example.com", true, SOON), Ok(Step::Approved));
}

#[test]
fn any_deny_denies() {
    let mut a = approval(2, OnTimeout::Deny);
    a.vote("ann@example.com", true, SOON).unwrap();
    assert_eq!(a.vote("bob@example.com", false, SOON), Ok(Step::Denied));
}

#[test]
fn the_requester_and_agents_cannot_approve() {
    let mut a = approval(1, OnTimeout::Deny);
    assert_eq!(a.vote("agent:bot", true, SOON), Err(Refusal::SelfApproval));
    a.envelope.actor = "agent:other".into();
    assert_eq!(a.vote("agent:bot", true, SOON), Err(Refusal::AgentApprover));
    a.envelope.actor = "ann@example.com".into();
    assert_eq!(
        a.vote("ann@example.com", true, SOON),
        Err(Refusal::SelfApproval)
    );
}

#[test]
fn strangers_late_votes_and_decided_approvals_are_refused() {
    let mut a = approval(1, OnTimeout::Deny);
    assert_eq!(
        a.vote("eve@example.com", true, SOON),
        Err(Refusal::NotAnApprover("eve@example.com".into()))
    );
    assert_eq!(a.vote("ann@example.com", true, LATE), Err(Refusal::Expired));
    a.status = Status::Done(Outcome::Expired);
    assert_eq!(
        a.vote("ann@example.com", true, SOON),
        Err(Refusal::NotPending)
    );
}

#[test]
fn modify_binds_the_approval_to_the_edited_arguments() {
    let mut a = approval(1, OnTimeout::Deny);
    let before = a.envelope_hash.clone();
    let edited = a.envelope.with_arguments(
        json!({"amount_cents": 100})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        "Refund 100".into(),
        None,
    );
    assert_eq!(
        a.modify("ann@example.com", edited, SOON),
        Ok(Step::Approved)
    );
    assert_ne!(a.envelope_hash, before);
    assert_eq!(a.envelope.arguments, json!({"amount_cents": 100}));
    assert_eq!(
        a.envelope.summary, "Refund 100",
        "the summary follows the edit"
    );
    assert_eq!(a.envelope_hash, a.envelope.hash());
}

#[test]
fn modify_with_two_approvers_asks_the_others_again() {
    let mut a = approval(2, OnTimeout::Deny);
    a.vote("bob@example.com", true, SOON).unwrap();
    let edited = a.envelope.with_arguments(Map::new(), String::new(), None);
    assert_eq!(
        a.modify("ann@example.com", edited, SOON),
        Ok(Step::NewStage)
    );
    assert_eq!(
        a.approved_by,
        ["ann@example.com"],
        "bob approved other arguments"
    );
    assert_eq!(a.unsent, ["bob@example.com", "agent:bot"]);
    assert_eq!(a.vote("bob@example.com", true, SOON), Ok(Step::Approved));
}

#[test]
fn escalate_moves_to_the_senior_role_with_a_fresh_clock() {
    let mut a = approval(2, OnTimeout::Deny);
    let emails = cfo();
    assert_eq!(
        a.escalate("ann@example.com", None, SOON),
        Err(Refusal::NoEscalation("finance".into()))
    );
    assert_eq!(
        a.escalate(
            "ann@example.com",
            Some(NextRole {
                name: "cfo",
                emails: &emails
            }),
            SOON
        ),
        Ok(Step::NewStage)
    );
    assert_eq!(a.envelope.role, "cfo");
    assert_eq!(a.envelope.stage, 1);
    assert_eq!(a.envelope.min_approvals, 1, "capped to the new role's size");
    assert_eq!(a.envelope.expires_at, SOON + TimeDelta::minutes(30));
    assert_eq!(a.unsent, ["cfo@example.com"]);
    assert_eq!(
        a.vote("ann@example.com", true, SOON),
        Err(Refusal::NotAnApprover("ann@example.com".into()))
    );
    assert_eq!(a.vote("cfo@example.com", true, SOON), Ok(Step::Approved));
}

#[test]
fn timeouts_deny_expire_escalate_and_the_chain_ends_in_deny() {
    let emails = cfo();
    assert_eq!(
        approval(1, OnTimeout::Deny).time_out(None, LATE),
        Some(Step::Denied)
    );
    assert_eq!(
        approval(1, OnTimeout::Expire).time_out(None, LATE),
        Some(Step::Expired)
    );
    let mut a = approval(1, OnTimeout::Escalate);
    assert_eq!(
        a.time_out(
            Some(NextRole {
                name: "cfo",
                emails: &emails
            }),
            LATE
        ),
        Some(Step::NewStage)
    );
    assert_eq!(a.envelope.role, "cfo");
    assert_eq!(
        a.time_out(None, LATE),
        None,
        "the new stage has a fresh clock"
    );
    let later = LATE + TimeDelta::minutes(31);
    assert_eq!(a.time_out(None, later), Some(Step::Denied));
}

#[test]
fn a_timeout_before_expiry_or_after_a_decision_does_nothing() {
    let mut a = approval(1, OnTimeout::Deny);
    assert_eq!(a.time_out(None, SOON), None);
    a.status = Status::Executing {
        idempotency_key: "k".into(),
    };
    assert_eq!(a.time_out(None, LATE), None);
}

#[test]
fn a_stage_is_due_one_reminder_at_its_share_of_the_timeout_for_those_who_have_not_decided() {
    let mut a = approval(2, OnTimeout::Deny);
    assert_eq!(a.reminder_due(), None, "no remind_at: never");
    a.remind_pct = Some(25);
    let expires = a.envelope.expires_at;
    let timeout = TimeDelta::seconds(i64::try_from(a.timeout_secs).unwrap());
    assert_eq!(a.reminder_due(), Some(expires - timeout + timeout / 4));
    let first = a.approvers[0].clone();
    a.used.push(first.clone());
    a.approved_by.push(first.clone());
    assert!(
        a.undecided().iter().all(|x| !a.unsent.contains(x)),
        "only those mailed"
    );
    a.unsent.clear();
    assert!(!a.undecided().contains(&first) && !a.undecided().is_empty());
    a.reminded = Some(a.envelope.expires_at);
    assert_eq!(a.reminder_due(), None, "once per stage clock");
    a.reminded = None;
    a.status = Status::Done(Outcome::Denied {
        by: "ann".into(),
        reason: "no".into(),
    });
    assert_eq!(a.reminder_due(), None, "only while pending");
}
