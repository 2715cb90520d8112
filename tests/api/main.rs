//! Integration tests: the real application over HTTP against real PostgreSQL.

mod account_fields;
mod accounts;
mod activities;
mod auth;
#[path = "../support/bombs.rs"]
mod bombs;
mod compliance;
mod compression;
mod concurrency;
mod console;
mod contract;
mod elastic;
mod elastic_upgrades;
mod errors;
mod es_spec;
mod export;
mod helpers;
mod imports;
mod jobs;
mod kpis;
mod metrics;
mod notifications;
mod openapi;
mod payments;
mod plans;
mod promises;
mod queue;
mod rate_limits;
mod scripted_es;
mod search;
mod security;
mod security_rules;
mod stats;
mod sync;
mod users;
mod ws;
