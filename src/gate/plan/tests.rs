//! Table tests of the gate's plan: every next step, its rows, its state change and its undo,
//! with no tool server, ledger or desk — only the setup, the tools served and the meter's state.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

use super::{
    Commit, Given, MeterChange, Plan, Snapshot, Step, Tallying, Then, Undo, incoming, plan,
};
use crate::config::{Setup, load_setup};
use crate::drift::Usage;
use crate::drift::meter::State;
use crate::gate::GateCall;
use crate::gate::retries::Retried;
use crate::ledger::{ItemKind, NewRow, Row};
use crate::live::ChangedTools;
use crate::mcp::downstream::{ToolDef, ToolSet};
use crate::retry::{Asked, Entry, Fresh, Item, Retry};

const NOW: OffsetDateTime = datetime!(2026-12-03 10:00:00 UTC);
const ID: &str = "call-1";

const MANIFESTS: &str = r#"
[[tool]]
server = "shop"
name = "echo"
class = "read_only"
target = "t"
impact = "i"
reversal = "none: reads"

[[tool]]
server = "shop"
name = "lookup"
class = "limited"
target = "t"
impact = "i"
reversal = "none: reads"

[[tool]]
server = "shop"
name = "refund"
class = "financial"
target = "t"
impact = "i"
reversal = "none: final"

[[tool]]
server = "shop"
name = "pay"
class = "financial"
target = "t"
impact = "i"
reversal = "none: final"
redact = ["/card"]

[[tool]]
server = "shop"
name = "wipe"
class = "forbidden"
target = "t"
impact = "i"
reversal = "none: final"

[[tool]]
server = "shop"
name = "purge"
class = "evidence"
target = "t"
impact = "i"
reversal = "none: final"

[[tool]]
server = "shop"
name = "odd"
class = "suspect"
target = "t"
impact = "i"
reversal = "none: reads"
redact = ["/card"]
"#;

/// Every path's class, with a review role (`[review]`) or without.
fn policy(review: bool) -> String {
    let mut p = String::from(
        "version = \"v1\"\n[classes]\n\
         read_only = { path = \"allow\" }\n\
         limited = { path = \"allow\", limits = [{ window = \"1h\", max_calls = 1, notify = \"ops\" }] }\n\
         financial = { path = \"approve\", role = \"finance\", signed = false }\n\
         forbidden = { path = \"deny\" }\n\
         evidence = { path = \"deny\", signed = true }\n\
         suspect = { path = \"quarantine\" }\n\
         [roles]\nfinance = { emails = [\"f@example.com\"] }\nops = { emails = [\"o@example.com\"] }\n",
    );
    if review {
        p.push_str("[review]\nrole = \"ops\"\n");
    }
    p
}

/// A setup and the tools served: every manifest's tool, and `mystery`, which none describes.
struct World {
    _dir: tempfile::TempDir,
    setup: Setup,
    changed: ChangedTools,
    served: ToolSet,
    sealer: crate::seal::Sealer,
}

fn world(review: bool) -> World {
    let dir = tempfile::tempdir().unwrap();
    let w = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "airlock.toml",
        "[[server]]\nname = \"shop\"\ncommand = \"true\"\nprefix = \"\"\n",
    );
    w("tool-manifests/m.toml", MANIFESTS);
    w("policies/p.toml", &policy(review));
    let setup = load_setup(&dir.path().join("airlock.toml")).unwrap();
    let mut served = ToolSet::default();
    let def = |name: &str| ToolDef {
        server: "shop".into(),
        name: name.into(),
        exposed: name.into(),
        definition: json!({"name": name}),
        definition_hash: format!("hash-{name}"),
    };
    let names = ["echo", "lookup", "refund", "pay", "wipe", "purge", "odd"];
    let problems = served.add(
        "shop",
        names.iter().chain(&["mystery"]).map(|n| def(n)).collect(),
    );
    assert!(problems.is_empty());
    World {
        _dir: dir,
        setup,
        changed: ChangedTools::new(),
        served,
        sealer: crate::seal::Sealer::random().unwrap(),
    }
}

