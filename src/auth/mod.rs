//! Authentication: passwords, access tokens, refresh-token sessions, login throttling.

pub mod gate;
pub mod password;
pub mod proxies;
pub mod rate_limit;
pub mod session_cache;
pub mod tokens;
