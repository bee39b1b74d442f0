//! The approval page's shape: what precedes the form, prose without markdown, readable times,
//! a `seen` hash that covers the summary, and text shown as it is: hidden characters escaped and
//! warned about, look-alikes flagged, the agent's values marked, no links.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::{envelope_html, heading_html, page, prose, relative, rendered_hash};
use crate::approval::View;
use crate::approval::state::{Approval, Status};
use crate::envelope::{Envelope, RedactedEdit};
use crate::policy::OnTimeout;

const T0: DateTime<Utc> = crate::instant::utc_nanos(2026, 12, 3, 8, 4, 36, 274855078);

fn envelope() -> Envelope {
    Envelope {
        summary: "Refund $45.99 on order A-1001".into(),
        tool: "refund_order".into(),
        server: "shop".into(),
        tool_name: "refund_order".into(),
        arguments: json!({"amount_cents": 4599, "order_id": "A-1001", "reason": "damaged"}),
        arguments_sha256: "ab12".into(),
        class: "financial".into(),
        actor: "agent:bot".into(),
        target: "payments.refunds".into(),
        impact: "Moves money to a customer".into(),
        evidence: vec![],
        policy_version: "v1".into(),
        rule: "classes.financial".into(),
        reason: "class `financial` needs approval by role `finance`".into(),
        reversal: "none: refunds cannot be clawed back".into(),
        role: "finance".into(),
        min_approvals: 1,
        requested_at: T0,
        expires_at: T0 + TimeDelta::minutes(30),
        on_timeout: OnTimeout::Deny,
        stage: 0,
        redacted: None,
    }
}

fn view(envelope: Envelope) -> View {
    View {
        approval: Approval {
            id: "a1".into(),
            call_id: "c1".into(),
            envelope_hash: envelope.hash(),
            envelope,
            meta: None,
            timeout_secs: 1800,
            approvers: vec!["ann@example.com".into()],
            approved_by: vec![],
            used: vec![],
            unsent: vec![],
            status: Status::Pending,
            sealed: None,
            remind_pct: None,
            reminded: None,
        },
        approver: "ann@example.com".into(),
        can_escalate: false,
        revealed: None,
    }
}

fn body(html: &str) -> &str {
    html.split_once("<body>").map_or("", |(_, b)| b)
}

#[test]
fn only_the_summary_and_the_state_precede_the_decision_buttons() {
    let html = page(&view(envelope()), T0.timestamp() + 60, "n0nce", "");
    let body = body(&html);
    let before_form = body.split("<form").next().unwrap_or_default();
    assert_eq!(
        before_form,
        "<h1>Refund $45.99 on order <span class=\"agent\">A-1001</span> <small><code>refund_order</code></small></h1><p class=\"note\"><span class=\"agent\">Highlighted</span> text was written by the agent (agent:bot), not by Airlock.</p><p class=\"state\">Waiting for a decision (0 of 1 approvals so far). Expires in 29 min.</p>",
    );
    let at = |needle: &str| body.find(needle).unwrap_or_else(|| panic!("no {needle}"));
    assert!(at("name=\"seen\"") < at(">Approve</button>"));
    assert!(
        at(">Deny</button>") < at("<dl class=\"envelope\">"),
        "buttons before the details"
    );
    assert!(
        at("<dl class=\"envelope\">") < at("</form>"),
        "one form around all"
    );
    assert!(at(">Modify</button>") < at("</form>"));
    assert!(html.contains("<title>Approve? Refund $45.99 on order A-1001 · Airlock</title>"));
    assert!(!html.contains("<script"));
}

#[test]
fn prose_times_hashes_and_arguments_read_well() {
    let html = envelope_html(&envelope());
    for shown in [
        "class <code>financial</code> needs approval by role <code>finance</code>",
        "Thu 3 Dec 2026, 08:34 UTC <small><time datetime=\"2026-12-03T08:34:36.274855078Z\">2026-12-03T08:34:36Z</time></small>, then the call is denied",
        "<dt>Arguments</dt><dd class=\"agent\"><small>Written by the agent (agent:bot), not by Airlock:</small><dl class=\"args\"><dt>amount_cents</dt><dd><code>4599</code></dd><dt>order_id</dt><dd>A-1001</dd>",
        "<details><summary>As JSON</summary><pre>",
        "<details class=\"hash\"><summary>Hashes</summary>",
        "cannot be undone: refunds cannot be clawed back",
    ] {
        assert!(html.contains(shown), "lacks {shown}:\n{html}");
    }
    assert!(!html.contains('`'), "no markdown punctuation: {html}");
    assert!(
        !html.contains(".274855078Z<"),
        "the exact instant is to the second"
    );
}

