//! `/api/v1/users`: user management (admins: everyone; managers: the agents of their
//! team); `/api/v1/agents`: the directory of people who work accounts, for managers.

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
use crate::service::jobs::JobView;
use crate::service::users::{self, CreateUser, MoveAccounts, Moved, UpdateUser, UserView};
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
    let delete = warp::path!("users" / Uuid).and(warp::delete()).and(caller.clone()).then(delete);
    let move_accounts = warp::path!("users" / Uuid / "accounts" / "move")
        .and(warp::post())
        .and(caller.clone())
        .and(json_body::<MoveAccounts>(limit))
        .then(move_accounts);
    let agents = warp::path!("agents")
        .and(warp::get())
        .and(caller)
        .and(crate::http::query::raw_query())
        .then(agents);
    list.or(create)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(move_accounts)
        .unify()
        .or(agents)
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, update, delete, move_accounts, agents))]
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
        (status = 200, description = "Users, oldest first: every user for admins, the users of their team for managers", body = ListPage<UserView>),
        (status = 403, description = "Admins, and managers with a team, only"),
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
        (status = 403, description = "Admins; managers create agents of their own team only (the team is theirs when absent)"),
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
        (status = 403, description = "Admins; managers change only `disabled`, of agents of their own team"),
        (status = 404, description = "No such user"),
        (status = 409, description = "`conflict`: an admin cannot change their own role or disable themselves; a deleted user cannot be changed"),
    ))]
#[tracing::instrument(skip_all, fields(user_id = %id))]
async fn update(id: Uuid, caller: Principal, state: AppState, body: UpdateUser) -> Result<Response> {
    let user = users::update(state.pool(), &caller, id, body).await?;
    state.sessions_changed(id).await;
    Ok(api::json(StatusCode::OK, &user))
}

/// Delete a user
///
/// Anonymises the user (name, email, password), disables them for good and revokes their
/// sessions; the id stays, so accounts, activities and the audit trail still name them.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", operation_id = "delete_user",
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user as deleted", body = UserView),
        (status = 403, description = "Admins only"),
        (status = 404, description = "No such user"),
        (status = 409, description = "`conflict`: open accounts are still assigned to the user (`assigned_accounts` says how many; move them first), the user is already deleted, or it is the caller"),
    ))]
#[tracing::instrument(skip_all, fields(user_id = %id))]
async fn delete(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let user = users::delete(state.pool(), &caller, id).await?;
    state.sessions_changed(id).await;
    Ok(api::json(StatusCode::OK, &user))
}

/// How many accounts moved at once.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MovedNow {
    pub moved: u64,
}

/// Move an agent's accounts
///
/// Assigns every open account (not deleted, not paid, settled or closed) of the user to
/// another. Up to 500 move at once (200); more move as a bulk-update job (202) whose
/// progress `GET /api/v1/jobs/{id}` shows.
#[utoipa::path(post, path = "/api/v1/users/{id}/accounts/move", tag = "users", operation_id = "move_user_accounts",
    params(("id" = Uuid, Path, description = "The user whose accounts move")),
    request_body = MoveAccounts,
    responses(
        (status = 200, description = "Moved", body = MovedNow),
        (status = 202, description = "Queued as a bulk-update job", body = JobView),
        (status = 403, description = "Admins; managers move between agents of their own team only"),
        (status = 404, description = "No such user"),
        (status = 422, description = "`validation_failed` naming `to`: unknown, the same user, or disabled, deleted or not someone who works accounts"),
    ))]
#[tracing::instrument(skip_all, fields(user_id = %id))]
async fn move_accounts(id: Uuid, caller: Principal, state: AppState, body: MoveAccounts) -> Result<Response> {
    Ok(match users::move_accounts(state.pool(), &caller, id, body).await? {
        Moved::Now(moved) => api::json(StatusCode::OK, &MovedNow { moved }),
        Moved::Queued(job) => api::json(StatusCode::ACCEPTED, &JobView::from(job)),
    })
}
