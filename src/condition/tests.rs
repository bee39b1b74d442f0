//! Every rule kind against edge values, missing fields, wrong types and unicode.

use serde_json::{Value, json};

use super::{Condition, ConditionFile, Map, compile};

fn cond(toml_text: &str) -> Result<Condition, String> {
    let c: ConditionFile = toml::from_str(toml_text).map_err(|e| e.to_string())?;
    compile(&c)
}

fn holds(c: &Condition, args: Value) -> bool {
    c.check(args.as_object().expect("object"), None).is_ok()
}

#[test]
fn every_rule_kind_at_its_edges() {
    struct Case(&'static str, Value, bool);
    let table: Vec<(&str, Vec<Case>)> = vec![
        (
            "pointer = \"/amount\"\nmax = 10000",
            vec![
                Case("at the bound", json!({"amount": 10000}), true),
                Case("just over", json!({"amount": 10000.5}), false),
                Case("negative", json!({"amount": -1}), true),
                Case("a string is not a number", json!({"amount": "5"}), false),
                Case("null", json!({"amount": null}), false),
                Case("missing", json!({}), false),
            ],
        ),
        (
            "pointer = \"/amount\"\nmin = 1\nmax = 5",
            vec![
                Case("below", json!({"amount": 0}), false),
                Case("inside", json!({"amount": 3}), true),
                Case("above", json!({"amount": 6}), false),
            ],
        ),
        (
            "pointer = \"/tier\"\none_of = [\"gold\", \"silver\", 3]",
            vec![
                Case("listed", json!({"tier": "gold"}), true),
                Case("case matters", json!({"tier": "Gold"}), false),
                Case("listed number", json!({"tier": 3.0}), true),
                Case("unlisted", json!({"tier": "platinum"}), false),
            ],
        ),
        (
            "pointer = \"/order_id\"\npattern = \"^A-[0-9]{4}$\"",
            vec![
                Case("matches", json!({"order_id": "A-1001"}), true),
                Case("anchored", json!({"order_id": "xA-1001"}), false),
                Case(
                    "unicode digits do not count",
                    json!({"order_id": "A-١٢٣٤"}),
                    false,
                ),
                Case("not a string", json!({"order_id": 1001}), false),
            ],
        ),
        (
            "pointer = \"/to\"\nmax_items = 2",
            vec![
                Case("two", json!({"to": ["a", "b"]}), true),
                Case("three", json!({"to": ["a", "b", "c"]}), false),
                Case("not a list", json!({"to": "a"}), false),
            ],
        ),
        (
            "pointer = \"/to\"\ndomains = [\"example.com\"]",
            vec![
                Case("internal", json!({"to": "ann@example.com"}), true),
                Case("subdomain", json!({"to": "ann@eu.example.com"}), true),
                Case("case-insensitive", json!({"to": "Ann@EXAMPLE.com"}), true),
                Case("outside", json!({"to": "eve@evil.com"}), false),
                Case(
                    "look-alike suffix",
                    json!({"to": "eve@notexample.com"}),
                    false,
                ),
                Case(
                    "domain in the local part",
                    json!({"to": "example.com@evil.com"}),
                    false,
                ),
                Case(
                    "one outsider in a list",
                    json!({"to": ["ann@example.com", "eve@evil.com"]}),
                    false,
                ),
                Case(
                    "all insiders in a list",
                    json!({"to": ["ann@example.com", "Bob <bob@example.com>"]}),
                    true,
                ),
                Case(
                    "comma-separated with an outsider",
                    json!({"to": "ann@example.com, eve@evil.com"}),
                    false,
                ),
                Case(
                    "unicode homoglyph domain",
                    json!({"to": "ann@exаmple.com"}),
                    false,
                ),
                Case("empty", json!({"to": ""}), false),
                Case("no address", json!({"to": "example.com"}), false),
                Case(
                    "semicolon smuggles an outsider",
                    json!({"to": "eve@evil.com;ann@example.com"}),
                    false,
                ),
                Case(
                    "space smuggles an outsider",
                    json!({"to": "eve@evil.com ann@example.com"}),
                    false,
                ),
                Case(
                    "newline smuggles an outsider",
                    json!({"to": "eve@evil.com\nann@example.com"}),
                    false,
                ),
                Case("two @", json!({"to": "eve@evil.com@example.com"}), false),
                Case(
                    "semicolon list of insiders",
                    json!({"to": "ann@example.com; bob@example.com"}),
                    true,
                ),
            ],
        ),
        (
            "pointer = \"/order/lines/0/qty\"\nmax = 3",
            vec![
                Case("nested", json!({"order": {"lines": [{"qty": 2}]}}), true),
                Case(
                    "nested over",
                    json!({"order": {"lines": [{"qty": 4}]}}),
                    false,
                ),
            ],
        ),
    ];
    for (rule, cases) in table {
        let c = cond(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        for Case(name, args, expected) in cases {
            assert_eq!(holds(&c, args), expected, "{rule} / {name}");
        }
    }
}

#[test]
fn meta_pointers_read_the_request_meta() {
    let c = cond("pointer = \"/_meta/ticket\"\npattern = \"^T-\"").unwrap();
    let meta = json!({"ticket": "T-9"});
    assert!(c.check(&Map::new(), meta.as_object()).is_ok());
    assert!(c.check(&Map::new(), None).is_err());
}

#[test]
fn bad_rules_are_refused_with_a_reason() {
    for (rule, msg) in [
        ("pointer = \"amount\"\nmax = 1", "must be a JSON pointer"),
        ("pointer = \"/a\"\nmin = 5\nmax = 1", "above max"),
        ("pointer = \"/a\"", "needs one test"),
        (
            "pointer = \"/a\"\nmax = 1\npattern = \"x\"",
            "exactly one test",
        ),
        (
            "pointer = \"/a\"\npattern = \"(\"",
            "not a valid regular expression",
        ),
        ("pointer = \"/a\"\none_of = []", "at least one value"),
        (
            "pointer = \"/a\"\ndomains = [\"localhost\"]",
            "domains such as",
        ),
        (
            "pointer = \"/a\"\nmin_items = 3\nmax_items = 1",
            "above max_items",
        ),
    ] {
        let e = cond(rule).expect_err(rule);
        assert!(e.contains(msg), "{rule}: {e}");
    }
    assert!(
        cond("pointer = \"/a\"\nmaximum = 1").is_err(),
        "unknown keys are refused"
    );
}

#[test]
fn checked_values_say_what_was_seen() {
    let c = cond("pointer = \"/amount\"\nmax = 100").unwrap();
    let failed = c
        .check(json!({"amount": 250}).as_object().unwrap(), None)
        .unwrap_err();
    assert_eq!(
        (failed.rule.as_str(), failed.value.as_str()),
        ("<= 100", "250")
    );
    let missing = c.check(&Map::new(), None).unwrap_err();
    assert_eq!(missing.value, "missing");
}

#[test]
fn validation_against_an_input_schema() {
    let schema = json!({"type": "object", "properties": {
        "amount": {"type": "integer"}, "to": {"type": "string"}, "lines": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "number"}}}}
    }});
    for (rule, ok) in [
        ("pointer = \"/amount\"\nmax = 1", true),
        ("pointer = \"/amount\"\npattern = \"x\"", false),
        ("pointer = \"/amont\"\nmax = 1", false),
        ("pointer = \"/to\"\ndomains = [\"example.com\"]", true),
        ("pointer = \"/lines\"\nmax_items = 2", true),
        ("pointer = \"/lines/0/qty\"\nmax = 2", true),
        ("pointer = \"/lines/0/sku\"\nmax = 2", false),
        ("pointer = \"/_meta/ticket\"\npattern = \"x\"", true),
    ] {
        let c = cond(rule).unwrap();
        assert_eq!(
            c.validate(&schema).is_ok(),
            ok,
            "{rule}: {:?}",
            c.validate(&schema)
        );
    }
}
