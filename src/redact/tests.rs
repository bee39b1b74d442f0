use serde_json::{Value, json};

use super::{Keys, commitment, digest_of, for_people, redact, restore};

fn keys() -> Keys {
    Keys {
        digest: [7; 32],
        salt: [9; 32],
    }
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn a_listed_field_becomes_a_marker_and_comes_back_only_where_it_was_taken() {
    let call =
        args(json!({"card": {"number": "4111111111111111"}, "api_key": "sk_live_1", "amount": 5}));
    let r = redact(
        &call,
        &["/card/number".into(), "/api_key".into(), "/absent".into()],
        &keys(),
        "c1",
    );
    let text = r
        .arguments
        .iter()
        .map(|(k, v)| format!("{k}{v}"))
        .collect::<String>();
    assert!(
        !text.contains("4111") && !text.contains("sk_live"),
        "{text}"
    );
    assert_eq!(r.arguments["amount"], 5);
    assert_eq!(r.secrets.len(), 2, "a pointer the call lacks hides nothing");
    let d = digest_of(&r.arguments["card"]["number"]).expect("a marker");
    assert_eq!(d.len(), 64);
    let (back, replaced) = restore(&r.arguments, &r.secrets);
    assert_eq!(back, call, "exactly as the agent sent it");
    assert!(replaced.is_empty());
}

#[test]
fn the_same_value_has_the_same_digest_in_any_call_but_its_own_commitment() {
    let a = redact(
        &args(json!({"card": "4111"})),
        &["/card".into()],
        &keys(),
        "c1",
    );
    let b = redact(
        &args(json!({"card": "4111"})),
        &["/card".into()],
        &keys(),
        "c2",
    );
    let c = redact(
        &args(json!({"card": "4242"})),
        &["/card".into()],
        &keys(),
        "c1",
    );
    let marker = |r: &super::Redacted| r.arguments["card"]["$redacted"].clone();
    assert_eq!(
        marker(&a)["digest"],
        marker(&b)["digest"],
        "matched across calls"
    );
    assert_ne!(marker(&a)["digest"], marker(&c)["digest"]);
    assert_ne!(
        marker(&a)["commitment"],
        marker(&b)["commitment"],
        "salted per call"
    );
    // an auditor with the value and its salt recomputes the commitment
    let salt = keys().salt("c1", "/card");
    assert_eq!(
        marker(&a)["commitment"],
        hex::encode(commitment(&salt, &json!("4111")))
    );
    assert_ne!(
        marker(&a)["commitment"],
        hex::encode(commitment(&salt, &json!("4112")))
    );
    // another gate's key gives other digests: they cannot be guessed without it
    let other = Keys {
        digest: [1; 32],
        salt: [9; 32],
    };
    let d = redact(
        &args(json!({"card": "4111"})),
        &["/card".into()],
        &other,
        "c1",
    );
    assert_ne!(marker(&a)["digest"], marker(&d)["digest"]);
}

#[test]
fn a_replaced_marker_keeps_the_new_value_and_people_see_a_short_digest() {
    let r = redact(
        &args(json!({"card": "4111", "note": "x"})),
        &["/card".into()],
        &keys(),
        "c1",
    );
    let mut edited = r.arguments.clone();
    edited.insert("card".into(), json!("5500"));
    let (back, replaced) = restore(&edited, &r.secrets);
    assert_eq!(back["card"], "5500");
    assert_eq!(replaced, vec!["/card".to_string()]);
    let shown = for_people(&Value::Object(r.arguments.clone()));
    let s = shown["card"].as_str().unwrap_or("");
    assert!(
        s.starts_with("[redacted ") && s.len() == "[redacted ]".len() + 8,
        "{s}"
    );
    assert_eq!(shown["note"], "x");
    // an agent's look-alike with other keys is not a marker
    assert_eq!(
        digest_of(&json!({"$redacted": {"digest": "ab"}, "x": 1})),
        None
    );
}
