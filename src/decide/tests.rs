//! Table-driven tests of the decision core: every path, every reason.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{Call, Context, Decision, Reason, ToolManifest, Verdict, decide};
use crate::drift::NoUsage;
use crate::manifest::Reversal;
use crate::policy::{ClassRule, FailPath, OnTimeout, PathKind, Policy, Role};

fn rule(path: PathKind) -> ClassRule {
    ClassRule {
        path,
        role: None,
        timeout: Duration::from_secs(1800),
        on_timeout: OnTimeout::Deny,
        require_evidence: false,
        require_reversal: false,
        on_fail: FailPath::Quarantine,
        min_approvals: 1,
        conditions: vec![],
        limits: vec![],
        signed: false,
        retention: crate::policy::RETENTION_DEFAULT,
        retry_window: crate::policy::RETRY_WINDOW_DEFAULT,
        second_factor: None,
        remind_at: None,
    }
}

fn policy() -> Policy {
    let mut classes = BTreeMap::new();
    classes.insert("read_only".into(), rule(PathKind::Allow));
    classes.insert(
        "internal_reversible".into(),
        ClassRule {
            require_reversal: true,
            role: Some("ops".into()),
            on_fail: FailPath::Approve,
            ..rule(PathKind::Allow)
        },
    );
    classes.insert(
        "reversible_or_hold".into(),
        ClassRule {
            require_reversal: true,
            ..rule(PathKind::Allow)
        },
    );
    classes.insert(
        "customer_facing".into(),
        ClassRule {
            require_evidence: true,
            role: Some("support".into()),
            on_fail: FailPath::Approve,
            ..rule(PathKind::Conditional)
        },
    );
    classes.insert(
        "evidence_or_hold".into(),
        ClassRule {
            require_evidence: true,
            ..rule(PathKind::Conditional)
        },
    );
    classes.insert(
        "cond_both".into(),
        ClassRule {
            require_evidence: true,
            require_reversal: true,
            role: Some("support".into()),
            on_fail: FailPath::Approve,
            ..rule(PathKind::Conditional)
        },
    );
    classes.insert(
        "cond_empty".into(),
        ClassRule {
            role: Some("support".into()),
            on_fail: FailPath::Approve,
            ..rule(PathKind::Conditional)
        },
    );
    classes.insert("cond_empty_hold".into(), rule(PathKind::Conditional));
    classes.insert(
        "financial".into(),
        ClassRule {
            role: Some("finance".into()),
            on_timeout: OnTimeout::Escalate,
            ..rule(PathKind::Approve)
        },
    );
    classes.insert("approve_no_role".into(), rule(PathKind::Approve));
    classes.insert("destructive".into(), rule(PathKind::Deny));
    classes.insert("held".into(), rule(PathKind::Quarantine));
    let mut roles = BTreeMap::new();
    for r in ["ops", "support", "finance"] {
        roles.insert(
            r.to_string(),
            Role {
                emails: vec![format!("{r}@example.com")],
                escalate_to: None,
                sign_in: crate::policy::SignIn::Link,
                second_factor: None,
                reveal_redacted: false,
                channels: Vec::new(),
            },
        );
    }
    Policy {
        version: "test-1".into(),
        classes,
        roles,
        actors: [("agent:limited".to_string(), vec!["read_only".to_string()])].into(),
        review_role: Some("ops".into()),
        refused_per_minute: crate::policy::REFUSED_PER_MINUTE_DEFAULT,
    }
}

fn manifest(class: &str, reversal: Reversal, evidence: &[&str]) -> ToolManifest {
    ToolManifest {
        server: "shop".into(),
        name: "t".into(),
        class: class.into(),
        target: "x".into(),
        impact: "y".into(),
        reversal,
        evidence: evidence.iter().map(|s| s.to_string()).collect(),
        summary: None,
        conditions: vec![],
        limits: vec![],
        pin: None,
        redact: vec![],
        redact_lines: vec![],
        origin: "m.toml:1".into(),
    }
}

fn undo() -> Reversal {
    Reversal::Tool {
        tool: "undo".into(),
    }
}

fn none() -> Reversal {
    Reversal::None {
        reason: "cannot".into(),
    }
}

const NOW: DateTime<Utc> = crate::instant::utc(2026, 11, 24, 12, 0, 0);

