//! A policy file compiled into the [`Policy`] `decide` reads: roles, classes (their paths,
//! switches and limits), actors and the review role, each checked with file, line and key. It
//! must never read a file or look at a tool call.

use std::collections::BTreeMap;

use super::file::{ClassRuleFile, duration_or};
use super::{
    ClassRule, DEFAULT_TIMEOUT, FailPath, OnTimeout, PathKind, Policy, PolicyFile,
    REFUSED_PER_MINUTE_DEFAULT, RETENTION_DEFAULT, RETENTION_SIGNED, RETRY_WINDOW_DEFAULT, Role,
    SignIn, looks_like_email, parse_retention,
};
use serde_spanned::Spanned;

use crate::diag::{Diagnostic, Source};

/// Compile a parsed policy, reporting every problem with its location. The policy is returned
/// even when there are errors (best effort), so manifests can still be checked against it; a
/// caller must not serve with a policy that came with errors.
pub fn compile(src: &Source, file: PolicyFile) -> (Policy, Vec<Diagnostic>) {
    let mut errors = Vec::new();
    if file.version.get_ref().trim().is_empty() {
        errors.push(src.error(Some(file.version.span()), "version", "must not be empty"));
    }
    let roles = compile_roles(src, &file, &mut errors);
    let classes = compile_classes(src, &file, &roles, &mut errors);
    let actors = compile_actors(src, &file, &classes, &mut errors);
    let review_role = compile_review(src, &file, &roles, &mut errors);
    let refused_per_minute = match &file.refused_per_minute {
        None => REFUSED_PER_MINUTE_DEFAULT,
        Some(n) if *n.get_ref() == 0 => {
            errors.push(src.error(
                Some(n.span()),
                "refused_per_minute",
                "must be at least 1: some refused calls of every minute are recorded whole",
            ));
            REFUSED_PER_MINUTE_DEFAULT
        }
        Some(n) => *n.get_ref(),
    };
    (
        Policy {
            review_role,
            refused_per_minute,
            version: file.version.into_inner(),
            classes,
            roles,
            actors,
        },
        errors,
    )
}

