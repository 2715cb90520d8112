//! `/api/v1/kpis`: the manager KPIs.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http::filters::{principal, with_state};
use crate::http::{self as api, respond};
use crate::service::kpis::{self, KpiParams, KpiReport};
use crate::state::AppState;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("kpis")
        .and(warp::get())
        .and(principal(state.clone()))
        .and(with_state(state))
        .and(crate::http::query::raw_query())
        .then(report)
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(report))]
pub struct Api;

/// Collections KPIs
#[utoipa::path(get, path = "/api/v1/kpis", tag = "kpis", operation_id = "kpis",
    params(KpiParams),
    responses(
        (status = 200, description = "The KPIs of the period over the accounts within the caller's portfolios, per group and in total; docs/features/kpis.md defines each figure", body = KpiReport),
        (status = 400, description = "`invalid_parameter`, naming each bad parameter (a `portfolio` that does not exist or is not the caller's, an `agent` no user is, a `team` no user is in)"),
        (status = 403, description = "Managers and admins only"),
    ))]
#[tracing::instrument(skip_all)]
async fn report(caller: Principal, state: AppState, raw_query: String) -> Result<Response> {
    let report = kpis::report(state.pool(), state.kept_rows(), &caller, &raw_query, state.clock().now()).await?;
    Ok(api::json(StatusCode::OK, &report))
}
