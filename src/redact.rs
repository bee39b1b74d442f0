//! Redaction, pure: the argument fields a manifest lists as sensitive (`redact`, JSON pointers)
//! taken out of a call's arguments and replaced by a marker that proves without telling.
//!
//! A marker is `{"$redacted": {"digest": D, "commitment": C}}`: `D` = HMAC-SHA256 under the
//! gate's digest key of the value's canonical JSON (the same value gives the same digest, so two
//! calls with the same card can be matched; without the key it cannot be guessed), `C` =
//! HMAC-SHA256 keyed by a per-value salt (itself derived from the seal key, the call and the
//! pointer) over the same bytes — what the hash chain covers, so an auditor given the value and
//! its salt (`airlock ledger prove --print-salt`) can prove it was the one used. Owns the marker, the taking
//! out and the putting back. It must never do I/O, and never put a value back anywhere but at
//! the pointer it was taken from.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::canonical;

/// The key of a marker object.
pub const MARKER: &str = "$redacted";
/// How many hex characters of a digest are shown to people.
pub const SHOWN_DIGEST: usize = 8;

/// The keys redaction is computed with (derived from the seal key).
#[derive(Clone)]
pub struct Keys {
    pub digest: [u8; 32],
    pub salt: [u8; 32],
}

/// HMAC-SHA256 of `parts` (concatenated) under `key`.
pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        // HMAC takes a key of any length; this cannot happen
        return [0; 32];
    };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

impl Keys {
    /// The salt of the value at `pointer` in call `call_id`.
    pub fn salt(&self, call_id: &str, pointer: &str) -> [u8; 32] {
        hmac(
            &self.salt,
            &[
                b"airlock.redact.salt.v1\0",
                call_id.as_bytes(),
                b"\0",
                pointer.as_bytes(),
            ],
        )
    }

    /// The marker that stands for `value` at `pointer` in call `call_id`.
    pub fn marker(&self, call_id: &str, pointer: &str, value: &Value) -> Value {
        let bytes = canonical::to_string(value);
        let digest = hmac(
            &self.digest,
            &[b"airlock.redact.digest.v1\0", bytes.as_bytes()],
        );
        json!({MARKER: {
            "digest": hex::encode(digest),
            "commitment": hex::encode(commitment(&self.salt(call_id, pointer), value)),
        }})
    }
}

/// HMAC-SHA256 keyed by `salt` over the value's canonical JSON: what the chain covers.
pub fn commitment(salt: &[u8; 32], value: &Value) -> [u8; 32] {
    hmac(salt, &[canonical::to_string(value).as_bytes()])
}

/// A marker's full digest, if `v` is a marker.
pub fn digest_of(v: &Value) -> Option<&str> {
    v.as_object()
        .filter(|o| o.len() == 1)?
        .get(MARKER)?
        .get("digest")?
        .as_str()
}

/// How a person sees a marker: `[redacted 3f9a1c2b]`.
pub fn shown(digest: &str) -> String {
    let short: String = digest.chars().take(SHOWN_DIGEST).collect();
    format!("[redacted {short}]")
}

/// Arguments with the listed fields taken out.
#[derive(Debug, Clone, PartialEq)]
pub struct Redacted {
    /// The arguments with a marker at each field taken out: what is recorded and shown.
    pub arguments: Map<String, Value>,
    /// Pointer → the value taken out: what is sealed, and put back before the call runs.
    pub secrets: BTreeMap<String, Value>,
}

/// Take the fields at `pointers` out of `arguments` (a pointer the call does not have is
/// skipped: nothing to hide).
pub fn redact(
    arguments: &Map<String, Value>,
    pointers: &[String],
    keys: &Keys,
    call_id: &str,
) -> Redacted {
    let mut whole = Value::Object(arguments.clone());
    let mut secrets = BTreeMap::new();
    for p in pointers {
        if let Some(slot) = whole.pointer_mut(p) {
            let value = slot.take();
            *slot = keys.marker(call_id, p, &value);
            secrets.insert(p.clone(), value);
        }
    }
    let arguments = match whole {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    Redacted { arguments, secrets }
}

/// Put the secrets back where their markers still stand (a marker an approver replaced keeps
/// the new value); the pointers whose marker was gone are returned too.
pub fn restore(
    arguments: &Map<String, Value>,
    secrets: &BTreeMap<String, Value>,
) -> (Map<String, Value>, Vec<String>) {
    let mut whole = Value::Object(arguments.clone());
    let mut replaced = Vec::new();
    for (p, value) in secrets {
        match whole.pointer_mut(p) {
            Some(slot) if digest_of(slot).is_some() => *slot = value.clone(),
            _ => replaced.push(p.clone()),
        }
    }
    let arguments = match whole {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    (arguments, replaced)
}

/// SHA-256 of the arguments as recorded (canonical JSON), each marker counted by its digest
/// only (its commitment is salted per call): the same call with the same secret hashes alike,
/// and arguments with no marker hash as they always did.
pub fn arguments_sha256(v: &Value) -> String {
    let identity = with_markers(v, &|d| json!({MARKER: {"digest": d}}));
    canonical::sha256_hex(canonical::to_string(&identity).as_bytes())
}

/// `v` with every marker in it shown as [`shown`] text (for pages, mail and logs).
pub fn for_people(v: &Value) -> Value {
    with_markers(v, &|d| Value::String(shown(d)))
}

/// `v` with every marker in it replaced by `by(its digest)`.
fn with_markers(v: &Value, by: &dyn Fn(&str) -> Value) -> Value {
    if let Some(d) = digest_of(v) {
        return by(d);
    }
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), with_markers(v, by)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| with_markers(v, by)).collect()),
        v => v.clone(),
    }
}

#[cfg(test)]
mod tests;
