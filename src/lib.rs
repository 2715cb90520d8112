//! Arrears: a search-first collections backend.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod import;
pub mod jobs;
pub mod lists;
pub mod messaging;
pub mod quota;
pub mod search;
pub mod seed;
pub mod service;
pub mod shutdown;
pub mod state;
pub mod storage;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod telephony;
