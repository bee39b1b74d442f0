//! One JWT access token checked, through the `jsonwebtoken` crate: the header's algorithm (the
//! issuer's public-key signatures only), the key it names among the issuer's published keys,
//! the signature, `iss`, `aud` (Airlock's resource), `exp` and `nbf` (with the configured
//! leeway), and the claim that names the actor.
//!
//! No I/O; the clock is the one `jsonwebtoken` reads for `exp` and `nbf`. It must never verify
//! a signature by hand, accept a key the token carries (`jwk`, `jku`, `x5u`), or a shared-secret
//! (`HS*`) or unsigned (`none`) token.

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::{Map, Value};

use crate::config::oauth::OAuthConfig;

/// Why a token is refused, each a sentence the agent's operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWT access token (three base64url parts separated by dots)")]
    Malformed,
    #[error("the token is neither an [[agent]] token nor a JWT access token")]
    Unknown,
    #[error(
        "the token is unsigned (alg `none`): only tokens signed by the authorization server are accepted"
    )]
    Unsigned,
    #[error(
        "the token is signed with `{0}`, a shared secret: only the authorization server's public-key signatures (RS*, PS*, ES*, EdDSA) are accepted"
    )]
    SharedSecret(String),
    #[error(
        "the token's algorithm `{0}` is not accepted: RS256/384/512, PS256/384/512, ES256/384 or EdDSA"
    )]
    Algorithm(String),
    #[error("the token's type is `{0}`, not an access token (`at+jwt`)")]
    Type(String),
    #[error("the token marks header parameters critical, which are not understood here")]
    Critical,
    #[error("the authorization server publishes no signing key `{0}` for `{1}`")]
    UnknownKey(String, String),
    #[error(
        "the token names no key (`kid`) and the authorization server publishes more than one for `{0}`"
    )]
    NoKid(String),
    #[error(
        "the signature does not verify with the authorization server's key: the token was altered, or signed by someone else"
    )]
    Signature,
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet (`nbf` is in the future)")]
    NotYetValid,
    #[error("the token was not issued by {0}")]
    Issuer(String),
    #[error(
        "the token is not for this resource: its `aud` must be {0} (ask the authorization server with resource={0})"
    )]
    Audience(String),
    #[error("the token has no `{0}` claim")]
    MissingClaim(String),
    #[error("the token's `{0}` claim is malformed")]
    BadClaim(String),
    #[error("the token's `{0}` claim names no agent: {1}")]
    Actor(String, String),
}

/// What a token's header says, once its algorithm is one Airlock accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// A token that checked out: the actor it names and the scopes it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub actor: String,
    pub scopes: Vec<String>,
}

/// Whether a bearer token is shaped like a JWS (three dot-separated parts), not a static token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// Read the header, refusing unsigned, shared-secret and unknown algorithms, unknown critical
/// parameters, and types other than an access token's.
pub fn head(token: &str, plain_jwt: bool) -> Result<Head, TokenError> {
    let first = token.split('.').next().unwrap_or("");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first)
        .map_err(|_| TokenError::Malformed)?;
    let h: Map<String, Value> = serde_json::from_slice(&raw).map_err(|_| TokenError::Malformed)?;
    let alg = h.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg.eq_ignore_ascii_case("none") || alg.is_empty() {
        return Err(TokenError::Unsigned);
    }
    if alg.starts_with("HS") {
        return Err(TokenError::SharedSecret(alg.to_string()));
    }
    let parsed: Algorithm = alg
        .parse()
        .map_err(|_| TokenError::Algorithm(alg.to_string()))?;
    if parsed.family() == jsonwebtoken::AlgorithmFamily::Hmac {
        return Err(TokenError::SharedSecret(alg.to_string()));
    }
    if h.contains_key("crit") {
        return Err(TokenError::Critical);
    }
    // RFC 9068 §4: an access token says `at+jwt`; some servers write `JWT` or nothing, which
    // only `[oauth] accept_plain_jwt` accepts (an ID token looks the same)
    let typ = h
        .get("typ")
        .map(|t| t.as_str().unwrap_or("").to_ascii_lowercase());
    let t = typ
        .as_deref()
        .map(|t| t.strip_prefix("application/").unwrap_or(t));
    match t {
        Some("at+jwt") => {}
        Some("jwt") | None if plain_jwt => {}
        _ => {
            return Err(TokenError::Type(
                h.get("typ").map_or("(none)".to_string(), |t| t.to_string()),
            ));
        }
    }
    let kid = h.get("kid").and_then(Value::as_str).map(str::to_string);
    Ok(Head { alg: parsed, kid })
}

/// The issuer's signing keys, parsed one by one (a key of a kind not understood here is left
/// out, not fatal to the others).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<Jwk>,
}

