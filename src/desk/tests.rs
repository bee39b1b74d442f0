//! Every kind's stored states, as the one lifecycle sees them.

use serde_json::json;

use super::{OnStart, Phase, lifecycle};
use crate::approval::state::{Outcome, Status};
use crate::quarantine::HeldStatus;

#[test]
fn every_approval_state_has_its_phase() {
    let cases = [
        (Status::Pending, Phase::Waiting),
        (
            Status::Executing {
                idempotency_key: "k".into(),
            },
            Phase::Executing,
        ),
        (Status::Done(Outcome::OutcomeUnknown), Phase::Done),
        (Status::Done(Outcome::Expired), Phase::Done),
    ];
    for (status, phase) in cases {
        assert_eq!(status.phase(), phase, "{status:?}");
    }
}

#[test]
fn every_held_state_has_its_phase() {
    let by = || "ann@example.com".to_string();
    let cases = [
        (HeldStatus::Held, Phase::Waiting),
        (HeldStatus::Releasing { by: by() }, Phase::Executing),
        (
            HeldStatus::Released {
                by: by(),
                result: json!({}),
                is_error: false,
            },
            Phase::Done,
        ),
        (
            HeldStatus::Failed {
                by: by(),
                error: "down".into(),
            },
            Phase::Done,
        ),
        (
            HeldStatus::Rejected {
                by: by(),
                reason: "no".into(),
            },
            Phase::Done,
        ),
        (HeldStatus::OutcomeUnknown { by: by() }, Phase::Done),
    ];
    for (status, phase) in cases {
        assert_eq!(status.phase(), phase, "{status:?}");
    }
}

#[test]
fn an_approval_and_a_held_call_found_running_at_start_are_both_made_unknown() {
    let approval = Status::Executing {
        idempotency_key: "k".into(),
    };
    let held = HeldStatus::Releasing {
        by: "ann@example.com".into(),
    };
    assert_eq!(lifecycle::on_start(approval.phase()), OnStart::Unknown);
    assert_eq!(lifecycle::on_start(held.phase()), OnStart::Unknown);
    assert_eq!(lifecycle::on_start(Status::Pending.phase()), OnStart::Rearm);
    assert_eq!(
        lifecycle::on_start(HeldStatus::Held.phase()),
        OnStart::Rearm
    );
}
