//! The lifecycle as a table: every phase against every event, and the start-up rule.

use super::{Event, Illegal, OnStart, Phase, on_start, open_to_decide, step};

const PHASES: [Phase; 4] = [
    Phase::Waiting,
    Phase::Deciding,
    Phase::Executing,
    Phase::Done,
];
const EVENTS: [Event; 5] = [
    Event::Decide,
    Event::Wait,
    Event::Run,
    Event::Close,
    Event::Finish,
];

/// The legal moves, and nothing else.
const LEGAL: [(Phase, Event, Phase); 6] = [
    (Phase::Waiting, Event::Decide, Phase::Deciding),
    (Phase::Waiting, Event::Close, Phase::Done),
    (Phase::Deciding, Event::Wait, Phase::Waiting),
    (Phase::Deciding, Event::Run, Phase::Executing),
    (Phase::Deciding, Event::Close, Phase::Done),
    (Phase::Executing, Event::Finish, Phase::Done),
];

#[test]
fn every_move_is_legal_exactly_when_the_table_lists_it() {
    for from in PHASES {
        for event in EVENTS {
            let want = LEGAL
                .iter()
                .find(|(f, e, _)| *f == from && *e == event)
                .map(|(_, _, to)| *to)
                .ok_or(Illegal { from, event });
            assert_eq!(step(from, event), want, "{from:?} + {event:?}");
        }
    }
}

#[test]
fn only_a_waiting_item_can_be_decided() {
    assert_eq!(open_to_decide(Phase::Waiting), Ok(()));
    for p in [Phase::Deciding, Phase::Executing, Phase::Done] {
        assert!(open_to_decide(p).is_err(), "{p:?}");
    }
}

#[test]
fn a_second_decision_meets_the_first_and_is_refused() {
    let deciding = step(Phase::Waiting, Event::Decide).expect("waiting is open");
    let second = step(deciding, Event::Decide).expect_err("decided once");
    assert_eq!(second.to_string(), "it is being decided (cannot Decide it)");
}

#[test]
fn nothing_runs_twice_and_done_is_final() {
    assert!(step(Phase::Executing, Event::Run).is_err());
    assert!(step(Phase::Done, Event::Run).is_err());
    for event in EVENTS {
        assert!(step(Phase::Done, event).is_err(), "{event:?}");
    }
}

#[test]
fn an_item_found_running_at_start_becomes_unknown_and_is_never_rerun() {
    assert_eq!(on_start(Phase::Executing), OnStart::Unknown);
    // and its unknown outcome is a legal finish
    assert_eq!(step(Phase::Executing, Event::Finish), Ok(Phase::Done));
}

#[test]
fn waiting_items_are_rearmed_at_start_and_finished_ones_left_alone() {
    assert_eq!(on_start(Phase::Waiting), OnStart::Rearm);
    // a decision in flight was never stored: the item still waits
    assert_eq!(on_start(Phase::Deciding), OnStart::Rearm);
    assert_eq!(on_start(Phase::Done), OnStart::Keep);
}
