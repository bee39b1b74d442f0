//! One test per path whose plan holds more than its glance: what a held call and an approval
//! keep, sealing, limits and their undo, repeats and keys, the counts due, determinism.

use serde_json::json;

use super::super::{Commit, MeterChange, Step, Tallying, Then, Undo};
use super::world::{ID, Inputs, NOW, call, inputs, message, planned, retried, world};
use super::{HELD, REFUSED, glance, kinds, want};
use crate::drift::Usage;
use crate::drift::meter::State;
use crate::gate::GateCall;
use crate::ledger::{ItemKind, NewRow, Row};
use crate::retry::Item;

#[test]
fn a_refusal_says_why_nothing_was_held() {
    let usage = State::default();
    let cases = [
        (false, "odd", 0, "names no [review] role"),
        (true, "nowhere", 0, "No tool server offers it"),
        (
            true,
            "odd",
            crate::quarantine::MAX_HELD_PER_TOOL,
            "too many calls of this tool",
        ),
    ];
    for (review, tool, waiting, says) in cases {
        let w = world(review);
        let i = Inputs {
            waiting,
            ..inputs(&usage)
        };
        let (g, m) = planned(&w, &call(tool, json!({})), i, |p| (glance(&p), message(&p)));
        assert_eq!(g.step, "refuse", "{tool}: {m}");
        assert!(m.contains(says), "{tool}: {m}");
    }
}

#[test]
fn a_held_call_keeps_its_arguments_as_recorded_and_its_redacted_values_sealed() {
    let w = world(true);
    let usage = State::default();
    let c = call("odd", json!({"card": "4111 1111", "note": "n"}));
    let held = planned(&w, &c, inputs(&usage), |p| match p.step {
        Step::Commit(Commit {
            then:
                Then::Refuse {
                    held: Some(h),
                    message,
                },
            ..
        }) => {
            assert!(message.contains("held for review as `call-1`"), "{message}");
            h
        }
        other => panic!("expected a held call, got {other:?}"),
    });
    assert_eq!(held.sealed.as_deref(), Some("sealed:1"));
    assert_eq!(held.arguments["note"], "n");
    let shown = serde_json::to_string(&held.arguments).unwrap();
    assert!(
        !shown.contains("4111"),
        "the value is sealed, not held: {shown}"
    );
    assert_eq!(
        (held.server.as_str(), held.tool_name.as_str()),
        ("shop", "odd")
    );
}

#[test]
fn an_approval_takes_the_recorded_arguments_and_its_sealed_values_to_the_desk() {
    let w = world(true);
    let usage = State::default();
    let c = call("pay", json!({"card": "4111 1111", "amount": 5}));
    planned(&w, &c, inputs(&usage), |p| match p.step {
        Step::Suspend(s) => {
            assert_eq!(s.server, "shop");
            assert_eq!(s.manifest.name, "pay");
            assert_eq!(s.sealed.as_deref(), Some("sealed:1"));
            assert_eq!(s.arguments["amount"], 5);
            let shown = serde_json::to_string(&s.arguments).unwrap();
            assert!(!shown.contains("4111"), "{shown}");
        }
        other => panic!("expected the desk, got {other:?}"),
    });
}

#[test]
fn redacted_values_that_cannot_be_sealed_are_not_kept() {
    let w = world(true);
    let usage = State::default();
    let broken = || Inputs {
        seals: false,
        ..inputs(&usage)
    };
    // an approval fails closed; a quarantined call is refused, not held
    let pay = call("pay", json!({"card": "4111"}));
    let g = planned(&w, &pay, broken(), |p| glance(&p));
    assert_eq!(g.step, "fail");
    let odd = call("odd", json!({"card": "4111"}));
    let (g, m) = planned(&w, &odd, broken(), |p| (glance(&p), message(&p)));
    assert_eq!(g.step, "refuse");
    assert!(m.contains("could not be sealed"), "{m}");
}

#[test]
fn an_allowed_call_keeps_nothing_sealed_and_records_markers() {
    let w = world(true);
    let usage = State::default();
    let c = call("odd", json!({"card": "4111"}));
    // the same redacting tool, allowed: nothing is kept beside the rows
    let mut w2 = w;
    w2.setup.policy.classes.get_mut("suspect").unwrap().path = crate::policy::PathKind::Allow;
    planned(&w2, &c, inputs(&usage), |p| match p.step {
        Step::Commit(Commit {
            change,
            then: Then::Forward { server, tool, keep },
            ..
        }) => {
            assert_eq!((server.as_str(), tool.as_str()), ("shop", "odd"));
            assert!(keep.is_none(), "no idempotency key: nothing kept");
            assert!(change.items.is_empty());
            let Row::Proposal(proposal) = &change.rows[0].row else {
                panic!("the first row is the proposal");
            };
            let text = proposal.arguments.to_string();
            assert!(
                text.contains("$redacted") && !text.contains("4111"),
                "{text}"
            );
        }
        other => panic!("expected a forward, got {other:?}"),
    });
}