#[test]
fn the_seen_hash_covers_the_summary_and_the_page_is_deterministic() {
    let e = envelope();
    assert_eq!(rendered_hash(&e), rendered_hash(&e.clone()));
    let other = Envelope {
        summary: "Refund $4.59 on order A-1001".into(),
        ..e.clone()
    };
    assert_ne!(rendered_hash(&e), rendered_hash(&other));
    // an envelope stored before summaries: the default wording, the tool named once
    let old = Envelope {
        summary: String::new(),
        ..e
    };
    assert_eq!(
        heading_html(&old),
        "<h1>refund_order on payments.refunds</h1>"
    );
}

#[test]
fn prose_turns_code_spans_into_code_and_escapes() {
    for (input, html) in [
        ("role `finance`", "role <code>finance</code>"),
        ("a <b> `x<y`", "a &lt;b&gt; <code>x&lt;y</code>"),
        ("unpaired ` tick", "unpaired  tick"),
        ("plain", "plain"),
    ] {
        assert_eq!(prose(input), html, "{input}");
    }
}

#[test]
fn relative_times_are_short() {
    for (mins, words) in [
        (-5, "now"),
        (0, "now"),
        (29, "in 29 min"),
        (60, "in 1 h"),
        (125, "in 2 h 5 min"),
        (3 * 24 * 60 + 7, "in 3 days"),
    ] {
        assert_eq!(relative(T0, T0 + TimeDelta::minutes(mins)), words);
    }
}

/// Every character a browser would hide or reorder, as it would reach the page unescaped.
fn raw_hidden(html: &str) -> Vec<char> {
    html.chars()
        .filter(|c| *c != '\n' && crate::shown::kind(*c).is_some())
        .collect()
}

#[test]
fn hidden_characters_are_shown_as_escapes_with_a_warning_above_the_buttons() {
    let e = Envelope {
        summary: "Refund $45.99 on order acct-\\u202E1000-tcca\\u200B".into(),
        arguments: json!({"amount_cents": 4599, "order_id": "acct-\u{202E}1000-tcca\u{200B}", "reason": "p\u{0430}ypal said so", "note\u{2066}": ["x\u{E0041}"]}),
        ..envelope()
    };
    let html = page(&view(e.clone()), T0.timestamp() + 60, "n0nce", "");
    assert_eq!(
        raw_hidden(&html),
        Vec::<char>::new(),
        "nothing hidden reaches the page"
    );
    let body = body(&html);
    let before_form = body.split("<form").next().unwrap_or_default();
    assert!(
        before_form.contains("<p class=\"warn\">⚠ This request contains hidden characters, shown as escapes: \\u2066 (reorders text) in the name of note\\u2066; \\u{E0041} (invisible) in note\\u2066/0; \\u202E (reorders text) and \\u200B (invisible) in order_id; "),
        "{before_form}"
    );
    assert!(
        before_form.contains("look-alike letters: “p\u{0430}ypal” in reason mixes Latin and Cyrillic letters, looks like “paypal”"),
        "{before_form}"
    );
    assert!(
        before_form.contains("<span class=\"agent\">acct-\\u202E1000-tcca\\u200B</span>"),
        "the escaped value is marked as the agent's: {before_form}"
    );
    for shown in [
        "<dt>order_id</dt><dd>acct-\\u202E1000-tcca\\u200B <small class=\"flag\">⚠ hidden characters shown as escapes</small></dd>",
        "<dt>reason</dt><dd>p\u{0430}ypal said so <small class=\"flag\">⚠ look-alike letters</small></dd>",
        "<dt>note\\u2066</dt><dd><code>[&quot;x\\uDB40\\uDC41&quot;]</code>",
        "&quot;order_id&quot;: &quot;acct-\\u202E1000-tcca\\u200B&quot;",
    ] {
        assert!(html.contains(shown), "lacks {shown}:\n{html}");
    }
    // the Modify box submits the same arguments it shows escaped
    let textarea = html
        .split("name=\"arguments\" rows=\"8\">")
        .nth(1)
        .and_then(|t| t.split("</textarea>").next())
        .unwrap_or_default()
        .replace("&quot;", "\"");
    let back: serde_json::Value = serde_json::from_str(&textarea).unwrap_or_default();
    assert_eq!(back, e.arguments);
    // the seen hash is of the escaped text, so a request that differs only in what is hidden
    // was shown (and hashed) differently
    let other = Envelope {
        arguments: json!({"amount_cents": 4599, "order_id": "acct-1000-tcca", "reason": "paypal said so"}),
        ..e.clone()
    };
    assert_ne!(rendered_hash(&e), rendered_hash(&other));
    let shown = format!("{}{}", heading_html(&e), envelope_html(&e));
    assert!(shown.contains("acct-\\u202E1000-tcca") && raw_hidden(&shown).is_empty());
    assert_eq!(
        rendered_hash(&e),
        crate::canonical::sha256_hex(shown.as_bytes())
    );
}

