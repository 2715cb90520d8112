//! Short-lived HS256 access tokens and opaque refresh tokens.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Code, Error, Result};

const MIN_SECRET_BYTES: usize = 32;
const SECRET_FILE: &str = "jwt_secret";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], access_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
        }
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    pub fn issue(&self, user_id: Uuid, session_id: Uuid) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            sid: session_id,
            iat: now,
            exp: now + self.access_ttl.as_secs() as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .context("signing access token")
            .map_err(Error::from)
    }

    pub fn verify(&self, token: &str) -> Result<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => Error::new(Code::TokenExpired, "the access token has expired; refresh it"),
                _ => Error::new(Code::Unauthorized, "the access token is not valid"),
            })
    }
}

/// A new opaque refresh token and the hash that is stored for it.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The signing secret: configured, or in development generated once under `data_dir`
/// so tokens survive a restart. Production refuses to run without a configured one.
pub fn load_secret(configured: Option<&str>, production: bool, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured {
        if secret.len() < MIN_SECRET_BYTES {
            bail!("JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes");
        }
        return Ok(secret.as_bytes().to_vec());
    }
    if production {
        bail!("JWT_SECRET is required in production mode");
    }
    let path = data_dir.join(SECRET_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let trimmed = existing.trim();
        if trimmed.len() >= MIN_SECRET_BYTES {
            return Ok(trimmed.as_bytes().to_vec());
        }
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(path = %path.display(), "generated a development JWT secret; set JWT_SECRET in production");
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_secret_is_generated_once_and_production_requires_one() {
        let dir = std::env::temp_dir().join(format!("arrears-secret-{}", Uuid::new_v4().simple()));
        let first = load_secret(None, false, &dir).unwrap();
        assert!(first.len() >= MIN_SECRET_BYTES);
        assert_eq!(load_secret(None, false, &dir).unwrap(), first, "kept across restarts");
        let err = load_secret(None, true, &dir).unwrap_err().to_string();
        assert!(err.contains("required in production"), "{err}");
        assert!(load_secret(Some("short"), true, &dir).is_err());
        assert_eq!(load_secret(Some(&"s".repeat(32)), true, &dir).unwrap(), "s".repeat(32).into_bytes());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tokens_round_trip_and_tampering_is_refused() {
        let keys = TokenKeys::new(&[7u8; 32], Duration::from_secs(60));
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let token = keys.issue(user, session).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, session));
        let other = TokenKeys::new(&[8u8; 32], Duration::from_secs(60));
        assert_eq!(other.verify(&token).unwrap_err().code(), Code::Unauthorized);
    }
}
