use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use super::{Asked, BadKey, Item, Retry, Stands, idempotency_key, rule};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn asked<'a>(args: &'a str, key: Option<&'a str>) -> Asked<'a> {
    Asked {
        actor: "agent:a",
        server: "shop",
        tool: "refund_order",
        arguments_sha256: args,
        idempotency_key: key,
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_secs(1_800_000_000).expect("time")
}

#[test]
fn a_call_nobody_made_before_is_new() {
    assert_eq!(
        rule(&asked("a1", None), None, Stands::Gone, t0(), DAY),
        Retry::New
    );
}

#[test]
fn an_identical_call_attaches_while_open_and_replays_within_the_window_once_settled() {
    let a = asked("a1", None);
    let e = a.entry(Item::Approval("ap-1".into()), "c-1", t0());
    let hour = TimeDelta::hours(1);
    let cases = [
        (
            Stands::Open,
            t0() + TimeDelta::days(30),
            Retry::Attach(e.item.clone()),
        ),
        (
            Stands::Settled { replay: true },
            t0() + hour,
            Retry::Replay(e.item.clone()),
        ),
        // past the window: a call of its own
        (
            Stands::Settled { replay: true },
            t0() + TimeDelta::days(2),
            Retry::New,
        ),
        // expired or voided: asked again
        (Stands::Settled { replay: false }, t0() + hour, Retry::New),
        (Stands::Gone, t0() + hour, Retry::New),
    ];
    for (stands, now, want) in cases {
        assert_eq!(rule(&a, Some(&e), stands, now, DAY), want, "{stands:?}");
    }
}

#[test]
fn keys_differ_by_actor_tool_arguments_and_idempotency_key() {
    let base = asked("a1", None).key();
    assert_eq!(base, asked("a1", None).key(), "deterministic");
    assert_ne!(base, asked("a2", None).key());
    let mut other_actor = asked("a1", None);
    other_actor.actor = "agent:b";
    assert_ne!(base, other_actor.key());
    let mut other_tool = asked("a1", None);
    other_tool.tool = "cancel_order";
    assert_ne!(base, other_tool.key());
    // with a key, the key names the call: other keys are other calls
    assert_eq!(asked("a1", Some("k1")).key(), asked("a2", Some("k1")).key());
    assert_ne!(asked("a1", Some("k1")).key(), asked("a1", Some("k2")).key());
    assert_ne!(asked("a1", Some("k1")).key(), base);
}

#[test]
fn an_idempotency_key_reused_with_other_arguments_is_refused() {
    let first = asked("a1", Some("k1"));
    let e = first.entry(Item::Held("c-1".into()), "c-1", t0());
    let Retry::Refuse(why) = rule(&asked("a2", Some("k1")), Some(&e), Stands::Open, t0(), DAY)
    else {
        panic!("not refused")
    };
    assert!(why.contains("`k1`") && why.contains("new key"), "{why}");
    assert_eq!(
        rule(&first, Some(&e), Stands::Open, t0(), DAY),
        Retry::Attach(Item::Held("c-1".into()))
    );
}

#[test]
fn the_idempotency_key_is_read_from_meta_and_bad_ones_are_refused() {
    let meta = |v: Value| -> Map<String, Value> {
        json!({ super::IDEMPOTENCY_META: v })
            .as_object()
            .cloned()
            .expect("object")
    };
    assert_eq!(idempotency_key(None), Ok(None));
    assert_eq!(idempotency_key(Some(&Map::new())), Ok(None));
    let ok = meta(json!("k-1"));
    assert_eq!(idempotency_key(Some(&ok)), Ok(Some("k-1")));
    assert_eq!(
        idempotency_key(Some(&meta(json!(42)))),
        Err(BadKey::NotText)
    );
    assert_eq!(idempotency_key(Some(&meta(json!("")))), Err(BadKey::Length));
    assert_eq!(
        idempotency_key(Some(&meta(json!("x".repeat(201))))),
        Err(BadKey::Length)
    );
}

#[test]
fn a_repeat_is_answered_by_the_earlier_item_only_when_decided_the_same_way() {
    use super::Asks;
    let approval = Item::Approval("ap-1".into());
    let held = Item::Held("c-1".into());
    let cases = [
        (
            Retry::Attach(approval.clone()),
            Asks::Approval,
            Retry::Attach(approval.clone()),
        ),
        (
            Retry::Replay(approval.clone()),
            Asks::Approval,
            Retry::Replay(approval.clone()),
        ),
        // the policy now allows it, or holds it: a call of its own
        (Retry::Attach(approval.clone()), Asks::Nothing, Retry::New),
        (Retry::Replay(approval.clone()), Asks::Review, Retry::New),
        (
            Retry::Attach(held.clone()),
            Asks::Review,
            Retry::Attach(held.clone()),
        ),
        // classified (or pinned) since it was held: decided by its manifest now
        (Retry::Attach(held.clone()), Asks::Nothing, Retry::New),
        (Retry::Attach(held.clone()), Asks::Approval, Retry::New),
        (Retry::New, Asks::Approval, Retry::New),
        // an autopilot call with a key: replayed while it is still allowed
        (
            Retry::Replay(Item::Call("c-2".into())),
            Asks::Autopilot,
            Retry::Replay(Item::Call("c-2".into())),
        ),
        (
            Retry::Replay(Item::Call("c-2".into())),
            Asks::Approval,
            Retry::New,
        ),
        (
            Retry::Refuse("no".into()),
            Asks::Nothing,
            Retry::Refuse("no".into()),
        ),
    ];
    for (retry, asks, want) in cases {
        assert_eq!(retry.clone().given(asks), want, "{retry:?} {asks:?}");
    }
}

#[test]
fn an_entry_is_forgotten_once_its_window_passed_and_its_item_is_not_open() {
    let e = asked("a1", None).entry(Item::Approval("ap-1".into()), "c-1", t0());
    let later = t0() + TimeDelta::days(2);
    let soon = t0() + TimeDelta::hours(1);
    assert!(super::forgettable(
        &e,
        Stands::Settled { replay: true },
        later,
        DAY
    ));
    assert!(super::forgettable(&e, Stands::Gone, later, DAY));
    assert!(!super::forgettable(
        &e,
        Stands::Settled { replay: true },
        soon,
        DAY
    ));
    // an approval still waiting keeps its key, however old: a repeat must still attach
    assert!(!super::forgettable(&e, Stands::Open, later, DAY));
}

#[test]
fn with_an_idempotency_key_a_settled_call_is_replayed_for_as_long_as_its_key_is_kept() {
    let keyed = asked("a1", Some("k1"));
    let e = keyed.entry(Item::Call("c-1".into()), "c-1", t0());
    let much_later = t0() + TimeDelta::days(30);
    assert_eq!(
        rule(
            &keyed,
            Some(&e),
            Stands::Settled { replay: true },
            much_later,
            Duration::from_secs(1)
        ),
        Retry::Replay(Item::Call("c-1".into()))
    );
    // the same arguments without the key, past the window: a call of its own
    let plain = asked("a1", None);
    let e = plain.entry(Item::Approval("ap-1".into()), "c-1", t0());
    assert_eq!(
        rule(
            &plain,
            Some(&e),
            Stands::Settled { replay: true },
            much_later,
            Duration::from_secs(1)
        ),
        Retry::New
    );
}
