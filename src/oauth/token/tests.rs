//! Tokens signed here with Ed25519 keys made from fixed seeds, checked as the gate checks them.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, get_current_timestamp};
use serde_json::{Value, json};

use super::{Checked, KeySet, TokenError, head, missing_scopes, verify};
use crate::config::oauth::{DEFAULT_LEEWAY, OAuthConfig};

const ISSUER: &str = "https://login.example.com";
const RESOURCE: &str = "https://airlock.example.com/mcp";

const ASCII_ONLY: &str = "it may hold only ASCII letters, digits and punctuation (no spaces, hidden characters or letters of other scripts)";

fn cfg() -> OAuthConfig {
    OAuthConfig {
        issuer: ISSUER.into(),
        resource: RESOURCE.into(),
        actor_claim: "sub".into(),
        actor_prefix: "oauth:".into(),
        scopes: vec!["mcp:tools".into()],
        leeway: DEFAULT_LEEWAY,
        accept_plain_jwt: false,
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A PKCS#8 Ed25519 private key (RFC 8410) for a seed, and its public JWK.
fn key(seed: u8, kid: &str) -> (EncodingKey, Value) {
    let seed = [seed; 32];
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend_from_slice(&seed);
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(public.as_bytes()), "kid": kid, "use": "sig"});
    (EncodingKey::from_ed_der(&der), jwk)
}

fn claims() -> Value {
    let now = get_current_timestamp();
    json!({"iss": ISSUER, "aud": RESOURCE, "sub": "agent-1", "scope": "mcp:tools mcp:read", "iat": now, "exp": now + 300})
}

fn sign(claims: &Value, seed: u8, kid: Option<&str>) -> String {
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = kid.map(str::to_string);
    h.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&h, claims, &key(seed, "k").0).unwrap()
}

/// The issuer publishes key `k1` (seed 1) and an RSA-less set otherwise.
fn published() -> KeySet {
    KeySet::parse(&json!({"keys": [key(1, "k1").1, {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}, {"kty": "weird"}]})).unwrap()
}

fn check(token: &str) -> Result<Checked, TokenError> {
    let h = head(token, false)?;
    let k = published().key_for(&h)?;
    verify(token, &h, &k, &cfg())
}

fn with(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut c = claims();
    f(c.as_object_mut().unwrap());
    c
}

#[test]
fn a_token_from_the_issuer_for_this_resource_names_its_actor() {
    let got = check(&sign(&claims(), 1, Some("k1"))).unwrap();
    assert_eq!(got.actor, "oauth:agent-1");
    assert_eq!(got.scopes, ["mcp:tools", "mcp:read"]);
    assert!(missing_scopes(&cfg().scopes, &got.scopes).is_empty());
    // the only fitting key serves a token that names none; an audience list may hold others
    let listed = with(|c| {
        c.insert("aud".into(), json!(["https://other.example.com", RESOURCE]));
    });
    assert!(check(&sign(&listed, 1, None)).is_ok());
    let just_expired = with(|c| {
        c.insert("exp".into(), json!(get_current_timestamp() - 5));
    });
    assert!(
        check(&sign(&just_expired, 1, Some("k1"))).is_ok(),
        "within the leeway"
    );
}

#[test]
fn each_bad_token_is_refused_with_its_reason() {
    let now = get_current_timestamp();
    let good = sign(&claims(), 1, Some("k1"));
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[1] = b64(with(|c| {
        c.insert("sub".into(), json!("admin"));
    })
    .to_string()
    .as_bytes());
    let tampered = parts.join(".");
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"at+jwt"}"#),
        b64(claims().to_string().as_bytes())
    );
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    let cases: Vec<(&str, String, TokenError)> = vec![
        (
            "expired",
            sign(
                &with(|c| {
                    c.insert("exp".into(), json!(now - 3600));
                }),
                1,
                Some("k1"),
            ),
            TokenError::Expired,
        ),
        (
            "not yet valid",
            sign(
                &with(|c| {
                    c.insert("nbf".into(), json!(now + 3600));
                }),
                1,
                Some("k1"),
            ),
            TokenError::NotYetValid,
        ),
        (
            "wrong issuer",
            sign(
                &with(|c| {
                    c.insert("iss".into(), json!("https://evil.example.com"));
                }),
                1,
                Some("k1"),
            ),
            TokenError::Issuer(ISSUER.into()),
        ),
        (
            "wrong audience",
            sign(
                &with(|c| {
                    c.insert("aud".into(), json!("https://other.example.com/mcp"));
                }),
                1,
                Some("k1"),
            ),
            TokenError::Audience(RESOURCE.into()),
        ),
        (
            "no expiry",
            sign(
                &with(|c| {
                    c.remove("exp");
                }),
                1,
                Some("k1"),
            ),
            TokenError::MissingClaim("exp".into()),
        ),
        (
            "no actor claim",
            sign(
                &with(|c| {
                    c.remove("sub");
                }),
                1,
                Some("k1"),
            ),
            TokenError::MissingClaim("sub".into()),
        ),
        (
            "an actor with a space",
            sign(
                &with(|c| {
                    c.insert("sub".into(), json!("a b"));
                }),
                1,
                Some("k1"),
            ),
            TokenError::Actor("sub".into(), ASCII_ONLY.into()),
        ),
        (
            "an actor with a Cyrillic look-alike",
            sign(
                &with(|c| {
                    c.insert("sub".into(), json!("\u{430}gent-1"));
                }),
                1,
                Some("k1"),
            ),
            TokenError::Actor("sub".into(), ASCII_ONLY.into()),
        ),
        (
            "an actor that is a number",
            sign(
                &with(|c| {
                    c.insert("sub".into(), json!(7));
                }),
                1,
                Some("k1"),
            ),
            TokenError::Actor("sub".into(), "it is not a string".into()),
        ),
        ("tampered", tampered, TokenError::Signature),
        (
            "wrong key, same id",
            sign(&claims(), 2, Some("k1")),
            TokenError::Signature,
        ),
        (
            "unknown key id",
            sign(&claims(), 2, Some("k9")),
            TokenError::UnknownKey("k9".into(), "EdDSA".into()),
        ),
        (
            "the HMAC key's id",
            sign(&claims(), 1, Some("hmac")),
            TokenError::UnknownKey("hmac".into(), "EdDSA".into()),
        ),
        ("unsigned", none, TokenError::Unsigned),
        (
            "shared secret",
            hs,
            TokenError::SharedSecret("HS256".into()),
        ),
        ("not a JWT", "abc.def.ghi".into(), TokenError::Malformed),
    ];
    for (name, token, want) in cases {
        assert_eq!(check(&token).map(|c| c.actor), Err(want), "{name}");
    }
}

