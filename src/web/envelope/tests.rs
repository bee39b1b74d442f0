//! The approval page's shape: what precedes the form, prose without markdown, readable times,
//! and a `seen` hash that covers the summary.

use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

use super::{envelope_html, heading_html, page, prose, relative, rendered_hash};
use crate::approval::View;
use crate::approval::state::{Approval, Status};
use crate::envelope::Envelope;
use crate::policy::OnTimeout;

const T0: OffsetDateTime = datetime!(2026-12-03 08:04:36.274855078 UTC);

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
        expires_at: T0 + time::Duration::minutes(30),
        on_timeout: OnTimeout::Deny,
        stage: 0,
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
        },
        approver: "ann@example.com".into(),
        can_escalate: false,
    }
}

fn body(html: &str) -> &str {
    html.split_once("<body>").map_or("", |(_, b)| b)
}

#[test]
fn only_the_summary_and_the_state_precede_the_decision_buttons() {
    let html = page(&view(envelope()), T0.unix_timestamp() + 60, "n0nce", "");
    let body = body(&html);
    let before_form = body.split("<form").next().unwrap_or_default();
    assert_eq!(
        before_form,
        "<h1>Refund $45.99 on order A-1001 <small><code>refund_order</code></small></h1><p class=\"state\">Waiting for a decision (0 of 1 approvals so far). Expires in 29 min.</p>",
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
        "<dt>amount_cents</dt><dd><code>4599</code></dd><dt>order_id</dt><dd>A-1001</dd>",
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
        assert_eq!(relative(T0, T0 + time::Duration::minutes(mins)), words);
    }
}
