//! One table per rule of text as it is shown: escapes, JSON escapes, findings, the warning line,
//! broken links, and what of a request the agent wrote.

use serde_json::json;

use super::request::{flags, pieces, spans, summary_spans};
use super::{Finding, Flag, Hidden, block, break_links, check, json, line, warning};

#[test]
fn hidden_characters_are_shown_as_escapes_on_one_line_and_in_blocks() {
    for (input, one_line, in_block) in [
        // bidi controls: the string that displays as another
        (
            "acct-\u{202E}1000-tcca",
            "acct-\\u202E1000-tcca",
            "acct-\\u202E1000-tcca",
        ),
        (
            "\u{2066}x\u{2069}\u{200F}\u{061C}",
            "\\u2066x\\u2069\\u200F\\u061C",
            "\\u2066x\\u2069\\u200F\\u061C",
        ),
        // zero-width and other format characters
        ("A-10\u{200B}01", "A-10\\u200B01", "A-10\\u200B01"),
        (
            "\u{FEFF}x\u{00AD}y\u{2060}",
            "\\uFEFFx\\u00ADy\\u2060",
            "\\uFEFFx\\u00ADy\\u2060",
        ),
        // beyond the BMP: tag characters
        (
            "ok\u{E0041}\u{E007F}",
            "ok\\u{E0041}\\u{E007F}",
            "ok\\u{E0041}\\u{E007F}",
        ),
        // controls: a terminal escape; line breaks and tabs stay in a block
        ("\u{1B}[31mred", "\\u001B[31mred", "\\u001B[31mred"),
        ("a\nb\tc\r", "a\\nb\\tc\\r", "a\nb\tc\r"),
        ("\u{85}\u{7F}", "\\u0085\\u007F", "\\u0085\\u007F"),
        // separators, fillers, variation selectors, private use, unassigned
        ("a\u{2028}b\u{2029}", "a\\u2028b\\u2029", "a\\u2028b\\u2029"),
        (
            "\u{3164}\u{115F}\u{2800}",
            "\\u3164\\u115F\\u2800",
            "\\u3164\\u115F\\u2800",
        ),
        ("x\u{FE0F}\u{034F}", "x\\uFE0F\\u034F", "x\\uFE0F\\u034F"),
        ("\u{E000}\u{0378}", "\\uE000\\u0378", "\\uE000\\u0378"),
        // everything else is shown as it is
        (
            "Ünïcödé 東京タワー € Москва O'Brien \\u202E",
            "Ünïcödé 東京タワー € Москва O'Brien \\u202E",
            "Ünïcödé 東京タワー € Москва O'Brien \\u202E",
        ),
    ] {
        assert_eq!(line(input), one_line, "line({input:?})");
        assert_eq!(block(input), in_block, "block({input:?})");
    }
}

#[test]
fn json_text_keeps_its_meaning_with_hidden_characters_escaped() {
    let value = json!({"to\u{200B}": "acct-\u{202E}1000-tcca", "tag": "x\u{E0041}", "n": "a\nb"});
    let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
    let shown = json(&pretty);
    assert!(
        shown.contains("\"acct-\\u202E1000-tcca\"") && shown.contains("\"x\\uDB40\\uDC41\""),
        "{shown}"
    );
    assert!(shown.contains("\"to\\u200B\""), "keys too: {shown}");
    assert!(
        shown.chars().all(|c| c == '\n' || super::kind(c).is_none()),
        "{shown:?}"
    );
    let back: serde_json::Value = serde_json::from_str(&shown).unwrap_or_default();
    assert_eq!(back, value, "the escaped JSON parses to the same arguments");
}

fn hidden(escape: &str, kind: Hidden) -> Finding {
    Finding::Hidden {
        escape: escape.into(),
        kind,
    }
}

