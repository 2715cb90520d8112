//! `/api/v1/users`: admin-only user management; `/api/v1/agents`: the directory of
//! people who work accounts, for managers.

use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::domain::role::{Action, Role};
use crate::error::{Error, Result};
use crate::http::ListPage;
use crate::http::filters::{json_body, principal, with_state};
use crate::http::paging::PageQuery;
use crate::http::paging::PageRequest;
use crate::http::{self as api, respond};
use crate::lists::agents::{self as agent_list, AgentList, AgentListParams};
use crate::service::users::{CreateUser, UpdateUser, UserView, create_user, update_user};
use crate::state::AppState;
use crate::store::users;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    let list = warp::path!("users")
        .and(warp::get())
        .and(caller.clone())
        .and(crate::http::query::raw_query())
        .then(|p, s, q: String| async move { respond(list(p, s, q).await) });
    let create = warp::path!("users")
        .and(warp::post())
        .and(caller.clone())
        .and(json_body::<CreateUser>(limit))
        .then(|p, s, b| async move { respond(create(p, s, b).await) });
    let update = warp::path!("users" / Uuid)
        .and(warp::patch())
        .and(caller.clone())
        .and(json_body::<UpdateUser>(limit))
        .then(|id, p, s, b| async move { respond(update(id, p, s, b).await) });
    let agents = warp::path!("agents")
        .and(warp::get())
        .and(caller)
        .and(crate::http::query::raw_query())
        .then(|p, s, q: String| async move { respond(agents(p, s, q).await) });
    list.or(create).unify().or(update).unify().or(agents).unify().boxed()
}

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

#[utoipa::path(get, path = "/api/v1/agents", tag = "users", operation_id = "list_agents",
    params(AgentListParams),
    responses(
        (status = 200, description = "The people who work accounts (agents, managers, admins), by name", body = ListPage<AgentView>),
        (status = 400, description = "`invalid_parameter`"),
        (status = 403, description = "Managers and admins only"),
    ))]
#[tracing::instrument(skip_all)]
async fn agents(caller: Principal, state: AppState, raw_query: String) -> Result<Response> {
    caller.require(Action::ReadAgents)?;
    let AgentList { filter, page_size, cursor } = agent_list::parse(&raw_query)?;
    let page: PageRequest<(String, Uuid)> = PageRequest::new(Some(page_size), cursor.as_deref())?;
    let rows = users::directory(state.pool(), &filter, page.after.clone(), page.fetch()).await?;
    let total = users::directory_count(state.pool(), &filter).await?;
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

#[utoipa::path(get, path = "/api/v1/users", tag = "users", operation_id = "list_users",
    params(PageQuery),
    responses(
        (status = 200, description = "Users, newest first", body = ListPage<UserView>),
        (status = 403, description = "Admins only"),
    ))]
#[tracing::instrument(skip_all)]
async fn list(caller: Principal, state: AppState, raw_query: String) -> Result<Response> {
    caller.require(Action::ManageUsers)?;
    let page = PageRequest::from_query(&raw_query)?;
    let rows = users::list(state.pool(), page.after, page.fetch()).await?;
    let total = users::count(state.pool()).await?;
    let body = page.finish(rows, total, |u| (u.created_at, u.id), |u| Ok(UserView::from(&u)))?;
    Ok(api::json(StatusCode::OK, &body))
}

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
    caller.require(Action::ManageUsers)?;
    let row = create_user(state.pool(), state.auth().hashers(), body).await?;
    tracing::info!(user_id = %row.id, role = row.role, "user created");
    Ok(api::json(StatusCode::CREATED, &UserView::from(&row)))
}

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
    let row = update_user(state.pool(), &caller, id, body)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    state.sessions_changed(id).await;
    tracing::info!(role = row.role, disabled = row.disabled, "user updated");
    Ok(api::json(StatusCode::OK, &UserView::from(&row)))
}
