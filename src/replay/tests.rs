//! Replay over a recorded history: a stricter policy reports exactly the calls it would change.

use serde_json::{Value, json};

use super::replay;
use crate::config::{Setup, load_setup};
use crate::decide::{self, Call, Context};
use crate::drift::NoUsage;
use crate::ledger::{Record, Row, row};

const MANIFESTS: &str = r#"
[[tool]]
server = "shop"
name = "refund_order"
class = "financial"
target = "payments"
impact = "money"
reversal = "none: final"

[[tool]]
server = "shop"
name = "search_orders"
class = "read_only"
target = "orders"
impact = "reads"
reversal = "none: reads"
"#;

fn setup(policy: &str) -> (tempfile::TempDir, Setup) {
    let dir = tempfile::tempdir().unwrap();
    let w = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "airlock.toml",
        "[[server]]\nname = \"shop\"\ncommand = \"true\"\nprefix = \"\"\n",
    );
    w("tool-manifests/m.toml", MANIFESTS);
    w("policies/p.toml", policy);
    let s = load_setup(&dir.path().join("airlock.toml")).unwrap();
    (dir, s)
}

const LENIENT: &str = "version = \"a\"\n[classes]\nread_only = { path = \"allow\" }\nfinancial = { path = \"allow\" }\n";
const STRICT: &str = "version = \"b\"\n[classes]\nread_only = { path = \"allow\" }\nfinancial = { path = \"conditional\", role = \"finance\", conditions = [{ pointer = \"/amount_cents\", max = 10000 }] }\n[roles]\nfinance = { emails = [\"f@example.com\"] }\n";

/// Record calls the way the gate does: a proposal row and the verdict `setup` gave.
fn history(setup: &Setup, calls: &[(&str, Value)]) -> Vec<Record> {
    let mut rows = Vec::new();
    for (i, (tool, args)) in calls.iter().enumerate() {
        let id = format!("c{i}");
        let time = format!("2026-11-24T10:00:{:02}Z", i);
        let m = setup.manifests.get("shop", tool);
        let d = decide::decide(
            &Call {
                tool,
                arguments: args.as_object().unwrap(),
                meta: None,
                canonical_len: 10,
                changed: None,
                reversal_served: true,
            },
            m,
            &setup.policy,
            &Context {
                actor: "agent:x",
                now: crate::instant::parse_rfc3339(&time).unwrap(),
                usage: &NoUsage,
            },
        );
        let rec = |seq: usize, row: Row| Record {
            seq: seq as u64,
            time: time.clone(),
            kind: row.kind().into(),
            call_id: id.clone(),
            body: row.body(),
            prev: String::new(),
            hash: String::new(),
        };
        let proposal = row::Proposal {
            tool: tool.to_string(),
            server: Some("shop".into()),
            tool_name: Some(tool.to_string()),
            arguments: args.clone(),
            arguments_sha256: String::new(),
            meta: None,
            actor: "agent:x".into(),
            redacted: None,
            arguments_preview: None,
            arguments_cut: None,
            arguments_bytes: None,
        };
        rows.push(rec(2 * i + 1, Row::Proposal(proposal)));
        rows.push(rec(
            2 * i + 2,
            Row::Verdict(crate::gate::verdict_body(&d, false)),
        ));
    }
    rows
}

#[test]
fn a_stricter_policy_reports_exactly_the_calls_it_would_hold() {
    let (_a, lenient) = setup(LENIENT);
    let (_b, strict) = setup(STRICT);
    let rows = history(
        &lenient,
        &[
            ("refund_order", json!({"amount_cents": 500})),
            ("refund_order", json!({"amount_cents": 50000})),
            ("search_orders", json!({"query": ""})),
            ("refund_order", json!({"amount_cents": 20000})),
            ("unknown_tool", json!({})),
        ],
    );
    let same = replay(&rows, &lenient.manifests, &lenient.policy, None);
    assert_eq!(
        (same.calls, same.unchanged),
        (5, 5),
        "the same policy changes nothing: {same:?}"
    );

    let r = replay(&rows, &strict.manifests, &strict.policy, None);
    assert_eq!(r.calls, 5);
    assert_eq!(
        r.unchanged, 3,
        "the small refund, the search and the unknown tool"
    );
    assert_eq!(r.changes.get("allow → approve(finance)"), Some(&2));
    let ids: Vec<&str> = r.examples.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(ids, ["c1", "c3"]);
    assert!(
        r.examples[0]
            .because
            .contains("`/amount_cents` = 50000 is not <= 10000"),
        "{}",
        r.examples[0].because
    );

    let since = crate::instant::parse_rfc3339("2026-11-24T10:00:02Z").unwrap();
    let later = replay(&rows, &strict.manifests, &strict.policy, Some(since));
    assert_eq!(
        (later.calls, later.changes.get("allow → approve(finance)")),
        (3, Some(&1))
    );
}
