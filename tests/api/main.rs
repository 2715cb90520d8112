//! Integration tests: the real application over HTTP against real PostgreSQL.

mod accounts;
mod auth;
mod concurrency;
mod contract;
mod errors;
mod helpers;
mod search;
mod sync;
mod users;
