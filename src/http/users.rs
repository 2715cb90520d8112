//! `/api/v1/users`: admin-only user management; `/api/v1/agents`: the directory of
//! people who work accounts, for managers.

use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::domain::role::Role;
use crate::error::Result;
use crate::http::ListPage;
use crate::http::filters::{json_body, principal, with_state};
use crate::http::paging::PageQuery;
use crate::http::paging::PageRequest;
use crate::http::{self as api, respond};
use crate::lists::agents::{self as agent_list, AgentList, AgentListParams};
use crate::service::users::{self, CreateUser, UpdateUser, UserView};
use crate::state::AppState;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    let list = warp::path!("users")
        .and(warp::get())
        .and(caller.clone())
        .and(crate::http::query::raw_query())
        .then(list);
    let create = warp::path!("users")
        .and(warp::post())
        .and(caller.clone())
        .and(json_body::<CreateUser>(limit))
        .then(create);
    let update = warp::path!("users" / Uuid)
        .and(warp::patch())
        .and(caller.clone())
        .and(json_body::<UpdateUser>(limit))
        .then(update);
    let agents = warp::path!("agents")
        .and(warp::get())
        .and(caller)
        .and(crate::http::query::raw_query())
        .then(agents);
    list.or(create).unify().or(update).unify().or(agents).unify().map(respond).boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, update, agents))]
pub struct Api;

/// A person who works accounts, as managers see them: no email, no login state.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AgentView {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The team whose KPIs the user's work counts in; null for none.
    pub team: Option<String>,
    pub disabled: bool,
}

/// The directory of agents
#[utoipa::path(get, path = "/api/v1/agents", tag = "users", operation_id = "list_agents",
    params(AgentListParams),
    responses(
        (status = 200, description = "The people who work accounts (agents, managers, admins), by name", body = ListPage<AgentView>),
        (status = 400, description = "`invalid_parameter`"),
        (status = 403, description = "Managers and admins only"),
    ))]
#[tracing::instrument(skip_all)]
async fn agents(caller: Principal, state: AppState, raw_query: String) -> Result<Response> {
    let AgentList { filter, page_size, cursor } = agent_list::parse(&raw_query)?;
    let page: PageRequest<(String, Uuid)> = PageRequest::new(Some(page_size), cursor.as_deref())?;
    let (rows, total) = users::directory(state.pool(), &caller, &filter, page.window()).await?;
    let body = page.finish(
        rows,
        total,
        |u| (u.sort_name.clone(), u.id),
        |u| {
            Ok(AgentView {
                id: u.id,
                role: Role::stored(&u.role),
                name: u.name,
                team: u.team,
                disabled: u.disabled,
            })
        },
    )?;
    Ok(api::json(StatusCode::OK, &body))
}

/// List users
#[utoipa::path(get, path = "/api/v1/users", tag = "users", operation_id = "list_users",
    params(PageQuery),
    responses(
        (status = 200, description = "Users, newest first", body = ListPage<UserView>),
        (status = 403, description = "Admins only"),
    ))]
#[tracing::instrument(skip_all)]
async fn list(caller: Principal, state: AppState, raw_query: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw_query)?;
    let (rows, total) = users::list(state.pool(), &caller, page.window()).await?;
    let body = page.finish(rows, total, |u| (u.created_at, u.id), Ok)?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Create a user
#[utoipa::path(post, path = "/api/v1/users", tag = "users", operation_id = "create_user",
    request_body = CreateUser,
    responses(
        (status = 201, description = "The user", body = UserView),
        (status = 403, description = "Admins only"),
        (status = 409, description = "`email_taken`"),
        (status = 503, description = "`service_unavailable`: too many passwords being hashed at once; retry shortly"),
    ))]
#[tracing::instrument(skip_all)]
async fn create(caller: Principal, state: AppState, body: CreateUser) -> Result<Response> {
    let user = users::create(state.pool(), state.auth().hashers(), &caller, body).await?;
    Ok(api::json(StatusCode::CREATED, &user))
}

/// Change a user
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", operation_id = "update_user",
    params(("id" = Uuid, Path, description = "The user's id")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 403, description = "Admins only"),
        (status = 409, description = "`conflict`: an admin cannot change their own role or disable themselves"),
    ))]
#[tracing::instrument(skip_all, fields(user_id = %id))]
async fn update(id: Uuid, caller: Principal, state: AppState, body: UpdateUser) -> Result<Response> {
    let user = users::update(state.pool(), &caller, id, body).await?;
    state.sessions_changed(id).await;
    Ok(api::json(StatusCode::OK, &user))
}
