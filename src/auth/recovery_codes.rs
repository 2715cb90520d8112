//! One-time recovery codes: what signs a user in when their authenticator is lost. Each
//! holds 80 random bits, shown once as `xxxx-xxxx-xxxx-xxxx` and stored only as a hash
//! (like refresh tokens: random enough that a fast hash is safe).

use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Codes handed out at each enrolment.
pub const COUNT: usize = 10;
/// Characters that cannot be misread for one another (no i, l, o, u).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const GROUPS: usize = 4;
const GROUP_LEN: usize = 4;
/// Longest text taken as a recovery code (spaces and dashes included).
pub const MAX_TYPED_LEN: usize = 64;

/// [`COUNT`] new codes, as the user is shown them.
pub fn generate() -> Vec<String> {
    let mut rng = rand::rng();
    (0..COUNT)
        .map(|_| {
            let groups: Vec<String> = (0..GROUPS)
                .map(|_| {
                    (0..GROUP_LEN)
                        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                        .collect()
                })
                .collect();
            groups.join("-")
        })
        .collect()
}

/// The hash stored for `code` of `user_id`; the code as typed (any case, with or
/// without dashes and spaces) hashes the same as shown.
pub fn hash(user_id: Uuid, code: &str) -> Vec<u8> {
    let normal: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let mut digest = Sha256::new();
    digest.update(user_id.as_bytes());
    digest.update(normal.as_bytes());
    digest.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_readable_and_hash_as_typed() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        assert_eq!(codes.iter().collect::<std::collections::HashSet<_>>().len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), GROUPS * GROUP_LEN + GROUPS - 1, "{code}");
            assert!(code.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)), "{code}");
        }
        let user = Uuid::new_v4();
        let code = &codes[0];
        assert_eq!(hash(user, code), hash(user, &code.to_uppercase().replace('-', " ")));
        assert_eq!(hash(user, code), hash(user, &code.replace('-', "")));
        assert_ne!(hash(user, code), hash(Uuid::new_v4(), code), "bound to the user");
        assert_ne!(hash(user, code), hash(user, &codes[1]));
    }
}