fn call(tool: &str, arguments: Value) -> GateCall {
    GateCall {
        actor: Some("agent:a".into()),
        relay: None,
        tool: tool.into(),
        arguments: arguments.as_object().cloned().unwrap_or_default(),
        meta: None,
        cancel: None,
    }
}

/// What a test varies beyond the call.
struct Inputs<'a> {
    retried: Retried,
    usage: &'a State,
    /// Calls of the tool already waiting for review.
    waiting: usize,
    /// Whether sealing the redacted values works.
    seals: bool,
}

fn inputs(usage: &State) -> Inputs<'_> {
    Inputs {
        retried: Retried::found(None, None),
        usage,
        waiting: 0,
        seals: true,
    }
}

/// Plan `c` in `w` and look at the plan through `look`.
fn planned<T>(w: &World, c: &GateCall, i: Inputs<'_>, look: impl FnOnce(Plan<'_>) -> T) -> T {
    let snapshot = Snapshot {
        setup: &w.setup,
        changed: &w.changed,
        served: &w.served,
    };
    let (inc, recorded) = incoming(&snapshot, c, ID, NOW, w.sealer.keys());
    let sealed = match (&recorded.redacted, i.seals) {
        (Some(r), true) => Ok(Some(format!("sealed:{}", r.secrets.len()))),
        (Some(_), false) => Err(" Its redacted values could not be sealed (test)."),
        (None, _) => Ok(None),
    };
    let waiting = |_: &str, _: &str| i.waiting;
    let given = Given {
        snapshot: &snapshot,
        incoming: inc,
        recorded,
        retried: i.retried,
        sealed,
        waiting: &waiting,
    };
    look(plan(given, i.usage as &dyn Usage))
}

/// A plan at a glance.
#[derive(Debug, PartialEq)]
struct Glance {
    verdict: &'static str,
    step: &'static str,
    rows: Vec<&'static str>,
    items: Vec<ItemKind>,
    marks: usize,
    meter: &'static str,
    tally: Tallying,
}

fn kinds(rows: &[NewRow]) -> Vec<&'static str> {
    rows.iter().map(|r| r.row.kind()).collect()
}

fn glance(p: &Plan<'_>) -> Glance {
    let verdict = p.decision.verdict.name();
    let bare = |step, rows: &[NewRow]| Glance {
        verdict,
        step,
        rows: kinds(rows),
        items: vec![],
        marks: 0,
        meter: "none",
        tally: Tallying::Exempt,
    };
    match &p.step {
        Step::Repeat { rows, .. } => bare("repeat", rows),
        Step::Suspend(s) => bare("suspend", &s.rows),
        Step::Fail(_) => bare("fail", &[]),
        Step::Commit(c) => Glance {
            verdict,
            step: match &c.then {
                Then::Forward { .. } => "forward",
                Then::Refuse { held: Some(_), .. } => "hold",
                Then::Refuse { held: None, .. } => "refuse",
            },
            rows: kinds(&c.change.rows),
            items: c.change.items.iter().map(|i| i.kind).collect(),
            marks: c.change.forwarded.len(),
            meter: match &c.meter {
                MeterChange::None => "none",
                MeterChange::Charge(_) => "charge",
                MeterChange::Pause(_) => "pause",
            },
            tally: c.tally,
        },
    }
}

struct Case {
    name: &'static str,
    review: bool,
    tool: &'static str,
    args: Value,
    want: Glance,
}

