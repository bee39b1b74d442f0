//! Conditions in the decision: bounds keep autopilot in, failures are routed, and (property)
//! no input makes `decide` panic or allow what a condition forbids.

use serde_json::{Value, json};

use super::{NOW, ToolManifest, Verdict, codes, decide, manifest, policy, run, undo};

fn with_conditions(class: &str, rules: &[&str]) -> ToolManifest {
    let mut m = manifest(class, undo(), &[]);
    m.conditions = rules
        .iter()
        .map(|r| {
            let f: crate::condition::ConditionFile = toml::from_str(r).unwrap();
            crate::condition::compile(&f).unwrap()
        })
        .collect();
    m
}

#[test]
fn conditions_keep_autopilot_inside_bounds_and_route_what_crosses_them() {
    struct Case(
        &'static str,
        &'static str,
        &'static [&'static str],
        Value,
        &'static str,
        &'static [&'static str],
        Option<&'static str>,
    );
    let cases = [
        Case(
            "under the bound",
            "read_only",
            &["pointer = \"/amount\"\nmax = 100"],
            json!({"amount": 50}),
            "allow",
            &["path_allow", "condition_held"],
            None,
        ),
        Case(
            "over the bound, class has no role",
            "read_only",
            &["pointer = \"/amount\"\nmax = 100"],
            json!({"amount": 500}),
            "quarantine",
            &["condition_failed", "path_quarantine"],
            None,
        ),
        Case(
            "over the bound, class role decides",
            "internal_reversible",
            &["pointer = \"/amount\"\nmax = 100"],
            json!({"amount": 500}),
            "approve",
            &["reversal_declared", "condition_failed", "path_approve"],
            Some("ops"),
        ),
        Case(
            "condition names its own role",
            "internal_reversible",
            &["pointer = \"/amount\"\nmax = 100\nrole = \"finance\""],
            json!({"amount": 500}),
            "approve",
            &["reversal_declared", "condition_failed", "path_approve"],
            Some("finance"),
        ),
        Case(
            "condition says quarantine",
            "internal_reversible",
            &["pointer = \"/amount\"\nmax = 100\non_fail = \"quarantine\""],
            json!({"amount": 500}),
            "quarantine",
            &["reversal_declared", "condition_failed", "path_quarantine"],
            None,
        ),
        Case(
            "strictest failure wins",
            "internal_reversible",
            &[
                "pointer = \"/amount\"\nmax = 100\nrole = \"finance\"",
                "pointer = \"/to\"\ndomains = [\"example.com\"]\non_fail = \"quarantine\"",
            ],
            json!({"amount": 500, "to": "eve@evil.com"}),
            "quarantine",
            &[
                "reversal_declared",
                "condition_failed",
                "condition_failed",
                "path_quarantine",
            ],
            None,
        ),
        Case(
            "a conditional class satisfied by conditions alone",
            "cond_empty",
            &["pointer = \"/to\"\ndomains = [\"example.com\"]"],
            json!({"to": "ann@example.com"}),
            "allow",
            &["path_allow", "condition_held"],
            None,
        ),
        Case(
            "a conditional class whose condition fails",
            "cond_empty",
            &["pointer = \"/to\"\ndomains = [\"example.com\"]"],
            json!({"to": "eve@evil.com"}),
            "approve",
            &["condition_failed", "path_approve"],
            Some("support"),
        ),
        Case(
            "missing argument fails the condition",
            "read_only",
            &["pointer = \"/amount\"\nmax = 100"],
            json!({}),
            "quarantine",
            &["condition_failed", "path_quarantine"],
            None,
        ),
        Case(
            "deny ignores conditions",
            "destructive",
            &["pointer = \"/amount\"\nmax = 100"],
            json!({"amount": 1}),
            "deny",
            &["path_deny"],
            None,
        ),
    ];
    for Case(name, class, rules, args, verdict, codes_expected, role) in cases {
        let m = with_conditions(class, rules);
        let d = run("shop__t", Some(&m), args, None);
        assert_eq!(d.verdict.name(), verdict, "{name}: {d:?}");
        assert_eq!(codes(&d), codes_expected, "{name}");
        if let Verdict::Approve { role: r, .. } = &d.verdict {
            assert_eq!(Some(r.as_str()), role, "{name}");
        }
    }
}

