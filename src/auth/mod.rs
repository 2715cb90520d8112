//! Authentication: passwords, access tokens, refresh-token sessions, login throttling,
//! and the TOTP second factor.

pub mod gate;
pub mod password;
pub mod proxies;
pub mod rate_limit;
pub mod recovery_codes;
pub mod seal;
pub mod session_cache;
pub mod tokens;
pub mod totp;