fn want(
    verdict: &'static str,
    step: &'static str,
    rows: &[&'static str],
    items: &[ItemKind],
    marks: usize,
    meter: &'static str,
    tally: Tallying,
) -> Glance {
    Glance {
        verdict,
        step,
        rows: rows.to_vec(),
        items: items.to_vec(),
        marks,
        meter,
        tally,
    }
}

const PV: [&str; 2] = ["proposal", "verdict"];
const REFUSED: [&str; 3] = ["proposal", "verdict", "outcome"];
const HELD: [&str; 3] = ["proposal", "verdict", "held"];

#[test]
fn every_path_plans_its_rows_its_state_change_and_its_next_step() {
    use Tallying::{Budgeted, Exempt, Whole};
    let none: &[ItemKind] = &[];
    let held = &[ItemKind::Held];
    let cases = [
        Case {
            name: "allow: forward, marked, charged, proposal and verdict only",
            review: true,
            tool: "echo",
            args: json!({"text": "hi"}),
            want: want("allow", "forward", &PV, none, 1, "charge", Exempt),
        },
        Case {
            name: "deny: refused, outcome not_run, tallied under the budget",
            review: true,
            tool: "wipe",
            args: json!({}),
            want: want("deny", "refuse", &REFUSED, none, 0, "none", Budgeted),
        },
        Case {
            name: "deny of a signed class: recorded whole whatever the budget",
            review: true,
            tool: "purge",
            args: json!({}),
            want: want("deny", "refuse", &REFUSED, none, 0, "none", Whole),
        },
        Case {
            name: "quarantine with a reviewer: held, its state committed with its rows",
            review: true,
            tool: "odd",
            args: json!({"card": "4111"}),
            want: want("quarantine", "hold", &HELD, held, 0, "none", Exempt),
        },
        Case {
            name: "quarantine without a reviewer: refused, not held",
            review: false,
            tool: "odd",
            args: json!({}),
            want: want("quarantine", "refuse", &REFUSED, none, 0, "none", Budgeted),
        },
        Case {
            name: "an unknown tool a server serves: quarantined and held",
            review: true,
            tool: "mystery",
            args: json!({}),
            want: want("quarantine", "hold", &HELD, held, 0, "none", Exempt),
        },
        Case {
            name: "a tool nobody serves: quarantined, nothing to hold",
            review: true,
            tool: "nowhere",
            args: json!({}),
            want: want("quarantine", "refuse", &REFUSED, none, 0, "none", Budgeted),
        },
        Case {
            name: "approve with a manifest: to the desk, rows committed with the envelope",
            review: true,
            tool: "refund",
            args: json!({"order": 1}),
            want: want("approve", "suspend", &PV, none, 0, "none", Exempt),
        },
        Case {
            name: "oversized arguments: denied, the proposal keeps no arguments",
            review: true,
            tool: "echo",
            args: json!({"text": "x".repeat(crate::decide::MAX_ARGUMENT_BYTES)}),
            want: want("deny", "refuse", &REFUSED, none, 0, "none", Budgeted),
        },
    ];
    for c in cases {
        let w = world(c.review);
        let usage = State::default();
        let got = planned(&w, &call(c.tool, c.args), inputs(&usage), |p| glance(&p));
        assert_eq!(got, c.want, "{}", c.name);
    }
}

/// The message of a plan that refuses (held or not).
fn message(p: &Plan<'_>) -> String {
    match &p.step {
        Step::Commit(c) => match &c.then {
            Then::Refuse { message, .. } => message.clone(),
            Then::Forward { .. } => String::new(),
        },
        Step::Fail(why) => why.clone(),
        _ => String::new(),
    }
}

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

/// What retries found for `c`: its key (with an idempotency key when `keyed`), and the earlier
/// call's entry when `earlier` names an item, attached to.
fn retried(w: &World, c: &GateCall, keyed: bool, earlier: Option<Item>) -> Retried {
    let snapshot = Snapshot {
        setup: &w.setup,
        changed: &w.changed,
        served: &w.served,
    };
    let (_, recorded) = incoming(&snapshot, c, ID, NOW, w.sealer.keys());
    let asked = Asked {
        actor: "agent:a",
        server: "shop",
        tool: &c.tool,
        arguments_sha256: &recorded.arguments_sha256,
        idempotency_key: keyed.then_some("k1"),
    };
    let found = earlier.map(|item| {
        let entry: Entry = asked.entry(item.clone(), "call-0", NOW);
        (entry, Retry::Attach(item))
    });
    Retried::found(Some(Fresh::of(&asked, None)), found)
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
