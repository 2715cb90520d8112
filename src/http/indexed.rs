//! `?wait_for=indexed`: a write that answers only once the search index holds what it
//! wrote, so a client can read its own writes from a list.

use std::time::{Duration, Instant};

use uuid::Uuid;
use warp::Filter;

use crate::domain::document::Entity;
use crate::error::{Code, Error, Result};
use crate::http::query::raw_query;
use crate::http::recover::Rejected;
use crate::state::AppState;

/// `?wait_for=indexed`: the write answers only once the index holds its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitForIndexed(bool);

/// How [`wait_for`] reads the query, for the API description.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitForParam {
    /// `indexed`: answer only once the search index holds the write (bounded; 504 past it).
    #[param(inline)]
    pub wait_for: Option<WaitFor>,
}

#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum WaitFor {
    Indexed,
}

pub fn wait_for() -> impl Filter<Extract = (WaitForIndexed,), Error = warp::Rejection> + Clone {
    raw_query().and_then(|raw: String| async move {
        let mut wait = false;
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            match (key.as_ref(), value.as_ref()) {
                ("wait_for", "indexed") => wait = true,
                ("wait_for", other) => {
                    return Err(warp::reject::custom(Rejected(Error::field(
                        "wait_for",
                        format!("`{other}` is not supported; use `indexed`"),
                    ))));
                }
                (other, _) => {
                    return Err(warp::reject::custom(Rejected(Error::new(
                        Code::InvalidParameter,
                        format!("unknown parameter `{other}`"),
                    ))));
                }
            }
        }
        Ok(WaitForIndexed(wait))
    })
}

/// Polls the index until it holds each `(entity, id, version)`, bounded by the
/// configured timeout.
pub async fn wait_until_indexed(state: &AppState, wait: WaitForIndexed, documents: &[(Entity, Uuid, i64)]) -> Result<()> {
    if !wait.0 {
        return Ok(());
    }
    let timeout = Duration::from_millis(state.settings().wait_for_indexed_timeout_ms);
    let deadline = Instant::now() + timeout;
    let mut waiting = documents.to_vec();
    loop {
        let mut still = Vec::with_capacity(waiting.len());
        for (entity, id, version) in waiting {
            if state.search().version_of(entity, id).await?.is_none_or(|held| held < version) {
                still.push((entity, id, version));
            }
        }
        waiting = still;
        if waiting.is_empty() {
            let mut entities: Vec<Entity> = Vec::new();
            for (entity, _, _) in documents {
                if !entities.contains(entity) {
                    entities.push(*entity);
                }
            }
            for entity in entities {
                state.search().searchable_everywhere(entity).await?;
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::new(
                Code::IndexTimeout,
                format!("the change was saved but was not searchable within {} ms", timeout.as_millis()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