fn mixed(word: &str, scripts: &[&'static str], looks_like: Option<&str>) -> Finding {
    Finding::MixedScript {
        word: word.into(),
        scripts: scripts.to_vec(),
        looks_like: looks_like.map(String::from),
    }
}

#[test]
fn findings_name_each_hidden_character_once_and_each_word_that_mixes_scripts() {
    for (input, want) in [
        ("plain text, A-1001", vec![]),
        ("two\nlines\tand a tab", vec![]),
        (
            "acct-\u{202E}1000-tcca\u{200B}\u{202E}",
            vec![
                hidden("\\u202E", Hidden::Bidi),
                hidden("\\u200B", Hidden::Invisible),
            ],
        ),
        ("\u{1B}[2J", vec![hidden("\\u001B", Hidden::Control)]),
        ("\u{E000}", vec![hidden("\\uE000", Hidden::Unknown)]),
        // a Cyrillic а inside a Latin word, twice: flagged once, with its look-alike
        (
            "pay p\u{0430}ypal and p\u{0430}ypal",
            vec![mixed(
                "p\u{0430}ypal",
                &["Latin", "Cyrillic"],
                Some("paypal"),
            )],
        ),
        (
            "\u{0391}dmin",
            vec![mixed("\u{0391}dmin", &["Greek", "Latin"], Some("Admin"))],
        ),
        // one script per word is fine, even with several scripts in the text
        (
            "Москва and London, 東京タワー, Straße, naïve, abc123",
            vec![],
        ),
    ] {
        assert_eq!(check(input), want, "check({input:?})");
    }
}

#[test]
fn the_warning_line_groups_findings_by_place_and_counts_the_rest() {
    let flag = |place: &str, finding: Finding| Flag {
        place: place.into(),
        finding,
    };
    assert_eq!(warning(&[]), None);
    let flags = [
        flag("order_id", hidden("\\u202E", Hidden::Bidi)),
        flag("order_id", hidden("\\u200B", Hidden::Invisible)),
        flag("the summary", hidden("\\u202E", Hidden::Bidi)),
        flag(
            "reason",
            mixed("p\u{0430}ypal", &["Latin", "Cyrillic"], Some("paypal")),
        ),
    ];
    assert_eq!(
        warning(&flags).as_deref(),
        Some(
            "This request contains hidden characters, shown as escapes: \\u202E (reorders text) and \\u200B (invisible) in order_id; \\u202E (reorders text) in the summary; and look-alike letters: “p\u{0430}ypal” in reason mixes Latin and Cyrillic letters, looks like “paypal”. Read it as escaped before deciding."
        )
    );
    let many: Vec<Flag> = (0..9)
        .map(|i| flag(&format!("a{i}"), hidden("\\u200B", Hidden::Invisible)))
        .collect();
    let line = warning(&many).unwrap_or_default();
    assert!(line.contains("in a5 (and 3 more)."), "{line}");
    assert!(!line.contains("a6"), "{line}");
}

#[test]
fn links_in_mail_text_are_broken_so_no_client_makes_them_clickable() {
    for (input, shown) in [
        (
            "Approved already by the CFO, see https://evil.example/ok",
            "Approved already by the CFO, see https[:]//evil.example/ok",
        ),
        ("HTTP://X and s3://bucket", "HTTP[:]//X and s3[:]//bucket"),
        (
            "go to www.evil.example or WWW.x.y",
            "go to www[.]evil.example or WWW[.]x.y",
        ),
        ("awww.x and a-www.y", "awww.x and a-www[.]y"),
        (
            "nothing here: a.b, ann@example.com",
            "nothing here: a.b, ann@example.com",
        ),
        ("édition://x", "édition[:]//x"),
    ] {
        assert_eq!(break_links(input), shown, "{input}");
    }
}

#[test]
fn the_agents_strings_are_found_whole_or_shortened_in_a_line() {
    let marked = |s: &str, values: &[&str]| -> String {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        pieces(s, &spans(s, &values))
            .into_iter()
            .map(|(t, agent)| {
                if agent {
                    format!("[{t}]")
                } else {
                    t.to_string()
                }
            })
            .collect()
    };
    for (line, values, want) in [
        (
            "Refund $45.99 on order A-1001",
            &["A-1001", "damaged"][..],
            "Refund $45.99 on order [A-1001]",
        ),
        // a value the summary shortened (`short:N`) is marked with its `…`
        (
            "Email ann@example.com: Approved already by the CFO, s…",
            &[
                "ann@example.com",
                "Approved already by the CFO, see https://x",
            ][..],
            "Email [ann@example.com]: [Approved already by the CFO, s…]",
        ),
        // every occurrence; overlapping values merge; one- and two-character values are not looked for
        (
            "Tag A-1 with A-1 on",
            &["A-1", "on", "1 w"][..],
            "Tag [A-1 w]ith [A-1] on",
        ),
        ("Ünï on Ünï", &["Ünï"][..], "[Ünï] on [Ünï]"),
        ("nothing", &[][..], "nothing"),
    ] {
        assert_eq!(marked(line, values), want, "{line} with {values:?}");
    }
}

fn envelope(summary: &str, arguments: serde_json::Value) -> crate::envelope::Envelope {
    let t = crate::instant::utc(2026, 12, 3, 8, 4, 36);
    crate::envelope::Envelope {
        summary: summary.into(),
        tool: "refund_order".into(),
        server: "shop".into(),
        tool_name: "refund_order".into(),
        arguments,
        arguments_sha256: "ab".into(),
        class: "financial".into(),
        actor: "agent:bot".into(),
        target: "payments.refunds".into(),
        impact: "Moves money".into(),
        evidence: vec![crate::envelope::EvidenceRef {
            field: "_meta.ticket".into(),
            value: json!("T-\u{200B}9"),
        }],
        policy_version: "v1".into(),
        rule: "classes.financial".into(),
        reason: "class `financial` needs approval by role `finance`".into(),
        reversal: "none: no".into(),
        role: "finance".into(),
        min_approvals: 1,
        requested_at: t,
        expires_at: t,
        on_timeout: crate::policy::OnTimeout::Deny,
        stage: 0,
        redacted: None,
    }
}

#[test]
fn a_requests_flags_are_placed_by_argument_path_name_and_field() {
    let e = envelope(
        "Refund $5.00 on order acct-\\u202E1000-tcca",
        json!({
            "order_id": "acct-\u{202E}1000-tcca",
            "items": [{"sku": "p\u{0430}ypal"}],
            "memo\u{200B}": "ok",
        }),
    );
    let placed: Vec<(String, Finding)> = flags(&e)
        .into_iter()
        .map(|f| (f.place, f.finding))
        .collect();
    assert_eq!(
        placed,
        vec![
            (
                "items/0/sku".into(),
                mixed("p\u{0430}ypal", &["Latin", "Cyrillic"], Some("paypal"))
            ),
            (
                "the name of memo\\u200B".into(),
                hidden("\\u200B", Hidden::Invisible)
            ),
            ("order_id".into(), hidden("\\u202E", Hidden::Bidi)),
            (
                "evidence _meta.ticket".into(),
                hidden("\\u200B", Hidden::Invisible)
            ),
        ]
    );
    // the summary holds the value as summaries show it (escaped), and that is what is marked
    let spans = summary_spans(&e);
    assert_eq!(
        spans
            .iter()
            .map(|r| &e.summary[r.clone()])
            .collect::<Vec<_>>(),
        ["acct-\\u202E1000-tcca"]
    );
}

#[test]
fn a_word_of_one_other_script_is_flagged_only_when_it_passes_for_ascii() {
    for (input, want) in [
        // Cyrillic А before the digits, fullwidth Ａ: they read as A-1001
        (
            "\u{0410}-1001",
            vec![mixed("\u{0410}", &["Cyrillic"], Some("A"))],
        ),
        (
            "\u{FF21}-1001",
            vec![mixed("\u{FF21}", &["Latin"], Some("A"))],
        ),
        // a Russian word with letters that have no ASCII twin is just Russian
        ("\u{0421}\u{0435}\u{0440}\u{0433}\u{0435}\u{0439}", vec![]),
        ("caf\u{00E9}", vec![]),
    ] {
        assert_eq!(check(input), want, "{input:?}");
    }
    let line = warning(&[Flag {
        place: "order_id".into(),
        finding: mixed("\u{0410}", &["Cyrillic"], Some("A")),
    }])
    .expect("a warning");
    assert!(
        line.contains("“\u{0410}” in order_id is written in Cyrillic letters, looks like “A”"),
        "{line}"
    );
}
