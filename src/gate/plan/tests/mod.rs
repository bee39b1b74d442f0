//! Table tests of the gate's plan: every next step, its rows, its state change and its undo,
//! with no tool server, ledger or desk — only the setup, the tools served and the meter's state.

use serde_json::{Value, json};

use super::{MeterChange, Plan, Step, Tallying, Then};
use crate::drift::meter::State;
use crate::ledger::{ItemKind, NewRow};
use world::{call, inputs, planned, world};

mod paths;
mod world;

/// A plan at a glance.
#[derive(Debug, PartialEq)]
pub(super) struct Glance {
    verdict: &'static str,
    step: &'static str,
    rows: Vec<&'static str>,
    items: Vec<ItemKind>,
    marks: usize,
    meter: &'static str,
    tally: Tallying,
}

pub(super) fn kinds(rows: &[NewRow]) -> Vec<&'static str> {
    rows.iter().map(|r| r.row.kind()).collect()
}

pub(super) fn glance(p: &Plan<'_>) -> Glance {
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

pub(super) struct Case {
    name: &'static str,
    review: bool,
    tool: &'static str,
    args: Value,
    want: Glance,
}

pub(super) fn want(
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

pub(super) const PV: [&str; 2] = ["proposal", "verdict"];
pub(super) const REFUSED: [&str; 3] = ["proposal", "verdict", "outcome"];
pub(super) const HELD: [&str; 3] = ["proposal", "verdict", "held"];

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
