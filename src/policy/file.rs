//! Policy files as written: the serde types (with spans for error locations) and their JSON
//! Schema. They only describe the format; [`super::compile`] validates them into a [`super::Policy`].

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;

use super::{FailPath, OnTimeout, PathKind, SecondFactor, SignIn};
use crate::diag::{Diagnostic, Source};

/// `policies/*.toml` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Airlock policy")]
pub struct PolicyFile {
    /// Recorded on every verdict, e.g. `2026-11-24.1`.
    #[schemars(with = "String")]
    pub version: Spanned<String>,
    /// Action class name → rule.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ClassRuleFile>")]
    pub classes: BTreeMap<String, Spanned<ClassRuleFile>>,
    /// Role name → who is asked.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RoleFile>")]
    pub roles: BTreeMap<String, Spanned<RoleFile>>,
    /// Actor id → what it may do; an actor listed here may only use the classes it names
    /// (anything else is denied). Actors not listed are limited by the classes alone.
    #[serde(default)]
    pub actors: BTreeMap<String, ActorFile>,
    /// Who reviews held calls (a tool no manifest describes, a call held by a condition or limit
    /// that names no role) and classifies unknown tools. Without it nothing is held: such calls
    /// are refused.
    pub review: Option<ReviewFile>,
    /// How many refused calls (denied, or quarantined and not held) of one agent a minute are
    /// recorded one by one; the rest are counted in one `refused_counted` row a minute.
    /// Default 60.
    #[schemars(with = "Option<u32>")]
    pub refused_per_minute: Option<Spanned<u32>>,
}

/// `[review]`: who reviews what is held.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewFile {
    /// The role whose members release or reject held calls and classify unknown tools.
    #[schemars(with = "String")]
    pub role: Spanned<String>,
}

/// One actor's limits as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorFile {
    /// The classes this actor may call; calls of any other class are denied.
    #[schemars(with = "Vec<String>")]
    pub classes: Vec<Spanned<String>>,
}

/// One class's rule as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassRuleFile {
    pub path: PathKind,
    /// The role that decides (`approve`) or is escalated to (`conditional`, `allow` with requirements).
    #[schemars(with = "Option<String>")]
    pub role: Option<Spanned<String>>,
    /// How long an approval may wait, e.g. `30m`, `2h` (default `1h`).
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// The manifest's `evidence` fields must be present in the call (`conditional` and `allow`).
    #[serde(default)]
    pub require_evidence: bool,
    /// The manifest must declare a reversal tool (`reversal = "tool:NAME"`) for autopilot.
    /// Default `false`, except for a class named `internal_reversible` that does not write the
    /// key (an older default; `airlock check` warns until the key is written).
    #[schemars(with = "Option<bool>")]
    pub require_reversal: Option<Spanned<bool>>,
    /// Where a call goes when a requirement fails; default `approve` when `role` is set, else `quarantine`.
    pub on_fail: Option<FailPath>,
    /// Distinct approvers needed to approve (default 1); any deny denies.
    pub min_approvals: Option<u32>,
    /// Conditions every tool of the class must meet for autopilot (`allow` and `conditional`).
    #[serde(default)]
    pub conditions: Vec<crate::condition::ConditionFile>,
    /// Rate limits on the class's autopilot calls; crossing one pauses autopilot for its scope
    /// and notifies a role (the limit's `notify`, else the class's `role`).
    #[serde(default)]
    pub limits: Vec<crate::drift::LimitFile>,
    /// Sign this class's ledger rows with the gate's Ed25519 key. Default `false`, except for
    /// classes named `financial` and `destructive` that do not write the key (an older default;
    /// `airlock check` warns until the key is written).
    #[schemars(with = "Option<bool>")]
    pub signed: Option<Spanned<bool>>,
    /// How long this class's ledger rows are kept before `airlock ledger prune` may remove
    /// them, e.g. `7y`, `400d` (default: 7 years for signed classes, 1 year otherwise).
    pub retention: Option<String>,
    /// How long after a call an identical one (same actor, tool and canonical arguments, or the
    /// same idempotency key) gets that call's settled outcome instead of running or being asked
    /// again, e.g. `24h` (the default; at least `1s`, at most `366d`). An open approval or held
    /// call is attached to whatever this says.
    #[schemars(with = "Option<String>")]
    pub retry_window: Option<Spanned<String>>,
    /// A second factor every approver of this class's calls gives with the decision
    /// (`"totp"`: a code from the app enrolled with `airlock approver enroll EMAIL`).
    pub second_factor: Option<SecondFactor>,
    /// Remind the approvers who have not decided when this share of a stage's timeout has
    /// passed, e.g. `"50%"` (1% to 99%; default: no reminder). Once per approver per stage, by
    /// mail and on the role's channels.
    #[schemars(with = "Option<String>")]
    pub remind_at: Option<Spanned<String>>,
}

/// One role as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleFile {
    /// Addresses that receive approval requests.
    #[serde(default)]
    pub emails: Vec<String>,
    /// The more senior role asked when an approval escalates.
    pub escalate_to: Option<String>,
    /// How a member proves who they are before deciding: `"link"` (the mailed link alone, the
    /// default) or `"oidc"` (sign in with the provider of `[sign_in]` in airlock.toml as the
    /// link's address).
    #[serde(default)]
    pub sign_in: SignIn,
    /// A second factor the role's members give with every decision (`"totp"`), whatever the class.
    pub second_factor: Option<SecondFactor>,
    /// Show this role's approvers the values a manifest's `redact` hides (on the approval page,
    /// after sign-in; never in mail). Needs `sign_in = "oidc"`: a forwarded link reveals nothing.
    #[schemars(with = "Option<bool>")]
    pub reveal_redacted: Option<Spanned<bool>>,
    /// Channels that announce this role's approvals besides mail, each `KIND:NAME` as defined
    /// by a `[[channel]]` in airlock.toml, e.g. `["webhook:ops"]`. They carry the news; the
    /// decision is made on Airlock's page.
    #[serde(default)]
    pub channels: Vec<String>,
}

/// A duration key as written, or `default` when absent or wrong (the error recorded at its span).
pub(super) fn duration_or(
    src: &Source,
    written: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
    errors: &mut Vec<Diagnostic>,
) -> Duration {
    let Some(t) = written else { return default };
    super::parse_duration(t.get_ref()).unwrap_or_else(|msg| {
        errors.push(src.error(Some(t.span()), key, msg));
        default
    })
}
