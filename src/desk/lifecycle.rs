//! The one lifecycle of every human decision, pure: **waiting → deciding → executing → done**.
//!
//! An approval, a held call and a paused scope are all items a person decides. Each kind keeps
//! its own rules for *what* a decision means (votes, stages and timeouts stay in
//! [`crate::approval::state`]; a held call's release runs it once, a rejection ends it; a
//! resume ends a pause and clears its counters), but where an item stands, which moves are
//! legal, and what a start after a crash does with it are decided here, once:
//!
//! - `Waiting`: stored, open, a person may decide it (its deadline armed, if it has one);
//! - `Deciding`: a decision (or a timeout) began (`Event::Decide`) and its commit is under way.
//!   Held in memory only, never stored: a second decider meets it and is refused; a failed
//!   commit puts the item back to `Waiting`, and a crash leaves whatever the ledger holds;
//! - `Executing`: the decision that says "run" is durable (an execution intent, a `held_released`
//!   row) and the call runs, once;
//! - `Done`: the outcome is committed (ran, failed, denied, rejected, expired, voided, resumed,
//!   or `outcome_unknown`).
//!
//! It must never do I/O, read a clock or know a kind's rules: the desk and the kinds commit and
//! act on what it answers.

use std::fmt;

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Waiting,
    Deciding,
    Executing,
    Done,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Waiting => "waiting",
            Phase::Deciding => "being decided",
            Phase::Executing => "running",
            Phase::Done => "done",
        })
    }
}

/// What happens to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A decision (by a person the authority rule authorized, or a deadline) is made: its
    /// commit begins.
    Decide,
    /// The decision's commit failed, or it leaves the item open (a vote counted, a new stage):
    /// the item waits again.
    Wait,
    /// The decision is durable and says run: the call runs once.
    Run,
    /// The decision is durable and ends the item without running anything (deny, reject,
    /// expire, resume), or Airlock withdrew it (a changed tool voids it).
    Close,
    /// The outcome of the run is durable (or it cannot have run: voided before it started).
    Finish,
}

/// A move the lifecycle does not allow: the item is not where the caller thought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("it is {from} (cannot {event:?} it)")]
pub struct Illegal {
    pub from: Phase,
    pub event: Event,
}

/// The phase after `event`, or why it is not allowed: the moves every kind's states follow.
pub fn step(from: Phase, event: Event) -> Result<Phase, Illegal> {
    use Event::{Close, Decide, Finish, Run, Wait};
    use Phase::{Deciding, Done, Executing, Waiting};
    match (from, event) {
        (Waiting, Decide) => Ok(Deciding),
        // Airlock withdraws an item nobody decided (a tool that changed voids its approval)
        (Waiting, Close) => Ok(Done),
        (Deciding, Wait) => Ok(Waiting),
        (Deciding, Run) => Ok(Executing),
        (Deciding, Close) => Ok(Done),
        (Executing, Finish) => Ok(Done),
        _ => Err(Illegal { from, event }),
    }
}

/// Whether a person may decide an item standing at `phase` now (only a waiting item).
pub fn open_to_decide(phase: Phase) -> Result<(), Illegal> {
    step(phase, Event::Decide).map(|_| ())
}

/// What a start (after a clean stop or a crash), or a replica adopting a dead one's work, does
/// with an item it finds stored at a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStart {
    /// Waiting for a person: re-arm its deadline and send what was not sent.
    Rearm,
    /// It was running when its gate stopped: whether it ran is unknown. Record
    /// `outcome_unknown` (done); never run it again.
    Unknown,
    /// Finished: nothing to do.
    Keep,
}

/// The one recovery rule for every kind.
pub fn on_start(stored: Phase) -> OnStart {
    match stored {
        // a decision in flight was never stored: what the ledger holds is still waiting
        Phase::Waiting | Phase::Deciding => OnStart::Rearm,
        Phase::Executing => OnStart::Unknown,
        Phase::Done => OnStart::Keep,
    }
}

#[cfg(test)]
mod tests;
