//! Approval links: tokens bound to one approval, one stage, one approver and one envelope hash,
//! and the per-page nonce that a decision POST must carry.
//!
//! A token is HMAC-SHA256(secret, approval ‖ stage ‖ approver ‖ envelope hash): 256 bits, never
//! stored (not even hashed) — it is recomputed and compared in constant time. The secret is 32
//! bytes from the OS CSPRNG in a 0600 file beside the ledger, so links survive a restart. This
//! module must never build a URL from anything but the configured base URL.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The secret that signs links and nonces.
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("link key {path}: {message}")]
    Io { path: String, message: String },
}

impl LinkKey {
    /// Read the key file, or create it (mode 0600) with fresh random bytes.
    pub fn load_or_create(path: &Path) -> Result<LinkKey, KeyError> {
        crate::private::secret(path)
            .map(LinkKey)
            .map_err(|message| KeyError::Io {
                path: path.display().to_string(),
                message,
            })
    }

    /// A key from the OS CSPRNG.
    pub fn random() -> Result<LinkKey, String> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| e.to_string())?;
        Ok(LinkKey(k))
    }

    fn mac(&self, parts: &[&str]) -> HmacSha256 {
        // new_from_slice accepts any key length for HMAC
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p.as_bytes());
        }
        m
    }

    fn link_mac(
        &self,
        approval: &str,
        stage: u32,
        approver: &str,
        envelope_hash: &str,
    ) -> HmacSha256 {
        self.mac(&[
            "airlock.link.v1",
            approval,
            &stage.to_string(),
            &approver.to_ascii_lowercase(),
            envelope_hash,
        ])
    }

    fn nonce_mac(&self, token: &str, rendered_at: i64) -> HmacSha256 {
        self.mac(&["airlock.nonce.v1", token, &rendered_at.to_string()])
    }

    /// The token of one approver's link.
    pub fn token(&self, approval: &str, stage: u32, approver: &str, envelope_hash: &str) -> String {
        hex::encode(
            self.link_mac(approval, stage, approver, envelope_hash)
                .finalize()
                .into_bytes(),
        )
    }

    /// Constant-time check of a presented token.
    pub fn verify_token(
        &self,
        presented: &str,
        approval: &str,
        stage: u32,
        approver: &str,
        envelope_hash: &str,
    ) -> bool {
        verify(
            self.link_mac(approval, stage, approver, envelope_hash),
            presented,
        )
    }

    /// A token for another purpose (the review page, a pause's resume link): an HMAC over
    /// `parts`, whose first part names the purpose and version.
    pub fn purpose_token(&self, parts: &[&str]) -> String {
        hex::encode(self.mac(parts).finalize().into_bytes())
    }

    /// Constant-time check of a [`LinkKey::purpose_token`].
    pub fn verify_purpose(&self, presented: &str, parts: &[&str]) -> bool {
        verify(self.mac(parts), presented)
    }

    /// The nonce a page rendered at `rendered_at` (unix seconds) embeds in its form.
    pub fn nonce(&self, token: &str, rendered_at: i64) -> String {
        hex::encode(self.nonce_mac(token, rendered_at).finalize().into_bytes())
    }

    pub fn verify_nonce(&self, presented: &str, token: &str, rendered_at: i64) -> bool {
        verify(self.nonce_mac(token, rendered_at), presented)
    }
}

/// Constant-time comparison of a presented hex MAC.
fn verify(mac: HmacSha256, presented: &str) -> bool {
    hex::decode(presented).is_ok_and(|bytes| mac.verify_slice(&bytes).is_ok())
}

#[cfg(test)]
mod tests {
    use super::LinkKey;

    #[test]
    fn tokens_are_bound_to_approval_stage_approver_and_envelope() {
        let k = LinkKey::random().unwrap();
        let t = k.token("a1", 0, "Ann@Example.com", "h1");
        assert_eq!(t.len(), 64, "256 bits");
        assert!(k.verify_token(&t, "a1", 0, "ann@example.com", "h1"));
        assert!(
            !k.verify_token(&t, "a2", 0, "ann@example.com", "h1"),
            "cross-envelope"
        );
        assert!(
            !k.verify_token(&t, "a1", 1, "ann@example.com", "h1"),
            "older stage"
        );
        assert!(
            !k.verify_token(&t, "a1", 0, "bob@example.com", "h1"),
            "cross-approver"
        );
        assert!(
            !k.verify_token(&t, "a1", 0, "ann@example.com", "h2"),
            "modified envelope"
        );
        assert!(
            !k.verify_token("zz", "a1", 0, "ann@example.com", "h1"),
            "garbage"
        );
        let other = LinkKey::random().unwrap();
        assert!(
            !other.verify_token(&t, "a1", 0, "ann@example.com", "h1"),
            "forged with another key"
        );
    }

    #[test]
    fn nonces_are_bound_to_token_and_render_time() {
        let k = LinkKey::random().unwrap();
        let n = k.nonce("tok", 100);
        assert!(k.verify_nonce(&n, "tok", 100));
        assert!(!k.verify_nonce(&n, "tok", 101));
        assert!(!k.verify_nonce(&n, "other", 100));
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let a = LinkKey::load_or_create(&p).unwrap();
        let b = LinkKey::load_or_create(&p).unwrap();
        assert_eq!(a.token("x", 0, "y", "z"), b.token("x", 0, "y", "z"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