#[test]
fn the_header_admits_access_token_types_only() {
    let h = |header: &str| head(&format!("{}.e30.sig", b64(header.as_bytes())), false);
    let plain = |header: &str| head(&format!("{}.e30.sig", b64(header.as_bytes())), true);
    assert!(h(r#"{"alg":"RS256","typ":"at+jwt","kid":"a"}"#).is_ok());
    assert!(h(r#"{"alg":"ES256","typ":"application/at+jwt"}"#).is_ok());
    // `JWT` or no type: an ID token looks the same; only `accept_plain_jwt` accepts them
    assert!(h(r#"{"alg":"PS512","typ":"JWT"}"#).is_err());
    assert!(h(r#"{"alg":"PS512"}"#).is_err());
    assert!(plain(r#"{"alg":"PS512","typ":"JWT"}"#).is_ok());
    assert!(plain(r#"{"alg":"PS512"}"#).is_ok());
    assert!(plain(r#"{"alg":"RS256","typ":"dpop+jwt"}"#).is_err());
    assert!(h(r#"{"alg":"EdDSA","typ":"at+jwt"}"#).is_ok());
    assert_eq!(
        h(r#"{"alg":"RS256","typ":"dpop+jwt"}"#),
        Err(TokenError::Type("\"dpop+jwt\"".into()))
    );
    assert_eq!(
        h(r#"{"alg":"RS256","crit":["b64"]}"#),
        Err(TokenError::Critical)
    );
    assert_eq!(h(r#"{"alg":"None"}"#), Err(TokenError::Unsigned));
    assert_eq!(h(r#"{"typ":"JWT"}"#), Err(TokenError::Unsigned));
    assert_eq!(
        h(r#"{"alg":"HS512"}"#),
        Err(TokenError::SharedSecret("HS512".into()))
    );
    assert_eq!(
        h(r#"{"alg":"RSA-OAEP"}"#),
        Err(TokenError::Algorithm("RSA-OAEP".into()))
    );
    assert_eq!(head("not base64!.x.y", false), Err(TokenError::Malformed));
}

#[test]
fn scopes_come_from_scope_or_scp_and_every_required_one_counts() {
    let granted = |c: Value| check(&sign(&c, 1, Some("k1"))).unwrap().scopes;
    let scp = granted(with(|c| {
        c.remove("scope");
        c.insert("scp".into(), json!(["mcp:read", "mcp:tools"]));
    }));
    assert_eq!(scp, ["mcp:read", "mcp:tools"]);
    let none = granted(with(|c| {
        c.remove("scope");
    }));
    assert!(none.is_empty());
    let required = vec!["mcp:tools".to_string(), "mcp:write".to_string()];
    assert_eq!(missing_scopes(&required, &scp), ["mcp:write"]);
}

#[test]
fn a_key_that_cannot_be_used_is_left_out_of_the_set() {
    let set = KeySet::parse(&json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": b64(&[1; 5]), "kid": "short"},
        {"kty": "OKP", "crv": "Ed25519", "x": key(1, "").1["x"], "kid": "enc", "use": "enc"},
        key(1, "k1").1,
    ]}))
    .unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.has("k1") && !set.has("short") && !set.has("enc"));
    assert!(KeySet::parse(&json!({"nokeys": []})).is_err());
}
