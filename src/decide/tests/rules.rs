//! Rules before classification (input limits, changed tools), determinism, explanations and
//! serialization.

use serde_json::{Map, json};

use super::{Call, Context, NOW, Verdict, codes, decide, manifest, none, policy, run, undo};
use crate::decide::{MAX_ARGUMENT_BYTES, MAX_ARGUMENT_DEPTH};
use crate::drift::NoUsage;

#[test]
fn input_limits_come_before_classification() {
    let m = manifest("read_only", none(), &[]);
    for bad in [
        "",
        "has space",
        "bidi\u{202e}name",
        "semi;colon",
        &"x".repeat(129),
    ] {
        let d = run(bad, Some(&m), json!({}), None);
        assert_eq!(
            (d.verdict.name(), codes(&d)),
            ("deny", vec!["invalid_tool_name"]),
            "{bad:?}"
        );
        assert_eq!(d.rule, "gate.tool_name");
    }
    assert_eq!(
        run(&"x".repeat(128), Some(&m), json!({}), None).verdict,
        Verdict::Allow
    );

    let big = json!({"blob": "a".repeat(MAX_ARGUMENT_BYTES)});
    let d = run("shop__t", Some(&m), big, None);
    assert_eq!(codes(&d), ["arguments_too_large"]);

    let mut deep = json!(1);
    for _ in 0..MAX_ARGUMENT_DEPTH {
        deep = json!([deep]);
    }
    let d = run("shop__t", Some(&m), json!({ "d": deep }), None);
    assert_eq!(
        (d.verdict.name(), codes(&d)),
        ("deny", vec!["arguments_too_deep"])
    );
    // Unknown tools with bad input are still refused for the input, not classified.
    let d = run("bad name", None, json!({}), None);
    assert_eq!(codes(&d), ["invalid_tool_name"]);
}

#[test]
fn decide_is_deterministic() {
    let m = manifest("customer_facing", none(), &["order_id"]);
    let a = run("shop__t", Some(&m), json!({"order_id": "A"}), None);
    let b = run("shop__t", Some(&m), json!({"order_id": "A"}), None);
    assert_eq!(a, b);
}

#[test]
fn explanation_names_rule_and_version() {
    let m = manifest("destructive", none(), &[]);
    let d = run("shop__t", Some(&m), json!({}), None);
    let text = d.explanation();
    assert!(
        text.contains("class `destructive` is denied by policy"),
        "{text}"
    );
    assert!(text.contains("rule `classes.destructive`"), "{text}");
    assert!(text.contains("policy test-1"), "{text}");
}

#[test]
fn decision_serializes_with_codes() {
    let m = manifest("financial", none(), &[]);
    let v = serde_json::to_value(run("shop__t", Some(&m), json!({}), None)).unwrap();
    assert_eq!(v["verdict"], "approve");
    assert_eq!(v["role"], "finance");
    assert_eq!(v["timeout"], "30m");
    assert_eq!(v["expires_at"], "2026-11-24T12:30:00Z");
    assert_eq!(v["reasons"][0]["code"], "path_approve");
}

#[test]
fn a_reversal_tool_that_is_not_served_does_not_count() {
    let m = manifest("internal_reversible", undo(), &[]);
    let args = Map::new();
    let call = Call {
        tool: "shop__t",
        arguments: &args,
        meta: None,
        canonical_len: 2,
        changed: None,
        reversal_served: false,
    };
    let d = decide(
        &call,
        Some(&m),
        &policy(),
        &Context {
            actor: "agent:test",
            now: NOW,
            usage: &NoUsage,
        },
    );
    assert_eq!(d.verdict.name(), "approve");
    assert_eq!(codes(&d), ["reversal_missing", "path_approve"]);
    assert!(
        d.explanation()
            .contains("tool:undo, which its server does not serve right now"),
        "{}",
        d.explanation()
    );
}

#[test]
fn a_changed_tool_is_quarantined_before_its_class_is_consulted() {
    let m = manifest("read_only", none(), &[]);
    let args = Map::new();
    let call = Call {
        tool: "shop__t",
        arguments: &args,
        meta: None,
        canonical_len: 2,
        changed: Some(("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb")),
        reversal_served: true,
    };
    let d = decide(
        &call,
        Some(&m),
        &policy(),
        &Context {
            actor: "agent:test",
            now: NOW,
            usage: &NoUsage,
        },
    );
    assert_eq!(
        (d.verdict.name(), d.rule.as_str()),
        ("quarantine", "gate.tool_changed")
    );
    assert_eq!(codes(&d), ["tool_changed"]);
}

#[test]
fn an_actor_limited_by_the_policy_is_denied_other_classes() {
    let args = Map::new();
    let decide_as = |actor: &str, class: &str| {
        let m = manifest(class, none(), &[]);
        let call = Call {
            tool: "shop__t",
            arguments: &args,
            meta: None,
            canonical_len: 2,
            changed: None,
            reversal_served: true,
        };
        decide(
            &call,
            Some(&m),
            &policy(),
            &Context {
                actor,
                now: NOW,
                usage: &NoUsage,
            },
        )
    };
    let d = decide_as("agent:limited", "financial");
    assert_eq!(
        (d.verdict.name(), d.rule.as_str()),
        ("deny", "actors.agent:limited")
    );
    assert_eq!(codes(&d), ["actor_not_allowed"]);
    assert_eq!(
        decide_as("agent:limited", "read_only").verdict.name(),
        "allow"
    );
    assert_eq!(
        decide_as("agent:test", "financial").verdict.name(),
        "approve",
        "others keep the class path"
    );
}
