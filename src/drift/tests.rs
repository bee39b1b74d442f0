//! Limits: compile errors, the check against counters, the meter's windows, pauses and restart.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use super::meter::{Meter, State};
use super::{
    Check, Limit, LimitFile, Metric, Pause, Per, Scope, Usage, check, compile, limit_key, scope_key,
};

fn file(v: Value) -> LimitFile {
    serde_json::from_value(v).unwrap()
}

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn calls(max: u64, window: u64, per: Per) -> Limit {
    Limit {
        window: Duration::from_secs(window),
        metric: Metric::Calls { max },
        per,
        notify: None,
    }
}

fn sum(max: f64, window: u64) -> Limit {
    Limit {
        window: Duration::from_secs(window),
        metric: Metric::Sum {
            pointer: "/amount".into(),
            max,
        },
        per: Per::All,
        notify: Some("finance".into()),
    }
}

const T0: DateTime<Utc> = crate::instant::utc(2026, 11, 24, 12, 0, 0);
const TOOL: Scope<'static> = Scope::Tool {
    server: "shop",
    tool: "refund",
};

#[test]
fn limits_compile_or_say_what_is_wrong() {
    let table: [(Value, Result<&str, &str>); 10] = [
        (
            json!({"window": "1d", "sum": "/a"}),
            Err("`sum` needs `max_total`"),
        ),
        (
            json!({"window": "1d", "max_total": 5.0}),
            Err("`max_total` needs `sum`"),
        ),
        (
            json!({"window": "1m", "max_calls": 30}),
            Ok("30 calls per 1m per actor"),
        ),
        (
            json!({"window": "1d", "sum": "/amount", "max_total": 500.0, "per": "all"}),
            Ok("a total of `/amount` of 500 per 1day for all actors together"),
        ),
        (json!({"window": "1m", "max_calls": 0}), Err("at least 1")),
        (json!({"window": "1m"}), Err("needs either `max_calls`")),
        (
            json!({"window": "1m", "max_calls": 3, "sum": "/a", "max_total": 1.0}),
            Err("use one per limit"),
        ),
        (
            json!({"window": "1d", "sum": "amount", "max_total": 5.0}),
            Err("JSON pointer"),
        ),
        (
            json!({"window": "1d", "sum": "/amount", "max_total": -5.0}),
            Err("positive"),
        ),
        (json!({"window": "forever", "max_calls": 3}), Err("window")),
    ];
    for (input, want) in table {
        match (compile(&file(input.clone())), want) {
            (Ok(l), Ok(words)) => assert_eq!(l.describe(), words, "{input}"),
            (Err(e), Err(part)) => assert!(e.contains(part), "{input}: {e}"),
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn two_limits_on_the_same_counter_are_found() {
    let a = calls(3, 60, Per::Actor);
    let b = calls(10, 60, Per::All);
    let c = calls(3, 61, Per::Actor);
    assert_eq!(super::duplicate(&[a.clone(), c.clone()]), None);
    assert_eq!(
        super::duplicate(&[a, c, b]),
        Some(2),
        "same metric and window"
    );
}

#[test]
fn scope_and_counter_keys_name_the_tool_or_class_and_the_actor() {
    assert_eq!(
        scope_key(TOOL, Per::Actor, "agent:a"),
        "tool:shop/refund@agent:a"
    );
    assert_eq!(
        scope_key(Scope::Class("financial"), Per::All, "agent:a"),
        "class:financial"
    );
    let l = calls(3, 60, Per::All);
    assert_eq!(
        limit_key("class:financial", &l),
        "class:financial|calls|60000ms"
    );
    assert_eq!(
        limit_key("tool:shop/refund", &sum(5.0, 86400)),
        "tool:shop/refund|sum:/amount|86400000ms"
    );
}

/// Run `n` calls through check + charge, as the gate does; the result of each.
fn run(
    state: &mut State,
    limits: &[(Scope<'_>, &Limit, Option<&str>)],
    a: &Map<String, Value>,
    actor: &str,
    at: DateTime<Utc>,
    n: usize,
) -> Vec<Check> {
    (0..n)
        .map(|_| {
            let c = check(limits, a, None, actor, at, state);
            if let Check::Pass(charges) = &c {
                state.charge(charges, at);
            }
            c
        })
        .collect()
}

#[test]
fn the_call_after_max_calls_crosses_and_other_actors_have_their_own_count() {
    let l = calls(3, 60, Per::Actor);
    let limits = [(TOOL, &l, Some("ops"))];
    let mut s = State::default();
    let a = args(json!({}));
    let got = run(&mut s, &limits, &a, "agent:a", T0, 4);
    assert!(
        got[..3].iter().all(|c| matches!(c, Check::Pass(_))),
        "{got:?}"
    );
    match &got[3] {
        Check::Crossed {
            scope,
            notify,
            used,
            ..
        } => {
            assert_eq!(scope, "tool:shop/refund@agent:a");
            assert_eq!(
                notify.as_deref(),
                Some("ops"),
                "the class role is the default"
            );
            assert!(used.contains("3 calls"), "{used}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        run(&mut s, &limits, &a, "agent:b", T0, 1)[0],
        Check::Pass(_)
    ));
}

#[test]
fn the_window_slides_calls_older_than_it_no_longer_count() {
    let l = calls(2, 60, Per::All);
    let limits = [(TOOL, &l, Some("ops"))];
    let mut s = State::default();
    let a = args(json!({}));
    assert!(
        run(&mut s, &limits, &a, "x", T0, 2)
            .iter()
            .all(|c| matches!(c, Check::Pass(_)))
    );
    let inside = T0 + TimeDelta::seconds(59);
    assert!(matches!(
        run(&mut s, &limits, &a, "x", inside, 1)[0],
        Check::Crossed { .. }
    ));
    // one slot (half a second here) past the window, both calls have left it
    let after = T0 + TimeDelta::milliseconds(60_500);
    assert!(matches!(
        run(&mut s, &limits, &a, "x", after, 1)[0],
        Check::Pass(_)
    ));
}

#[test]
fn sums_add_up_exactly_to_the_limit_and_refuse_what_cannot_be_counted() {
    let l = sum(100.0, 86400);
    let limits = [(TOOL, &l, None)];
    let mut s = State::default();
    let c = |s: &mut State, v: Value| run(s, &limits, &args(v), "x", T0, 1).remove(0);
    assert!(matches!(c(&mut s, json!({"amount": 60})), Check::Pass(_)));
    assert!(
        matches!(c(&mut s, json!({"amount": 40})), Check::Pass(_)),
        "exactly at the limit is inside it"
    );
    match c(&mut s, json!({"amount": 0.01})) {
        Check::Crossed { notify, .. } => {
            assert_eq!(notify.as_deref(), Some("finance"), "the limit's own role")
        }
        other => panic!("{other:?}"),
    }
    for bad in [
        json!({}),
        json!({"amount": "5"}),
        json!({"amount": -5}),
        json!({"amount": null}),
    ] {
        assert!(
            matches!(
                c(&mut State::default(), bad.clone()),
                Check::Uncountable { .. }
            ),
            "{bad}: a negative or missing amount could be used to slip under a total"
        );
    }
}

#[test]
fn a_paused_scope_holds_every_call_until_resumed_and_resume_starts_afresh() {
    let l = calls(1, 60, Per::All);
    let limits = [(Scope::Class("internal"), &l, Some("ops"))];
    let mut s = State::default();
    let a = args(json!({}));
    let _ = run(&mut s, &limits, &a, "x", T0, 1);
    s.pause(Pause {
        scope: "class:internal".into(),
        since: T0,
        limit: l.describe(),
        call_id: "c1".into(),
        notify: Some("ops".into()),
    });
    let later = T0 + TimeDelta::hours(2);
    assert!(
        matches!(
            run(&mut s, &limits, &a, "x", later, 1)[0],
            Check::Paused { .. }
        ),
        "a pause does not expire by itself"
    );
    let (p, entries) = s.resume("class:internal").unwrap();
    assert_eq!(p.call_id, "c1");
    assert!(
        entries
            .iter()
            .any(|(k, v)| k == "pause/class:internal" && v.is_none())
    );
    assert!(
        entries
            .iter()
            .any(|(k, v)| k == "count/class:internal|calls|60000ms" && v.is_none())
    );
    assert_eq!(s.used("class:internal|calls|60000ms", T0), (0, 0.0));
    assert!(matches!(
        run(&mut s, &limits, &a, "x", T0, 1)[0],
        Check::Pass(_)
    ));
    assert!(
        s.resume("class:internal").is_none(),
        "nothing left to resume"
    );
}

#[test]
fn counters_and_pauses_come_back_from_their_entries_after_a_restart() {
    let l = sum(100.0, 3600);
    let limits = [(TOOL, &l, None)];
    let mut s = State::default();
    let mut entries = Vec::new();
    for amount in [30, 50] {
        let Check::Pass(ch) = check(&limits, &args(json!({"amount": amount})), None, "x", T0, &s)
        else {
            panic!()
        };
        entries.extend(s.charge(&ch, T0));
    }
    entries.extend(s.pause(Pause {
        scope: "tool:shop/refund".into(),
        since: T0,
        limit: "l".into(),
        call_id: "c".into(),
        notify: None,
    }));
    // the last entry per key wins, as in the table
    let mut table = std::collections::BTreeMap::new();
    for (k, v) in entries {
        table.insert(k, v.unwrap());
    }
    let meter = Meter::load(table.into_iter().collect()).unwrap();
    let back = meter.lock();
    assert_eq!(
        back.used(
            "tool:shop/refund|sum:/amount|3600000ms",
            T0 - TimeDelta::hours(1)
        ),
        (2, 80.0)
    );
    assert!(back.paused("tool:shop/refund").is_some());
    assert!(
        Meter::load(vec![("nonsense".into(), json!(1))]).is_err(),
        "unknown entries fail the start (fail closed)"
    );
}

/// The shared table as replicas leave it: the last entry per key wins, `None` removes.
fn table(
    entries: &mut std::collections::BTreeMap<String, Value>,
    changes: Vec<(String, Option<Value>)>,
) {
    for (k, v) in changes {
        match v {
            Some(v) => entries.insert(k, v),
            None => entries.remove(&k),
        };
    }
}

#[test]
fn replicas_count_each_others_calls_and_follow_each_others_pauses_and_resumes() {
    let l = calls(3, 60, Per::All);
    let limits = [(TOOL, &l, None)];
    let a = Meter::load_as(vec![], Some("host-a")).unwrap();
    let b = Meter::load_as(vec![], Some("host-b")).unwrap();
    let mut shared = std::collections::BTreeMap::new();
    let none = args(json!({}));
    let charge = |m: &Meter, shared: &mut std::collections::BTreeMap<String, Value>| {
        let mut s = m.lock();
        let c = check(&limits, &none, None, "x", T0, &*s);
        if let Check::Pass(ch) = &c {
            let e = s.charge(ch, T0);
            table(shared, e);
        }
        c
    };
    assert!(matches!(charge(&a, &mut shared), Check::Pass(_)));
    assert!(matches!(charge(&a, &mut shared), Check::Pass(_)));
    assert!(matches!(charge(&b, &mut shared), Check::Pass(_)));
    assert_eq!(
        shared.len(),
        2,
        "one entry per replica, neither overwriting the other"
    );
    // B has not read A's counter yet: it sees only its own call
    assert!(matches!(charge(&b, &mut shared), Check::Pass(_)));
    // after a heartbeat each sees all four: the next call on either crosses the limit of 3
    a.lock().absorb(shared.clone().into_iter().collect());
    b.lock().absorb(shared.clone().into_iter().collect());
    let key = "tool:shop/refund|calls|60000ms";
    assert_eq!(a.lock().used(key, T0 - TimeDelta::minutes(1)).0, 4);
    assert_eq!(b.lock().used(key, T0 - TimeDelta::minutes(1)).0, 4);
    assert!(matches!(charge(&b, &mut shared), Check::Crossed { .. }));
    // B pauses the scope; A follows once it reads the table
    let pause = Pause {
        scope: "tool:shop/refund".into(),
        since: T0,
        limit: "l".into(),
        call_id: "c".into(),
        notify: None,
    };
    let e = b.lock().pause(pause);
    table(&mut shared, e);
    a.lock().absorb(shared.clone().into_iter().collect());
    b.lock().absorb(shared.clone().into_iter().collect());
    assert!(a.lock().paused("tool:shop/refund").is_some());
    // resumed on A: every replica's counters for the scope go, and B follows
    let (_, e) = a.lock().resume("tool:shop/refund").expect("paused");
    table(&mut shared, e);
    assert!(shared.is_empty(), "{shared:?}");
    b.lock().absorb(shared.clone().into_iter().collect());
    assert!(b.lock().paused("tool:shop/refund").is_none());
    assert_eq!(b.lock().used(key, T0 - TimeDelta::minutes(1)).0, 0);
    // copied back to a single gate's redb ledger: every replica's counter still counts
    let one = super::Charge {
        key: key.into(),
        window: Duration::from_secs(60),
        amount: 0.0,
    };
    for m in [&b, &a] {
        let e = m.lock().charge(std::slice::from_ref(&one), T0);
        table(&mut shared, e);
    }
    let single = Meter::load(shared.clone().into_iter().collect()).unwrap();
    assert_eq!(single.lock().used(key, T0 - TimeDelta::minutes(1)).0, 2);
    assert!(Meter::load(vec![("count@0123456789abcdef/k".into(), json!({}))]).is_err());
}

mod properties {
    use chrono::{DateTime, TimeDelta, Utc};
    use proptest::prelude::*;
    use serde_json::json;

    use super::super::meter::State;
    use super::super::{Check, Per, Scope, check};
    use super::{T0, args, calls, sum};

    proptest! {
        /// Whatever the amounts and their order, the autopilot total never exceeds the limit,
        /// and a call past it never passes.
        #[test]
        fn sums_never_pass_the_limit(amounts in proptest::collection::vec(-50.0f64..200.0, 1..40), max in 1.0f64..500.0) {
            let l = sum(max, 3600);
            let limits = [(Scope::Class("c"), &l, None)];
            let mut s = State::default();
            let mut total = 0.0;
            for a in amounts {
                match check(&limits, &args(json!({"amount": a})), None, "x", T0, &s) {
                    Check::Pass(ch) => {
                        prop_assert!(a >= 0.0);
                        total += a;
                        s.charge(&ch, T0);
                    }
                    Check::Crossed { .. } => prop_assert!(total + a > max),
                    Check::Uncountable { .. } => prop_assert!(a < 0.0),
                    Check::Paused { .. } => prop_assert!(false, "nothing paused"),
                }
                prop_assert!(total <= max);
            }
        }

        /// Counted calls never exceed max_calls within one window, for any spacing of calls.
        #[test]
        fn calls_never_pass_the_count(gaps in proptest::collection::vec(0i64..30_000, 1..60), max in 1u64..10) {
            let l = calls(max, 60, Per::All);
            let limits = [(Scope::Class("c"), &l, None)];
            let mut s = State::default();
            let mut at = T0;
            let mut passed: Vec<DateTime<Utc>> = Vec::new();
            for g in gaps {
                at += TimeDelta::milliseconds(g);
                if let Check::Pass(ch) = check(&limits, &args(json!({})), None, "x", at, &s) {
                    s.charge(&ch, at);
                    passed.push(at);
                }
                let in_window = passed.iter().filter(|t| **t > at - TimeDelta::seconds(60)).count();
                prop_assert!(in_window as u64 <= max, "{} calls in the last minute, max {}", in_window, max);
            }
        }
    }
}