#[test]
fn a_limit_crossed_pauses_its_scope_holds_the_call_and_undoes_the_pause_if_not_recorded() {
    let w = world(true);
    let mut usage = State::default();
    let c = call("lookup", json!({}));
    // the first call is allowed and charged; applying the charge is the driver's, under the lock
    let charge = planned(&w, &c, inputs(&usage), |p| match p.step {
        Step::Commit(c) => c.meter,
        other => panic!("{other:?}"),
    });
    assert!(matches!(charge, MeterChange::Charge(_)));
    assert_eq!(charge.apply(&mut usage, NOW).len(), 1, "one counter entry");
    // the second crosses the limit
    let (g, meter, undo) = planned(&w, &c, inputs(&usage), |p| match &p.step {
        Step::Commit(c) => (glance(&p), c.meter.clone(), c.on_failure.clone()),
        other => panic!("{other:?}"),
    });
    assert_eq!(
        g,
        want(
            "quarantine",
            "hold",
            &HELD,
            &[ItemKind::Held],
            0,
            "pause",
            Tallying::Exempt
        )
    );
    let MeterChange::Pause(pause) = &meter else {
        panic!("{meter:?}")
    };
    assert_eq!(pause.call_id, ID);
    assert_eq!(
        undo,
        Undo::Unpause {
            scope: pause.scope.clone(),
            call_id: ID.into()
        }
    );
    assert_eq!(meter.apply(&mut usage, NOW).len(), 1, "the pause entry");
    assert!(usage.paused(&pause.scope).is_some());
    undo.apply(&mut usage);
    assert!(usage.paused(&pause.scope).is_none(), "undone: never paused");
}

#[test]
fn a_limit_crossed_that_cannot_be_held_is_refused_and_recorded_whole() {
    let w = world(true);
    let mut usage = State::default();
    let c = call("lookup", json!({}));
    let charge = planned(&w, &c, inputs(&usage), |p| match p.step {
        Step::Commit(c) => c.meter,
        other => panic!("{other:?}"),
    });
    charge.apply(&mut usage, NOW);
    // too many calls of the tool wait already: this one is not held, but its scope pauses
    let full = Inputs {
        waiting: crate::quarantine::MAX_HELD_PER_TOOL,
        ..inputs(&usage)
    };
    let g = planned(&w, &c, full, |p| glance(&p));
    assert_eq!(
        g,
        want(
            "quarantine",
            "refuse",
            &REFUSED,
            &[],
            0,
            "pause",
            Tallying::Whole
        ),
        "a refusal that pauses a scope is never only counted"
    );
}

#[test]
fn a_repeat_decided_the_same_way_attaches_and_otherwise_is_a_call_of_its_own() {
    let w = world(true);
    let usage = State::default();
    let odd = call("odd", json!({}));
    let attach = |c: &GateCall, item| Inputs {
        retried: retried(&w, c, false, Some(item)),
        ..inputs(&usage)
    };
    let g = planned(&w, &odd, attach(&odd, Item::Held("call-0".into())), |p| {
        glance(&p)
    });
    assert_eq!(g.step, "repeat");
    assert_eq!(g.rows, ["proposal", "verdict", "retry"]);
    // the earlier item was an approval, but this call is now held: a call of its own
    let g = planned(&w, &odd, attach(&odd, Item::Approval("a-0".into())), |p| {
        glance(&p)
    });
    assert_eq!(g.step, "hold");
    // a repeat of an approval attaches to it: nothing goes to the desk again
    let refund = call("refund", json!({}));
    let g = planned(
        &w,
        &refund,
        attach(&refund, Item::Approval("a-0".into())),
        |p| glance(&p),
    );
    assert_eq!(g.step, "repeat");
}

#[test]
fn an_allowed_call_with_an_idempotency_key_takes_its_key_and_keeps_its_result() {
    let w = world(true);
    let usage = State::default();
    let echo = call("echo", json!({"text": "once"}));
    let i = Inputs {
        retried: retried(&w, &echo, true, None),
        ..inputs(&usage)
    };
    planned(&w, &echo, i, |p| match p.step {
        Step::Commit(Commit {
            change,
            then: Then::Forward { keep, .. },
            ..
        }) => {
            assert_eq!(change.items.len(), 1);
            assert_eq!(change.items[0].kind, ItemKind::CallKey);
            assert!(keep.is_some_and(|f| f.keyed));
        }
        other => panic!("{other:?}"),
    });
    // a held call stores its key with it too
    let odd = call("odd", json!({}));
    let i = Inputs {
        retried: retried(&w, &odd, false, None),
        ..inputs(&usage)
    };
    let g = planned(&w, &odd, i, |p| glance(&p));
    assert_eq!(g.items, [ItemKind::Held, ItemKind::CallKey]);
}

#[test]
fn the_counts_due_are_recorded_before_the_refusal_s_outcome() {
    let w = world(true);
    let usage = State::default();
    let mut commit = planned(&w, &call("wipe", json!({})), inputs(&usage), |p| {
        match p.step {
            Step::Commit(c) => c,
            other => panic!("{other:?}"),
        }
    });
    let counted = crate::refusals::Counted {
        actor: "agent:a".into(),
        minute: 0,
        calls: 3,
        tools: Default::default(),
    };
    commit.with_counts(vec![NewRow::at(
        "",
        NOW,
        Row::RefusedCounted(counted.body(60)),
    )]);
    assert_eq!(
        kinds(&commit.change.rows),
        ["proposal", "verdict", "refused_counted", "outcome"]
    );
}

#[test]
fn the_same_inputs_give_the_same_plan() {
    let w = world(true);
    let usage = State::default();
    for (tool, args) in [
        ("echo", json!({"text": "a"})),
        ("odd", json!({"card": "1"})),
        ("refund", json!({})),
        ("wipe", json!({})),
    ] {
        let c = call(tool, args);
        let once = planned(&w, &c, inputs(&usage), |p| format!("{p:?}"));
        let again = planned(&w, &c, inputs(&usage), |p| format!("{p:?}"));
        assert_eq!(once, again, "{tool}");
    }
}