#[test]
fn mixed_failures_take_the_strictest_route() {
    // evidence missing (the class asks `support`) and a condition that asks `finance`: no single
    // approver may clear both, so the call is held
    let m = with_conditions(
        "customer_facing",
        &["pointer = \"/amount\"\nmax = 1\nrole = \"finance\""],
    );
    let d = run("shop__t", Some(&m), json!({"amount": 5}), None);
    assert_eq!(
        (d.verdict.name(), codes(&d)),
        (
            "quarantine",
            vec![
                "no_evidence_declared",
                "condition_failed",
                "path_quarantine"
            ]
        )
    );
    // a class whose failures are quarantined is not softened by a condition's role
    let mut m = with_conditions(
        "evidence_or_hold",
        &["pointer = \"/amount\"\nmax = 1\nrole = \"finance\""],
    );
    m.evidence = vec!["order_id".into()];
    let d = run("shop__t", Some(&m), json!({"amount": 5}), None);
    assert_eq!(d.verdict.name(), "quarantine", "{d:?}");
    // two conditions naming different roles
    let m = with_conditions(
        "internal_reversible",
        &[
            "pointer = \"/amount\"\nmax = 1\nrole = \"finance\"",
            "pointer = \"/to\"\ndomains = [\"example.com\"]\nrole = \"support\"",
        ],
    );
    let d = run(
        "shop__t",
        Some(&m),
        json!({"amount": 5, "to": "eve@evil.com"}),
        None,
    );
    assert_eq!(d.verdict.name(), "quarantine");
    // two failures for the same role: one approval
    let m = with_conditions(
        "internal_reversible",
        &[
            "pointer = \"/amount\"\nmax = 1",
            "pointer = \"/to\"\ndomains = [\"example.com\"]",
        ],
    );
    let d = run(
        "shop__t",
        Some(&m),
        json!({"amount": 5, "to": "eve@evil.com"}),
        None,
    );
    assert!(
        matches!(&d.verdict, Verdict::Approve { role, .. } if role == "ops"),
        "{d:?}"
    );
}

#[test]
fn explanation_names_the_condition_and_the_value() {
    let m = with_conditions(
        "internal_reversible",
        &["pointer = \"/amount_cents\"\nmax = 10000"],
    );
    let d = run("shop__t", Some(&m), json!({"amount_cents": 25000}), None);
    assert!(
        d.explanation()
            .contains("`/amount_cents` = 25000 is not <= 10000"),
        "{}",
        d.explanation()
    );
}

mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::{NOW, Verdict, decide, policy, with_conditions};
    use crate::decide::{Call, Context};
    use crate::drift::NoUsage;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1.0e12f64..1.0e12).prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
            prop_oneof![
                Just("ann@example.com"),
                Just("eve@evil.com"),
                Just("x@eu.example.com"),
                Just("gold")
            ]
            .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect()))
            ]
        })
    }

    fn arguments() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map(
            prop_oneof![
                Just("amount".to_string()),
                Just("to".to_string()),
                Just("tier".to_string()),
                "[a-z]{1,5}"
            ],
            json_value(),
            0..5,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

        /// No input panics, and no call that a condition forbids is allowed.
        #[test]
        fn decide_never_panics_nor_allows_what_a_condition_forbids(args in arguments(), tool in "[ -~]{0,20}", class_pick in 0usize..4) {
            let class = ["read_only", "internal_reversible", "cond_empty", "customer_facing"][class_pick];
            let m = with_conditions(class, &[
                "pointer = \"/amount\"\nmin = 0\nmax = 100",
                "pointer = \"/to\"\ndomains = [\"example.com\"]",
                "pointer = \"/tier\"\none_of = [\"gold\", \"silver\"]",
            ]);
            let len = crate::canonical::to_string(&Value::Object(args.clone())).len();
            let call = Call { tool: &tool, arguments: &args, meta: None, canonical_len: len, changed: None, reversal_served: true };
            let d = decide(&call, Some(&m), &policy(), &Context { actor: "agent:p", now: NOW, usage: &NoUsage });
            if d.verdict == Verdict::Allow {
                for c in &m.conditions {
                    prop_assert!(c.check(&args, None).is_ok(), "allowed although {:?} fails on {:?}", c.pointer, args);
                }
            }
        }
    }
}

#[test]
fn a_reason_never_quotes_a_redacted_value_nor_an_object_holding_one() {
    let m = with_conditions(
        "read_only",
        &[
            "pointer = \"/card\"\npattern = \"^9\"",
            "pointer = \"/payment\"\none_of = [\"x\"]",
            "pointer = \"/amount\"\nmax = 100",
        ],
    );
    let args =
        json!({"card": "4111111111111111", "payment": {"card": "4111111111111111"}, "amount": 500});
    let d = super::run("t", Some(&m), args, None);
    assert!(
        d.explanation().contains("4111111111111111"),
        "quoted before hiding"
    );
    let hidden = d.hiding(&["/card".to_string(), "/payment/card".to_string()]);
    let text = hidden.explanation();
    assert!(!text.contains("4111"), "{text}");
    assert!(text.contains("`/card` = [redacted]"), "{text}");
    assert!(text.contains("= 500"), "other values still quoted: {text}");
}

#[test]
fn an_argument_that_looks_like_a_redaction_marker_is_denied() {
    let m = with_conditions("read_only", &[]);
    for args in [
        json!({"note": {"$redacted": {"digest": "ab"}}}),
        json!({"items": [{"$redacted": 1}]}),
        json!({"$redacted": "x"}),
    ] {
        let d = super::run("t", Some(&m), args.clone(), None);
        assert_eq!(d.verdict, crate::decide::Verdict::Deny, "{args}");
        assert_eq!(super::codes(&d), vec!["reserved_key"], "{args}");
    }
    let d = super::run("t", Some(&m), json!({"note": "$redacted"}), None);
    assert_ne!(
        d.verdict,
        crate::decide::Verdict::Deny,
        "a value may say it"
    );
}