impl KeySet {
    /// Parse a JWKS document (`{"keys": [...]}`).
    pub fn parse(doc: &Value) -> Result<KeySet, String> {
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no `keys` list")?;
        let keys = list
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .filter(|k| {
                matches!(
                    k.common.public_key_use,
                    None | Some(PublicKeyUse::Signature)
                ) && usable(&k.algorithm)
            })
            .collect();
        Ok(KeySet { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key with this id is published.
    pub fn has(&self, kid: &str) -> bool {
        self.keys
            .iter()
            .any(|k| k.common.key_id.as_deref() == Some(kid))
    }

    /// The key to verify a token with this header: the one its `kid` names (of a kind that
    /// fits the algorithm), or without a `kid` the only key that fits.
    pub fn key_for(&self, head: &Head) -> Result<DecodingKey, TokenError> {
        let alg_name = format!("{:?}", head.alg);
        let fits: Vec<&Jwk> = self
            .keys
            .iter()
            .filter(|k| fits(k, head.alg))
            .filter(|k| head.kid.is_none() || k.common.key_id == head.kid)
            .collect();
        let key = match (fits.as_slice(), &head.kid) {
            ([one], _) => *one,
            ([], Some(kid)) => return Err(TokenError::UnknownKey(kid.clone(), alg_name)),
            ([], None) => return Err(TokenError::UnknownKey("(none named)".into(), alg_name)),
            (_, None) => return Err(TokenError::NoKid(alg_name)),
            // one id given to several keys of the same kind: take none (fail closed)
            (_, Some(kid)) => return Err(TokenError::UnknownKey(kid.clone(), alg_name)),
        };
        DecodingKey::from_jwk(key).map_err(|_| TokenError::UnknownKey(alg_name.clone(), alg_name))
    }
}

/// Whether a key's parameters can verify anything: not a shared secret, and an Ed25519 key of
/// 32 bytes (the crate would panic on a shorter one).
fn usable(p: &AlgorithmParameters) -> bool {
    match p {
        AlgorithmParameters::OctetKey(_) => false,
        AlgorithmParameters::OctetKeyPair(k) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(k.x.trim_end_matches('='))
            .is_ok_and(|x| x.len() == 32),
        _ => true,
    }
}

/// Whether a published key may verify `alg`: its kind and curve fit, and its own `alg`, if it
/// states one, is this one.
fn fits(k: &Jwk, alg: Algorithm) -> bool {
    if let Some(stated) = k.common.key_algorithm {
        if stated.to_string().parse::<Algorithm>().ok() != Some(alg) {
            return false;
        }
    }
    match (&k.algorithm, alg) {
        (AlgorithmParameters::RSA(_), a) => a.family() == jsonwebtoken::AlgorithmFamily::Rsa,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    }
}

/// Verify `token` (whose header is `head`) with `key` against `cfg`: signature, `iss`, `aud`,
/// `exp` and `nbf` (both checked, with the leeway), then the actor claim and the scopes.
pub fn verify(
    token: &str,
    head: &Head,
    key: &DecodingKey,
    cfg: &OAuthConfig,
) -> Result<Checked, TokenError> {
    let mut v = Validation::new(head.alg);
    v.set_issuer(&[&cfg.issuer]);
    v.set_audience(&[&cfg.resource]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.validate_exp = true;
    v.validate_nbf = true;
    v.leeway = cfg.leeway.as_secs();
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &v).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => TokenError::Signature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidIssuer => TokenError::Issuer(cfg.issuer.clone()),
            ErrorKind::InvalidAudience => TokenError::Audience(cfg.resource.clone()),
            ErrorKind::MissingRequiredClaim(c) => TokenError::MissingClaim(c.clone()),
            ErrorKind::InvalidClaimFormat(c) => TokenError::BadClaim(c.clone()),
            ErrorKind::InvalidAlgorithm => TokenError::Algorithm(format!("{:?}", head.alg)),
            _ => TokenError::Malformed,
        })?;
    let claims = data.claims;
    let actor = actor_of(&claims, &cfg.actor_claim)?;
    Ok(Checked {
        actor: cfg.actor(&actor),
        scopes: scopes_of(&claims),
    })
}

/// The actor claim's value: a string of ASCII letters, digits and punctuation, 1-256 bytes (no
/// look-alike letters of other scripts: it names the actor on pages, in mail and in `[actors]`).
fn actor_of(claims: &Map<String, Value>, claim: &str) -> Result<String, TokenError> {
    let v = claims
        .get(claim)
        .ok_or_else(|| TokenError::MissingClaim(claim.to_string()))?;
    let bad = |why: &str| TokenError::Actor(claim.to_string(), why.to_string());
    let s = v.as_str().ok_or_else(|| bad("it is not a string"))?;
    if s.is_empty() || s.len() > 256 {
        return Err(bad("it must be 1 to 256 bytes long"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation())
    {
        return Err(bad(
            "it may hold only ASCII letters, digits and punctuation (no spaces, hidden characters or letters of other scripts)",
        ));
    }
    Ok(s.to_string())
}

/// The scopes granted: `scope` (space-separated, RFC 9068) and `scp` (a list or a string).
fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |v: &Value| match v {
        Value::String(s) => out.extend(s.split_whitespace().map(str::to_string)),
        Value::Array(a) => out.extend(a.iter().filter_map(Value::as_str).map(str::to_string)),
        _ => {}
    };
    for name in ["scope", "scp"] {
        if let Some(v) = claims.get(name) {
            add(v);
        }
    }
    out
}

/// The required scopes a token lacks.
pub fn missing_scopes(required: &[String], granted: &[String]) -> Vec<String> {
    required
        .iter()
        .filter(|r| !granted.contains(r))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests;
