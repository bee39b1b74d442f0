//! Templates, table-driven: every formatter, missing and mistyped values, and syntax errors with
//! their place.

use chrono::DateTime;
use proptest::prelude::{Just, Strategy, any, prop_assert_eq, prop_oneof, proptest};
use serde_json::{Map, Value, json};

use super::{Format, Template, default_summary, describe, readable_time};

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn render(template: &str, v: Value) -> String {
    Template::parse(template)
        .unwrap_or_else(|e| panic!("{template}: {e}"))
        .render(&args(v), Some(&args(json!({"ticket": "T-9"}))))
}

#[test]
fn every_formatter_renders_its_value() {
    let table: &[(&str, Value, &str)] = &[
        (
            "Refund {amount_cents|money:USD} on order {order_id}",
            json!({"amount_cents": 4599, "order_id": "A-1001"}),
            "Refund $45.99 on order A-1001",
        ),
        ("{a|money:EUR}", json!({"a": 4599}), "€45.99"),
        ("{a|money:GBP}", json!({"a": 5}), "£0.05"),
        ("{a|money:CHF}", json!({"a": 123456789}), "1,234,567.89 CHF"),
        ("{a|money:JPY}", json!({"a": 4599}), "¥4,599"),
        ("{a|money:KWD}", json!({"a": 1500}), "1.500 KWD"),
        ("{a|money:USD}", json!({"a": -250}), "-$2.50"),
        ("{a|money:USD}", json!({"a": 100.0}), "$1.00"),
        ("{n|number}", json!({"n": 1234567}), "1,234,567"),
        ("{n|number}", json!({"n": -1234.5}), "-1,234.5"),
        ("{n|number}", json!({"n": 999}), "999"),
        (
            "{d|date}",
            json!({"d": "2026-12-03T08:34:36.27Z"}),
            "Thu 3 Dec 2026, 08:34 UTC",
        ),
        (
            "{d|date}",
            json!({"d": "2026-12-03T09:34:00+01:00"}),
            "Thu 3 Dec 2026, 08:34 UTC",
        ),
        ("{d|date}", json!({"d": "2026-12-03"}), "Thu 3 Dec 2026"),
        ("{d|date}", json!({"d": 0}), "Thu 1 Jan 1970, 00:00 UTC"),
        (
            "{s|short:8}",
            json!({"s": "damaged in transit"}),
            "damaged…",
        ),
        ("{s|short:8}", json!({"s": "damaged"}), "damaged"),
        ("{s|short:6}", json!({"s": [1, 2, 3]}), "[1,2,…"),
        ("{s}", json!({"s": true}), "true"),
        ("{ s | short:3 }", json!({"s": "abcdef"}), "ab…"),
        (
            "{/order/id} for {/_meta/ticket}",
            json!({"order": {"id": "A-7"}}),
            "A-7 for T-9",
        ),
        (
            "{/to/0}",
            json!({"to": ["ann@example.com"]}),
            "ann@example.com",
        ),
        ("{{literal}} {x}", json!({"x": 1}), "{literal} 1"),
        (
            "line {x}",
            json!({"x": "one\ntwo\u{202E}"}),
            "line one two\\u202E",
        ),
    ];
    for (template, v, want) in table {
        assert_eq!(render(template, v.clone()), *want, "{template} over {v}");
    }
}

#[test]
fn missing_and_mistyped_values_show_instead_of_failing() {
    let table: &[(&str, Value, &str)] = &[
        (
            "Refund {amount_cents|money:USD}",
            json!({}),
            "Refund ⟨amount_cents missing⟩",
        ),
        ("{a|money:USD}", json!({"a": null}), "⟨a missing⟩"),
        ("{a|money:USD}", json!({"a": "4599"}), "⟨a: not a number⟩"),
        (
            "{a|money:USD}",
            json!({"a": 45.99}),
            "⟨a: not a whole number of minor units⟩",
        ),
        ("{n|number}", json!({"n": "many"}), "⟨n: not a number⟩"),
        ("{d|date}", json!({"d": "tomorrow"}), "⟨d: not a date⟩"),
        ("{d|date}", json!({"d": true}), "⟨d: not a date⟩"),
        (
            "{/order/id}",
            json!({"order": "A-1"}),
            "⟨/order/id missing⟩",
        ),
    ];
    for (template, v, want) in table {
        assert_eq!(render(template, v.clone()), *want, "{template} over {v}");
    }
}

#[test]
fn bad_templates_say_where_and_what() {
    let table: &[(&str, usize, &str)] = &[
        ("", 1, "must not be empty"),
        ("Refund {amount", 8, "never closed"),
        ("a } b", 3, "a lone `}`"),
        ("{a {b}}", 4, "inside a field"),
        ("{}", 2, "needs an argument name"),
        ("{ | number}", 2, "needs an argument name"),
        ("{order/id}", 2, "JSON pointer starting with `/`"),
        ("Refund {a|mony}", 11, "unknown formatter `mony`"),
        ("{a|money}", 4, "currency code"),
        ("{a|money:usd}", 4, "currency code"),
        ("{a|short}", 4, "needs a length"),
        ("{a|short:0}", 4, "from 1 to 1000"),
        ("{a|number:2}", 4, "takes no argument"),
    ];
    for (template, at, message) in table {
        let e = Template::parse(template).expect_err(template);
        assert_eq!(e.at, *at, "{template}: {e}");
        assert!(e.message.contains(message), "{template}: {e}");
    }
}

