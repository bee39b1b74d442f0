//! The Standard Webhooks scheme (standardwebhooks.com), by which a receiver knows a POST is
//! Airlock's: the secret's form (`whsec_` and base64 of the key), and the three headers —
//! `webhook-id` (stable across retries), `webhook-timestamp` (seconds, fresh per attempt: the
//! receivers' libraries refuse one more than five minutes off) and `webhook-signature`
//! (`v1,` and base64 of HMAC-SHA256 over `id.timestamp.body`).
//!
//! Pure: it never reads the environment or the clock, never sends anything.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The shortest key accepted, in bytes (the scheme's libraries generate 24 to 64).
const MIN_KEY: usize = 24;
/// The longest, in bytes.
const MAX_KEY: usize = 64;

/// A webhook's signing key, decoded from its `whsec_…` form.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// Read `whsec_` followed by the base64 of 24–64 random bytes; the error says what is wrong
    /// without repeating the value.
    pub fn parse(text: &str) -> Result<Secret, String> {
        let Some(b64) = text.trim().strip_prefix("whsec_") else {
            return Err("it must start with `whsec_` (the Standard Webhooks form: `whsec_` and the base64 of 24 to 64 random bytes, e.g. from `openssl rand -base64 32`)".into());
        };
        let key = STANDARD
            .decode(b64)
            // base64's own message names the offending character and its place: not repeated
            .map_err(|_| "what follows `whsec_` is not base64".to_string())?;
        if !(MIN_KEY..=MAX_KEY).contains(&key.len()) {
            return Err(format!(
                "the key is {} bytes; it must be {MIN_KEY} to {MAX_KEY}",
                key.len()
            ));
        }
        Ok(Secret(key))
    }

    /// The `webhook-signature` header's value for a message `id` sent at `timestamp`
    /// (Unix seconds) with this `body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes a key of any length
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn the_signature_is_the_schemes_own_test_vector() {
        // from the Standard Webhooks specification and its reference libraries' tests
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_secret_in_the_wrong_form_is_refused_with_the_reason() {
        assert!(
            Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap_err()
                .contains("whsec_")
        );
        assert!(
            Secret::parse("whsec_???")
                .unwrap_err()
                .contains("not base64")
        );
        assert!(Secret::parse("whsec_AAAA").unwrap_err().contains("3 bytes"));
        let shown = format!(
            "{:?}",
            Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
        );
        assert!(!shown.contains("MfKQ"), "{shown}");
    }

    #[test]
    fn a_malformed_secret_is_refused_without_telling_which_character_or_where() {
        // two secrets that differ only in the bad character and its place: the same message
        let one = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8I!PZIo2LaLaSw").unwrap_err();
        let two = Secret::parse("whsec_MfKQ9r8GKY?rTwjUPD8ILPZIo2LaLaSw").unwrap_err();
        assert!(one.contains("not base64"), "{one}");
        assert_eq!(
            one, two,
            "the message must not repeat any part of the value"
        );
    }
}
