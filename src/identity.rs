//! Agent identity over HTTP: bearer tokens, kept only as SHA-256 hashes, mapped to actor ids.
//!
//! Owns token generation, the hash stored in `[[agent]] token_sha256`, and the constant-time
//! lookup of a presented `Authorization: Bearer` token. It must never store, log or forward a
//! token itself (tool servers never see it).

use sha2::{Digest, Sha256};

use crate::config::http::AgentToken;

/// Who made a request: set by the HTTP layer once its token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub actor: String,
}

/// The agents allowed in.
#[derive(Debug, Clone, Default)]
pub struct Agents {
    tokens: Vec<AgentToken>,
}

impl Agents {
    pub fn new(tokens: Vec<AgentToken>) -> Agents {
        Agents { tokens }
    }

    /// The actor of an `Authorization` header value (`Bearer <token>`), if its token is known.
    /// Every known hash is compared in full, in constant time.
    pub fn actor_of(&self, authorization: Option<&str>) -> Option<&str> {
        let token = bearer(authorization)?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for t in &self.tokens {
            let diff = t
                .token_sha256
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 && found.is_none() {
                found = Some(t.actor.as_str());
            }
        }
        found
    }
}

/// The token of an `Authorization` header value (`Bearer <token>`; the scheme name in any
/// case, RFC 7235), if it is one.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A new random token (`alk_` + 64 hex characters) and the SHA-256 hex to put in the config.
pub fn new_token() -> Result<(String, String), String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    let token = format!("alk_{}", hex::encode(bytes));
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    Ok((token, hash))
}

#[cfg(test)]
mod tests {
    use super::{AgentToken, Agents, new_token};

    #[test]
    fn a_token_is_known_by_its_hash_alone() {
        let (a, a_hash) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        let mut h = [0u8; 32];
        hex::decode_to_slice(&a_hash, &mut h).unwrap();
        let agents = Agents::new(vec![AgentToken {
            actor: "agent:a".into(),
            token_sha256: h,
        }]);
        assert_eq!(
            agents.actor_of(Some(&format!("Bearer {a}"))),
            Some("agent:a")
        );
        assert_eq!(
            agents.actor_of(Some(&format!("Bearer {b}"))),
            None,
            "another token"
        );
        assert_eq!(agents.actor_of(Some(&a)), None, "not a bearer header");
        assert_eq!(
            agents.actor_of(Some(&format!("bearer {a}"))),
            Some("agent:a"),
            "scheme in any case"
        );
        assert_eq!(agents.actor_of(Some(&format!("Basic {a}"))), None);
        assert_eq!(agents.actor_of(Some("Bearer ")), None);
        assert_eq!(agents.actor_of(None), None);
        assert_ne!(a, b);
        assert!(a.starts_with("alk_") && a.len() == 68);
    }
}