#[test]
fn fields_are_checked_against_the_input_schema() {
    let schema = json!({"type": "object", "properties": {
        "amount_cents": {"type": "integer"},
        "order_id": {"type": "string"},
        "when": {"type": ["string", "null"]},
    }});
    let problems = |t: &str| {
        Template::parse(t)
            .map(|t| t.validate(&schema))
            .unwrap_or_default()
    };
    assert!(
        problems("Refund {amount_cents|money:USD} on {order_id|short:10} {when|date} {/_meta/x}")
            .is_empty()
    );
    let p = problems("{amount|money:USD}");
    assert!(p[0].contains("no argument at `/amount`"), "{p:?}");
    let p = problems("{order_id|money:USD}");
    assert!(
        p[0].contains("`{order_id}` is string") && p[0].contains("money:USD"),
        "{p:?}"
    );
}

#[test]
fn without_a_template_the_tool_and_its_target() {
    assert_eq!(
        default_summary("refund_order", "payments.refunds"),
        "refund_order on payments.refunds"
    );
    assert_eq!(default_summary("echo", "none"), "echo");
    assert_eq!(describe(None, "t", "", &Map::new(), None), "t");
    let long = "x".repeat(300);
    assert_eq!(render("{x}", json!({"x": long})).chars().count(), 80);
    let t = Template::parse(&"y".repeat(250)).expect("plain text");
    assert_eq!(t.render(&Map::new(), None).chars().count(), 200);
    assert_eq!(serde_json::to_value(&t).ok(), Some(json!("y".repeat(250))));
}

/// The `date` formatter as it was with `time`: what an envelope's summary said before chrono.
fn date_before(v: &Value) -> Option<Result<String, String>> {
    use time::format_description::parse;
    let not = || "not a date".to_string();
    let readable = parse(
        "[weekday repr:short] [day padding:none] [month repr:short] [year], [hour]:[minute] UTC",
    )
    .ok()?;
    let day = parse("[weekday repr:short] [day padding:none] [month repr:short] [year]").ok()?;
    let instant = |t: time::OffsetDateTime| -> Option<String> {
        // `time` panicked past its year 9999; no summary it rendered got here
        t.checked_to_offset(time::UtcOffset::UTC)?
            .format(&readable)
            .ok()
    };
    Some(match v {
        Value::String(s) => {
            let s = s.trim();
            match time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
                Ok(t) => Ok(instant(t)?),
                Err(_) => parse("[year]-[month]-[day]")
                    .ok()
                    .and_then(|f| time::Date::parse(s, &f).ok())
                    .and_then(|d| d.format(&day).ok())
                    .ok_or_else(not),
            }
        }
        Value::Number(n) => match n.as_i64().map(time::OffsetDateTime::from_unix_timestamp) {
            Some(Ok(t)) => Ok(instant(t)?),
            _ => Err(not()),
        },
        _ => Err(not()),
    })
}

fn two(range: std::ops::Range<u32>) -> impl Strategy<Value = String> {
    range.prop_map(|n| format!("{n:02}"))
}

/// An instant's or a date's text, some of them no date at all.
fn date_text() -> impl Strategy<Value = String> {
    let instant = (
        0..10_000u32,
        two(1..13),
        two(1..32),
        two(0..24),
        two(0..60),
        two(0..61),
    )
        .prop_map(|(y, mo, d, h, mi, s)| format!("{y:04}-{mo}-{d}T{h}:{mi}:{s}"));
    let fraction = prop_oneof![Just(String::new()), "\\.[0-9]{1,10}"];
    let offset = prop_oneof![
        Just("Z".to_string()),
        "[+-](0[0-9]|1[0-9]|2[0-4]):[0-5][0-9]"
    ];
    prop_oneof![
        (instant, fraction, offset).prop_map(|(i, f, o)| format!("{i}{f}{o}")),
        ("[+-]?", 0..10_000u32, two(0..14), two(0..33))
            .prop_map(|(sign, y, mo, d)| format!("{sign}{y:04}-{mo}-{d}")),
        "[ 0-9:TZ+-]{0,12}",
    ]
}

proptest! {
    #[test]
    fn an_instant_reads_as_it_did_with_time(secs in -62_167_219_200i64..=253_402_300_799) {
        let t = DateTime::from_timestamp_secs(secs).expect("in range");
        let before = date_before(&json!(secs)).expect("time rendered it");
        prop_assert_eq!(Ok(readable_time(t)), before);
    }

    #[test]
    fn a_date_argument_renders_as_it_did_with_time(text in date_text()) {
        let v = json!(text);
        if let Some(before) = date_before(&v) {
            prop_assert_eq!(Format::Date.apply(&v), before, "{}", text);
        }
    }

    #[test]
    fn unix_seconds_render_as_they_did_with_time(secs in prop_oneof![any::<i64>(), -400_000_000_000i64..400_000_000_000]) {
        let v = json!(secs);
        prop_assert_eq!(Format::Date.apply(&v), date_before(&v).expect("time rendered it"));
    }
}
