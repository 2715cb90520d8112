//! Second-factor secrets at rest: AES-256-GCM under a key derived (HKDF-SHA256) from the
//! token signing secret, each sealed to the user it belongs to. A copy of the database
//! alone does not give anyone the codes; a sealed secret copied onto another user's row
//! does not open.

use rand::RngCore;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use uuid::Uuid;

/// Names what the derived key is for, so that it is like no other key derived from the
/// same secret. Changing it makes every stored secret unreadable.
const PURPOSE: &[u8] = b"arrears second-factor secrets v1";

pub struct Seal {
    key: LessSafeKey,
}

impl Seal {
    /// The key for `server_secret` (JWT_SECRET, or the development secret).
    pub fn derive(server_secret: &[u8]) -> Self {
        let prk = Salt::new(HKDF_SHA256, PURPOSE).extract(server_secret);
        let info = [PURPOSE];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .expect("a 32-byte key is a valid HKDF-SHA256 output length");
        Self {
            key: LessSafeKey::new(UnboundKey::from(okm)),
        }
    }

    /// `plain` sealed to `user_id`: a random nonce, then the ciphertext and its tag.
    pub fn seal(&self, user_id: Uuid, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut sealed = plain.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(user_id.as_bytes()), &mut sealed)
            .expect("a short secret fits AES-GCM's limits");
        [nonce.as_slice(), &sealed].concat()
    }

    /// What `seal` sealed to `user_id`; `None` when it was sealed under another key (the
    /// server secret changed), to another user, or altered.
    pub fn open(&self, user_id: Uuid, sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = ciphertext.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(user_id.as_bytes()), &mut buffer).ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_opens_only_for_its_user_under_the_same_server_secret() {
        let seal = Seal::derive(&[7u8; 32]);
        let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = seal.seal(user, b"12345678901234567890");
        assert!(!sealed.windows(20).any(|w| w == b"12345678901234567890"), "not stored in the clear");
        assert_eq!(seal.open(user, &sealed).as_deref(), Some(b"12345678901234567890".as_slice()));
        assert_eq!(seal.open(other, &sealed), None, "moved to another user");
        assert_eq!(Seal::derive(&[8u8; 32]).open(user, &sealed), None, "another server secret");
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(seal.open(user, &altered), None, "altered");
        assert_eq!(seal.open(user, &sealed[..5]), None, "truncated");
        assert_ne!(seal.seal(user, b"same"), seal.seal(user, b"same"), "a fresh nonce each time");
    }
}
