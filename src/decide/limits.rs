//! Step 8 of the precedence: an autopilot call must also fit the rate limits.

use super::{Call, Context, Decision, Reason, Verdict};
use crate::drift::{self, Check, Scope};
use crate::manifest::ToolManifest;
use crate::policy::ClassRule;

/// An autopilot call within the requirements still has to fit the rate limits (the class's,
/// then the tool's): a paused scope, a crossed limit or an uncountable amount holds it.
pub(super) fn limits(
    d: &mut Decision,
    call: &Call<'_>,
    m: &ToolManifest,
    rule: &ClassRule,
    ctx: &Context<'_>,
) {
    let role = rule.role.as_deref();
    let all: Vec<(Scope<'_>, &drift::Limit, Option<&str>)> = rule
        .limits
        .iter()
        .map(|l| (Scope::Class(&m.class), l, role))
        .chain(m.limits.iter().map(|l| {
            (
                Scope::Tool {
                    server: &m.server,
                    tool: &m.name,
                },
                l,
                role,
            )
        }))
        .collect();
    if all.is_empty() {
        return;
    }
    let hold = |d: &mut Decision, scope: &str, reason: Reason| {
        d.verdict = Verdict::Quarantine;
        d.rule = format!("drift.{scope}");
        d.reasons.push(reason);
    };
    match drift::check(
        &all,
        call.arguments,
        call.meta,
        ctx.actor,
        ctx.now,
        ctx.usage,
    ) {
        Check::Pass(charges) => {
            d.reasons.push(Reason::WithinLimits { limits: all.len() });
            d.charges = charges;
        }
        Check::Paused {
            scope,
            since,
            notify,
        } => {
            d.review_roles = notify.into_iter().collect();
            let since = crate::instant::rfc3339(&since);
            hold(d, &scope.clone(), Reason::AutopilotPaused { scope, since });
        }
        Check::Crossed {
            scope,
            limit,
            used,
            notify,
        } => {
            d.review_roles = notify.clone().into_iter().collect();
            hold(
                d,
                &scope.clone(),
                Reason::LimitReached {
                    scope,
                    limit,
                    used,
                    notify,
                },
            )
        }
        Check::Uncountable { scope, pointer } => hold(
            d,
            &scope.clone(),
            Reason::LimitUncountable { scope, pointer },
        ),
    }
}