fn run(tool: &str, m: Option<&ToolManifest>, args: Value, meta: Option<Value>) -> Decision {
    let args: Map<String, Value> = match args {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    let meta: Option<Map<String, Value>> = meta.and_then(|v| v.as_object().cloned());
    let len = serde_json::to_string(&args).map(|s| s.len()).unwrap_or(0);
    let call = Call {
        tool,
        arguments: &args,
        meta: meta.as_ref(),
        canonical_len: len,
        changed: None,
        reversal_served: true,
    };
    decide(
        &call,
        m,
        &policy(),
        &Context {
            actor: "agent:test",
            now: NOW,
            usage: &NoUsage,
        },
    )
}

fn codes(d: &Decision) -> Vec<&'static str> {
    d.reasons.iter().map(Reason::code).collect()
}

#[test]
fn every_path_and_reason() {
    struct Case {
        name: &'static str,
        class: Option<&'static str>,
        reversal: fn() -> Reversal,
        evidence: &'static [&'static str],
        args: Value,
        meta: Option<Value>,
        verdict: &'static str,
        rule: &'static str,
        codes: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "unknown tool is quarantined",
            class: None,
            reversal: none,
            evidence: &[],
            args: json!({}),
            meta: None,
            verdict: "quarantine",
            rule: "gate.unknown_tool",
            codes: &["unknown_tool"],
        },
        Case {
            name: "class missing from policy is quarantined",
            class: Some("mystery"),
            reversal: none,
            evidence: &[],
            args: json!({}),
            meta: None,
            verdict: "quarantine",
            rule: "gate.unknown_class",
            codes: &["class_not_in_policy"],
        },
        Case {
            name: "allow",
            class: Some("read_only"),
            reversal: none,
            evidence: &[],
            args: json!({"q": 1}),
            meta: None,
            verdict: "allow",
            rule: "classes.read_only",
            codes: &["path_allow"],
        },
        Case {
            name: "allow with reversal tool",
            class: Some("internal_reversible"),
            reversal: undo,
            evidence: &[],
            args: json!({}),
            meta: None,
            verdict: "allow",
            rule: "classes.internal_reversible",
            codes: &["path_allow", "reversal_declared"],
        },
        Case {
            name: "allow without reversal escalates to approval",
            class: Some("internal_reversible"),
            reversal: none,
            evidence: &[],
            args: json!({}),
            meta: None,
            verdict: "approve",
            rule: "classes.internal_reversible",
            codes: &["reversal_missing", "path_approve"],
        },
        Case {
            name: "allow without reversal and no role is quarantined",
            class: Some("reversible_or_hold"),
            reversal: none,
            evidence: &[],
            args: json!({}),
            meta: None,
            verdict: "quarantine",
            rule: "classes.reversible_or_hold",
            codes: &["reversal_missing", "path_quarantine"],
        },
        Case {
            name: "conditional with evidence in arguments",
            class: Some("customer_facing"),
            reversal: none,
            evidence: &["order_id"],
            args: json!({"order_id": "A-1"}),
            meta: None,
            verdict: "allow",
            rule: "classes.customer_facing",
            codes: &["path_allow", "evidence_present"],
        },
        Case {
            name: "conditional with evidence in _meta",
            class: Some("customer_facing"),
            reversal: none,
            evidence: &["_meta.ticket"],
            args: json!({}),
            meta: Some(json!({"ticket": "T-9"})),
            verdict: "allow",
            rule: "classes.customer_facing",
            codes: &["path_allow", "evidence_present"],
        },
        Case {
            name: "conditional with empty evidence escalates",
            class: Some("customer_facing"),
            reversal: none,
            evidence: &["order_id"],
            args: json!({"order_id": "  "}),
            meta: None,
            verdict: "approve",
            rule: "classes.customer_facing",
            codes: &["evidence_missing", "path_approve"],
        },
        Case {
            name: "conditional with null evidence escalates",
            class: Some("customer_facing"),
            reversal: none,
            evidence: &["order_id"],
            args: json!({"order_id": null}),
            meta: None,
            verdict: "approve",
            rule: "classes.customer_facing",
            codes: &["evidence_missing", "path_approve"],
        },
        Case {
            name: "conditional missing evidence without role is quarantined",
            class: Some("evidence_or_hold"),
            reversal: none,
            evidence: &["order_id"],
            args: json!({}),
            meta: None,
            verdict: "quarantine",
            rule: "classes.evidence_or_hold",
            codes: &["evidence_missing", "path_quarantine"],
        },
        Case {
            name: "conditional when manifest names no evidence",
            class: Some("customer_facing"),
            reversal: none,
            evidence: &[],
            args: json!({}),
            meta: None,
            verdict: "approve",
            rule: "classes.customer_facing",
            codes: &["no_evidence_declared", "path_approve"],
        },
        Case {
            name: "conditional, one of two requirements fails",
            class: Some("cond_both"),
            reversal: undo,
            evidence: &["order_id"],
            args: json!({}),
            meta: None,
            verdict: "approve",
            rule: "classes.cond_both",
            codes: &["reversal_declared", "evidence_missing", "path_approve"],
        },
        Case {
            name: "conditional, both requirements hold",
            class: Some("cond_both"),
            reversal: undo,
            evidence: &["order_id"],
            args: json!({"order_id": 7}),
            meta: None,
            verdict: "allow",
            rule: "classes.cond_both",
            codes: &["path_allow", "reversal_declared", "evidence_present"],
        },
        Case {
            name: "conditional with no conditions escalates",
            class: Some("cond_empty"),
            reversal: undo,
            evidence: &[],
            args: json!({}),
            meta: None,
            verdict: "approve",
            rule: "classes.cond_empty",
            codes: &["no_conditions", "path_approve"],
        },
        Case {
            name: "conditional with no conditions and no role is quarantined",
            class: Some("cond_empty_hold"),
            reversal: undo,
            evidence: &[],
            args: json!({}),
            meta: None,
            verdict: "quarantine",
            rule: "classes.cond_empty_hold",
            codes: &["no_conditions", "path_quarantine"],
        },
        Case {
            name: "approve",
            class: Some("financial"),
            reversal: none,
            evidence: &[],
            args: json!({"amount": 5}),
            meta: None,
            verdict: "approve",
            rule: "classes.financial",
            codes: &["path_approve"],
        },
        Case {
            name: "approve without role fails closed",
            class: Some("approve_no_role"),
            reversal: none,
            evidence: &[],
            args: json!({}),
            meta: None,
            verdict: "quarantine",
            rule: "classes.approve_no_role",
            codes: &["path_quarantine"],
        },
        Case {
            name: "deny",
            class: Some("destructive"),
            reversal: none,
            evidence: &[],
            args: json!({}),
            meta: None,
            verdict: "deny",
            rule: "classes.destructive",
            codes: &["path_deny"],
        },
        Case {
            name: "quarantine path",
            class: Some("held"),
            reversal: none,
            evidence: &[],
            args: json!({}),
            meta: None,
            verdict: "quarantine",
            rule: "classes.held",
            codes: &["path_quarantine"],
        },
    ];
    for c in cases {
        let m = c
            .class
            .map(|class| manifest(class, (c.reversal)(), c.evidence));
        let d = run("shop__t", m.as_ref(), c.args, c.meta);
        assert_eq!(d.verdict.name(), c.verdict, "{}: {d:?}", c.name);
        assert_eq!(d.rule, c.rule, "{}", c.name);
        assert_eq!(codes(&d), c.codes, "{}", c.name);
        assert_eq!(d.policy_version, "test-1", "{}", c.name);
        assert_eq!(d.class.as_deref(), c.class, "{}", c.name);
    }
}

#[test]
fn approval_carries_role_timeout_and_expiry() {
    let m = manifest("financial", none(), &[]);
    let d = run("shop__refund", Some(&m), json!({}), None);
    match d.verdict {
        Verdict::Approve {
            role,
            timeout,
            on_timeout,
            expires_at,
        } => {
            assert_eq!(role, "finance");
            assert_eq!(timeout, Duration::from_secs(1800));
            assert_eq!(on_timeout, OnTimeout::Escalate);
            assert_eq!(expires_at, crate::instant::utc(2026, 11, 24, 12, 30, 0));
        }
        other => panic!("expected approval, got {other:?}"),
    }
}

mod conditions;
mod rules;
