//! Canonical JSON: one byte encoding per JSON value, so hashes of arguments, results and ledger
//! rows are stable.
//!
//! Objects have their keys sorted by code point, no insignificant whitespace, strings and numbers
//! as serde_json writes them. It must never be used to re-encode what is forwarded to a tool server
//! (the agent's arguments go through untouched); it only feeds hashes and the ledger.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The canonical encoding of `v`.
///
/// serde_json's own compact writer, because its objects are ordered maps (`BTreeMap`, sorted by
/// key): without the `preserve_order` feature, which no crate in the build enables, its output
/// *is* the canonical form. The tests hold it to the explicit walk below on arbitrary values, so
/// a dependency that turns `preserve_order` on fails them rather than changing hashes.
pub fn to_string(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| walk(v))
}

/// Append the canonical encoding of `v` to `out`.
pub fn write_into(v: &Value, out: &mut Vec<u8>) {
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.extend_from_slice(walk(v).as_bytes());
    }
}

/// Append `s` as a JSON string.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(Value::String(s.to_string()).to_string().as_bytes());
    }
}

/// The canonical encoding by definition: keys sorted at every level, no whitespace.
fn walk(v: &Value) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(val) = map.get(k) {
                    write(val, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Lower-case hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::{Value, sha256_hex, to_string, walk};
    use proptest::prelude::*;
    use serde_json::json;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((".{0,6}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_fast_encoding_is_the_canonical_walk(v in json_value()) {
            prop_assert_eq!(to_string(&v), walk(&v));
        }
    }

    #[test]
    fn keys_are_sorted_at_every_level_and_whitespace_dropped() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": 0, "y": "s"}], "c": null}});
        assert_eq!(
            to_string(&a),
            r#"{"a":{"c":null,"d":[1,{"y":"s","z":0}]},"b":1}"#
        );
    }

    #[test]
    fn equal_values_hash_equal_regardless_of_input_order() {
        let a: Value = serde_json::from_str(r#"{"x": 1, "y": "\u00e9"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "y":"é","x":1 }"#).unwrap();
        assert_eq!(
            sha256_hex(to_string(&a).as_bytes()),
            sha256_hex(to_string(&b).as_bytes())
        );
    }
}
