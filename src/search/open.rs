//! Opens the configured backend for a process: to write (the sync worker, a rebuild)
//! or only to read (an API without a worker, `verify`, `export`).

use std::sync::Arc;

use super::SearchIndex;
use super::elastic::{ElasticConfig, ElasticIndex};
use super::embedded::{EmbeddedIndex, OpenError};
use crate::config::{SearchBackend, Settings};
use crate::domain::document::{DeadLetters, Entity};

/// A backend this process may write to.
pub struct Writer {
    pub index: Arc<dyn SearchIndex>,
    /// Entities whose index was created empty just now: a backfill is due.
    pub fresh: Vec<Entity>,
}

/// Opens the backend to write. Only the embedded backend can be busy (another process
/// owns it); Elasticsearch takes any number of writers.
pub async fn writer(settings: &Settings, dead_letters: Arc<dyn DeadLetters>) -> Result<Writer, OpenError> {
    match settings.search_backend {
        SearchBackend::Embedded => {
            let index = EmbeddedIndex::open_owner(&settings.data_dir)?;
            let fresh = index.created_fresh();
            Ok(Writer {
                index: Arc::new(index),
                fresh,
            })
        }
        SearchBackend::Elasticsearch => {
            let index = ElasticIndex::new(&ElasticConfig::from_settings(settings)?, dead_letters)?;
            let fresh = index.prepare().await?;
            let mut failed = Vec::new();
            let checks = index.doctor().await;
            for check in checks.iter().filter(|check| check.warning) {
                tracing::warn!(check = %check.name, detail = %check.detail, fix = check.fix.as_deref().unwrap_or_default(), "elasticsearch: starting with a warning");
            }
            for check in checks.into_iter().filter(|check| !check.ok) {
                let described = format!("{}: {} (fix: {})", check.name, check.detail, check.fix.unwrap_or_default());
                if check.blocking {
                    failed.push(described);
                } else {
                    tracing::warn!(check = %described, "elasticsearch check failed; starting anyway");
                }
            }
            if !failed.is_empty() {
                return Err(OpenError::Other(anyhow::anyhow!(
                    "the Elasticsearch cluster is not fit to use ({}); `arrears doctor` shows every check",
                    failed.join("; ")
                )));
            }
            Ok(Writer {
                index: Arc::new(index),
                fresh,
            })
        }
    }
}

/// Opens the backend to read.
pub fn reader(settings: &Settings, dead_letters: Arc<dyn DeadLetters>) -> anyhow::Result<Arc<dyn SearchIndex>> {
    Ok(match settings.search_backend {
        SearchBackend::Embedded => Arc::new(EmbeddedIndex::open_reader(&settings.data_dir).map_err(|e| anyhow::anyhow!("{e}"))?),
        SearchBackend::Elasticsearch => Arc::new(ElasticIndex::new(&ElasticConfig::from_settings(settings)?, dead_letters)?),
    })
}
