//! `/api/v1/admin/system`: the operator's view of the process.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http::filters::{principal, with_state};
use crate::http::{self as api, respond};
use crate::service::system::{self, Sources, SystemView};
use crate::state::AppState;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("admin" / "system")
        .and(warp::get())
        .and(principal(state.clone()))
        .and(with_state(state))
        .then(view)
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(view))]
pub struct Api;

/// The operator's view of this process
#[utoipa::path(get, path = "/api/v1/admin/system", tag = "system", operation_id = "system_view",
    responses(
        (status = 200, description = "Memory, CPU, the pool, statement timings by family, sync, jobs and counts of this process, read now; docs/operations.md#the-operators-view says what each is", body = SystemView),
        (status = 403, description = "Admins only"),
    ))]
#[tracing::instrument(skip_all)]
async fn view(caller: Principal, state: AppState) -> Result<Response> {
    let settings = state.settings();
    let sources = Sources {
        pool: state.pool(),
        max_connections: settings.database_max_connections,
        search: state.search().as_ref(),
        sync: state.sync_metrics(),
        started: state.started(),
    };
    let view = system::view(&caller, sources, state.clock().now()).await?;
    Ok(api::json(StatusCode::OK, &view))
}