/// `[roles]`: addresses, escalation (a chain must end), sign-in and second factor.
fn compile_roles(
    src: &Source,
    file: &PolicyFile,
    errors: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Role> {
    let mut roles = BTreeMap::new();
    for (name, role) in &file.roles {
        let key = format!("roles.{name}");
        let r = role.get_ref();
        if r.emails.is_empty() {
            errors.push(src.error(
                Some(role.span()),
                &format!("{key}.emails"),
                "a role needs at least one email address",
            ));
        }
        for e in &r.emails {
            if !looks_like_email(e) {
                errors.push(src.error(
                    Some(role.span()),
                    &format!("{key}.emails"),
                    format!("`{e}` is not an email address"),
                ));
            }
        }
        roles.insert(
            name.clone(),
            Role {
                emails: r.emails.clone(),
                escalate_to: r.escalate_to.clone(),
                sign_in: r.sign_in,
                second_factor: r.second_factor,
                reveal_redacted: r.reveal_redacted.as_ref().is_some_and(|v| *v.get_ref()),
                channels: r.channels.clone(),
            },
        );
        if let Some(reveal) = r.reveal_redacted.as_ref().filter(|v| *v.get_ref())
            && r.sign_in != SignIn::Oidc
        {
            errors.push(src.error(
                Some(reveal.span()),
                &format!("{key}.reveal_redacted"),
                "revealing redacted values needs `sign_in = \"oidc\"`: a link alone can be forwarded",
            ));
        }
    }
    for (name, role) in &file.roles {
        if let Some(up) = &role.get_ref().escalate_to {
            if !roles.contains_key(up) {
                errors.push(src.error(
                    Some(role.span()),
                    &format!("roles.{name}.escalate_to"),
                    format!("unknown role `{up}`"),
                ));
            }
        }
        // An escalation chain must end (in deny), so it may not come back to a role.
        let mut seen = vec![name.as_str()];
        let mut at = name.as_str();
        while let Some(up) = roles.get(at).and_then(|r| r.escalate_to.as_deref()) {
            if seen.contains(&up) {
                errors.push(src.error(
                    Some(role.span()),
                    &format!("roles.{name}.escalate_to"),
                    format!(
                        "escalation loops back to `{up}` ({} → {up}); a chain must end",
                        seen.join(" → ")
                    ),
                ));
                break;
            }
            seen.push(up);
            at = up;
        }
    }
    roles
}

/// `[classes]`: each class's path, role, timeouts, requirements, conditions and limits.
fn compile_classes(
    src: &Source,
    file: &PolicyFile,
    roles: &BTreeMap<String, Role>,
    errors: &mut Vec<Diagnostic>,
) -> BTreeMap<String, ClassRule> {
    let mut classes = BTreeMap::new();
    for (name, rule) in &file.classes {
        let class = compile_class(src, name, rule, roles, errors);
        classes.insert(name.clone(), class);
    }
    classes
}

/// One class, its problems reported in the order its keys are checked.
fn compile_class(
    src: &Source,
    name: &str,
    rule: &Spanned<ClassRuleFile>,
    roles: &BTreeMap<String, Role>,
    errors: &mut Vec<Diagnostic>,
) -> ClassRule {
    let key = format!("classes.{name}");
    let r = rule.get_ref();
    let role = r.role.as_ref().map(|s| s.get_ref().clone());
    if let Some(role_s) = &r.role
        && !roles.contains_key(role_s.get_ref())
    {
        errors.push(src.error(
            Some(role_s.span()),
            &format!("{key}.role"),
            format!(
                "unknown role `{}` (define it under [roles])",
                role_s.get_ref()
            ),
        ));
    }
    let retry_window = duration_or(
        src,
        &r.retry_window,
        &format!("{key}.retry_window"),
        RETRY_WINDOW_DEFAULT,
        errors,
    );
    let timeout = duration_or(
        src,
        &r.timeout,
        &format!("{key}.timeout"),
        DEFAULT_TIMEOUT,
        errors,
    );
    let at = (src, &key[..], rule.span());
    let on_fail = approval_rules(at.clone(), r, role.as_deref(), roles, errors);
    let min_approvals = min_approvals(at.clone(), r, role.as_deref(), roles, errors);
    let conditions = class_conditions(at.clone(), r, roles, errors);
    let limits = class_limits(at.clone(), r, role.as_deref(), roles, errors);
    let signed = switch(
        at.clone(),
        "signed",
        &r.signed,
        SIGNED_BY_NAME,
        name,
        errors,
    );
    let retention = match &r.retention {
        None if signed => RETENTION_SIGNED,
        None => RETENTION_DEFAULT,
        Some(t) => parse_retention(t).unwrap_or_else(|msg| {
            errors.push(src.error(Some(rule.span()), &format!("{key}.retention"), msg));
            RETENTION_SIGNED
        }),
    };
    if let Some(j) = crate::drift::duplicate(&limits) {
        errors.push(src.error(
            Some(rule.span()),
            &format!("{key}.limits[{j}]"),
            "counts the same thing over the same window as an earlier limit; keep one",
        ));
    }
    ClassRule {
        path: r.path,
        role,
        timeout,
        on_timeout: r.on_timeout,
        require_evidence: r.require_evidence,
        require_reversal: switch(
            at,
            "require_reversal",
            &r.require_reversal,
            REVERSAL_BY_NAME,
            name,
            errors,
        ),
        on_fail,
        min_approvals,
        conditions,
        limits,
        signed,
        retention,
        retry_window,
        second_factor: r.second_factor,
        remind_at: r.remind_at.as_ref().and_then(|t| {
            crate::policy::parse_remind_at(t.get_ref())
                .map_err(|msg| {
                    errors.push(src.error(Some(t.span()), &format!("{key}.remind_at"), msg))
                })
                .ok()
        }),
    }
}

/// Where a class's problems are reported: the file, the class's key, its span.
type At<'a> = (&'a Source, &'a str, std::ops::Range<usize>);

/// What asking a person needs: `approve` (as path or `on_fail`) a role, `escalate` a role with
/// `escalate_to`. The path a failed requirement takes.
fn approval_rules(
    (src, key, span): At<'_>,
    r: &ClassRuleFile,
    role: Option<&str>,
    roles: &BTreeMap<String, Role>,
    errors: &mut Vec<Diagnostic>,
) -> FailPath {
    if r.path == PathKind::Approve && role.is_none() {
        errors.push(src.error(
            Some(span.clone()),
            &format!("{key}.role"),
            "path `approve` needs a `role` to ask",
        ));
    }
    let on_fail = match (r.on_fail, role) {
        (Some(FailPath::Approve), None) => {
            errors.push(src.error(
                Some(span.clone()),
                &format!("{key}.on_fail"),
                "`on_fail = \"approve\"` needs a `role`",
            ));
            FailPath::Quarantine
        }
        (Some(p), _) => p,
        (None, Some(_)) => FailPath::Approve,
        (None, None) => FailPath::Quarantine,
    };
    if r.on_timeout == OnTimeout::Escalate {
        let has_senior = role
            .and_then(|n| roles.get(n))
            .is_some_and(|ro| ro.escalate_to.is_some());
        if role.is_some() && !has_senior {
            errors.push(src.error(
                Some(span),
                &format!("{key}.on_timeout"),
                "`escalate` needs the role to name `escalate_to`",
            ));
        }
    }
    on_fail
}

/// `min_approvals`: at least 1, and no more than the role has addresses.
fn min_approvals(
    (src, key, span): At<'_>,
    r: &ClassRuleFile,
    role: Option<&str>,
    roles: &BTreeMap<String, Role>,
    errors: &mut Vec<Diagnostic>,
) -> u32 {
    let min_approvals = r.min_approvals.unwrap_or(1);
    if min_approvals == 0 {
        errors.push(src.error(
            Some(span.clone()),
            &format!("{key}.min_approvals"),
            "must be at least 1",
        ));
    }
    if let Some(n) = role.and_then(|ro| roles.get(ro)).map(|ro| ro.emails.len())
        && (min_approvals as usize) > n
    {
        errors.push(src.error(
            Some(span),
            &format!("{key}.min_approvals"),
            format!(
                "{min_approvals} approvals needed but role `{}` has {n} address(es)",
                role.unwrap_or("")
            ),
        ));
    }
    min_approvals.max(1)
}

/// The class's conditions, compiled; a role one names must exist.
fn class_conditions(
    (src, key, span): At<'_>,
    r: &ClassRuleFile,
    roles: &BTreeMap<String, Role>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<crate::condition::Condition> {
    let mut conditions = Vec::new();
    for (j, c) in r.conditions.iter().enumerate() {
        match crate::condition::compile(c) {
            Ok(c) => {
                if let Some(role) = &c.role
                    && !roles.contains_key(role)
                {
                    errors.push(src.error(
                        Some(span.clone()),
                        &format!("{key}.conditions[{j}].role"),
                        format!("unknown role `{role}`"),
                    ));
                }
                conditions.push(c)
            }
            Err(msg) => {
                errors.push(src.error(Some(span.clone()), &format!("{key}.conditions[{j}]"), msg))
            }
        }
    }
    conditions
}

/// The class's rate limits, compiled; each needs a role to tell (its `notify`, else the class's).
fn class_limits(
    (src, key, span): At<'_>,
    r: &ClassRuleFile,
    role: Option<&str>,
    roles: &BTreeMap<String, Role>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<crate::drift::Limit> {
    let mut limits = Vec::new();
    for (j, l) in r.limits.iter().enumerate() {
        let at = format!("{key}.limits[{j}]");
        match crate::drift::compile(l) {
            Ok(l) => {
                match l.notify.as_deref().or(role) {
                    Some(n) if !roles.contains_key(n) => errors.push(src.error(
                        Some(span.clone()),
                        &format!("{at}.notify"),
                        format!("unknown role `{n}`"),
                    )),
                    None => errors.push(src.error(
                        Some(span.clone()),
                        &format!("{at}.notify"),
                        "a limit needs a role to tell when it pauses autopilot: set `notify` or the class's `role`",
                    )),
                    Some(_) => {}
                }
                limits.push(l);
            }
            Err(msg) => errors.push(src.error(Some(span.clone()), &at, msg)),
        }
    }
    limits
}

/// Classes whose rows are signed when the policy does not write `signed` (an older default).
const SIGNED_BY_NAME: &[&str] = &["financial", "destructive"];
/// Classes that need a reversal tool when the policy does not write `require_reversal`.
const REVERSAL_BY_NAME: &[&str] = &["internal_reversible"];

/// A class's on/off switch: the key as written, else `false` — except for the classes an older
/// version switched on by name alone, which keep that default with a warning asking for the key.
fn switch(
    (src, class_key, span): (&Source, &str, std::ops::Range<usize>),
    name: &str,
    written: &Option<serde_spanned::Spanned<bool>>,
    on_by_name: &[&str],
    class: &str,
    errors: &mut Vec<Diagnostic>,
) -> bool {
    if let Some(v) = written {
        return *v.get_ref();
    }
    let on = on_by_name.contains(&class);
    if on {
        errors.push(src.warning(
            Some(span),
            &format!("{class_key}.{name}"),
            format!(
                "`{name}` is on because the class is named `{class}` (an older default); write `{name} = true` (or `false`): a class's name will stop switching anything on"
            ),
        ));
    }
    on
}

/// `[actors]`: the only classes each listed actor may use.
fn compile_actors(
    src: &Source,
    file: &PolicyFile,
    classes: &BTreeMap<String, ClassRule>,
    errors: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Vec<String>> {
    let mut actors = BTreeMap::new();
    for (actor, a) in &file.actors {
        for c in &a.classes {
            if !classes.contains_key(c.get_ref()) {
                errors.push(src.error(
                    Some(c.span()),
                    &format!("actors.{actor}.classes"),
                    format!(
                        "unknown class `{}` (the policy's classes: {})",
                        c.get_ref(),
                        classes.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        let names = a.classes.iter().map(|c| c.get_ref().clone()).collect();
        actors.insert(actor.clone(), names);
    }
    actors
}

/// `[review] role`, which must be a defined role.
fn compile_review(
    src: &Source,
    file: &PolicyFile,
    roles: &BTreeMap<String, Role>,
    errors: &mut Vec<Diagnostic>,
) -> Option<String> {
    let review_role = file.review.as_ref().map(|r| r.role.get_ref().clone());
    if let Some(r) = &file.review {
        if !roles.contains_key(r.role.get_ref()) {
            errors.push(src.error(
                Some(r.role.span()),
                "review.role",
                format!(
                    "unknown role `{}` (define it under [roles])",
                    r.role.get_ref()
                ),
            ));
        }
    }
    review_role
}
