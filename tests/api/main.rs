//! Integration tests: the real application over HTTP against real PostgreSQL.

mod accounts;
mod auth;
mod concurrency;
mod errors;
mod helpers;
mod users;