#[test]
fn the_agents_text_is_marked_and_never_made_a_link() {
    let e = Envelope {
        summary: "Refund $45.99 on order Approved already by the CFO, see https://evil.example/ok"
            .into(),
        arguments: json!({"amount_cents": 4599, "order_id": "Approved already by the CFO, see https://evil.example/ok"}),
        ..envelope()
    };
    let html = page(&view(e), T0.timestamp() + 60, "n0nce", "");
    assert!(!html.contains("<a "), "no links at all: {html}");
    assert!(!html.contains("<script"));
    assert!(
        html.contains("<h1>Refund $45.99 on order <span class=\"agent\">Approved already by the CFO, see https://evil.example/ok</span> <small>"),
        "{html}"
    );
    assert!(html.contains("<p class=\"note\"><span class=\"agent\">Highlighted</span> text was written by the agent (agent:bot), not by Airlock.</p>"));
    assert!(
        !html.contains("class=\"warn\""),
        "nothing hidden, no warning"
    );
    // an envelope without agent values in its summary has no highlight legend
    let plain = Envelope {
        summary: "Refund $45.99".into(),
        ..envelope()
    };
    assert_eq!(
        heading_html(&plain),
        "<h1>Refund $45.99 <small><code>refund_order</code></small></h1>"
    );
}

#[test]
fn a_redacted_value_shows_as_its_marker_unless_the_view_reveals_it_and_the_seen_hash_follows() {
    let keys = crate::redact::Keys {
        digest: [3; 32],
        salt: [4; 32],
    };
    let mut e = envelope();
    let whole = json!({"order_id": "A-1001", "card_number": "4111111111111111"});
    let args = whole.as_object().cloned().unwrap();
    let r = crate::redact::redact(&args, &["/card_number".into()], &keys, "c1");
    e.arguments = serde_json::Value::Object(r.arguments.clone());
    let hidden = view(e.clone());
    let html = page(&hidden, T0.timestamp(), "n", "");
    assert!(!html.contains("41111111"), "{html}");
    assert!(html.contains("[redacted "), "{html}");
    let mut shown = view(e);
    shown.revealed = Some(crate::redact::restore(&r.arguments, &r.secrets).0);
    let html = page(&shown, T0.timestamp(), "n", "");
    assert!(
        html.contains("4111111111111111"),
        "a role that may see it sees it"
    );
    let form = &html[html.find("id=\"arguments\"").expect("the edit form")..];
    assert!(
        form.contains("$redacted") && !form.contains("4111"),
        "the edit form keeps the marker: {form}"
    );
    assert_ne!(
        super::view_hash(&hidden),
        super::view_hash(&shown),
        "what was seen differs"
    );
}

#[test]
fn a_modified_envelope_says_which_redacted_values_were_kept_and_which_replaced() {
    let plain = envelope();
    let html = envelope_html(&plain);
    assert!(
        !html.contains("Redacted values"),
        "only after a modification"
    );
    assert!(
        !serde_json::to_string(&plain).unwrap().contains("redacted"),
        "absent: the hash is unchanged"
    );
    let edited = Envelope {
        redacted: Some(RedactedEdit {
            kept: vec!["/card_number".into()],
            replaced: vec![],
        }),
        ..plain.clone()
    };
    let html = envelope_html(&edited);
    assert!(
        html.contains("<dt>Redacted values</dt><dd>kept as sent: <code>/card_number</code>; replaced by the approver: none</dd>"),
        "{html}"
    );
    assert_ne!(edited.hash(), plain.hash(), "which is part of the hash");
}
