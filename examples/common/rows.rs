//! The rows the gate writes for one allowed call (proposal, verdict; the outcome apart), shared
//! by the examples that load the ledger without a gate (`ledger_load`, `ledger_floor`). It only
//! builds values; it never opens a ledger.

use serde_json::{Value, json};

use airlock::ledger::{NewRow, Row, row};

/// An allowed call of `tool` on the shop with `args`, by `actor`, under policy `policy`:
/// its proposal and verdict, and its outcome (result hash from `result`).
pub fn call_rows(
    call_id: &str,
    tool: &str,
    args: Value,
    (actor, policy): (&str, &str),
    signed: bool,
    result: &[u8],
) -> (Vec<NewRow>, NewRow) {
    let proposal = row::Proposal {
        tool: tool.into(),
        server: Some("shop".into()),
        tool_name: Some(tool.into()),
        arguments_sha256: airlock::canonical::sha256_hex(args.to_string().as_bytes()),
        arguments: args,
        meta: None,
        actor: actor.into(),
        redacted: None,
        arguments_preview: None,
        arguments_cut: None,
        arguments_bytes: None,
    };
    let verdict = row::Verdict {
        verdict: row::Decided::Allow,
        class: Some("read_only".into()),
        rule: "classes.read_only".into(),
        reasons: vec![json!({"code": "class_allows", "class": "read_only"})],
        policy_version: policy.into(),
        charges: Vec::new(),
        review_roles: Vec::new(),
        explanation: format!(
            "class `read_only` allows autopilot (rule `classes.read_only`, policy {policy})"
        ),
        signed,
    };
    let outcome = row::Outcome {
        result_sha256: Some(airlock::canonical::sha256_hex(result)),
        duration_us: Some(412),
        ..row::Outcome::of(row::OutcomeStatus::Ok)
    };
    (
        vec![
            NewRow::now(call_id, Row::Proposal(proposal)),
            NewRow::now(call_id, Row::Verdict(verdict)),
        ],
        NewRow::now(call_id, Row::Outcome(outcome)),
    )
}
