//! `/api/v1/fields`: custom field definitions. Every role that reads accounts reads the
//! live ones; admins manage them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::custom_field::{CreateField, Definition, PatchField};
use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http::filters::{json_body, principal, with_state};
use crate::http::paging::PageRequest;
use crate::http::query::{parse_query, raw_query};
use crate::http::{self as api, ListPage, respond};
use crate::service::fields::{self as service, StoredField};
use crate::state::AppState;

/// A custom field definition.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FieldView {
    #[serde(flatten)]
    definition: Definition,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<StoredField> for FieldView {
    fn from(field: StoredField) -> Self {
        Self {
            definition: field.definition,
            created_at: field.created_at,
            updated_at: field.updated_at,
        }
    }
}

/// `GET /fields/{key}` parameters.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct OneFieldQuery {
    /// A deleted definition too (admins only; otherwise 404, as after any `DELETE`).
    #[serde(default)]
    include_deleted: bool,
}

/// `GET /fields` parameters.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Deleted definitions too (admins only).
    include_deleted: Option<bool>,
    #[param(minimum = 1, maximum = 200, default = 25)]
    page_size: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    let list = warp::path!("fields")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(list);
    let create = warp::path!("fields")
        .and(warp::post())
        .and(caller.clone())
        .and(json_body::<CreateField>(limit))
        .then(create);
    let get = warp::path!("fields" / String)
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(get);
    let update = warp::path!("fields" / String)
        .and(warp::patch())
        .and(caller.clone())
        .and(json_body::<PatchField>(limit))
        .then(update);
    let delete = warp::path!("fields" / String).and(warp::delete()).and(caller.clone()).then(delete);
    let restore = warp::path!("fields" / String / "restore")
        .and(warp::post())
        .and(caller)
        .then(restore);
    list.or(create)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(restore)
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, get, update, delete, restore))]
pub struct Api;

/// List custom field definitions
#[utoipa::path(get, path = "/api/v1/fields", tag = "fields", operation_id = "list_fields",
    params(ListQuery),
    responses(
        (status = 200, description = "The live definitions by position, then key (and the deleted ones with `include_deleted=true`)", body = ListPage<FieldView>),
        (status = 403, description = "Roles that read no accounts; `include_deleted` for other roles than admin"),
    ))]
#[tracing::instrument(skip_all)]
async fn list(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let query: ListQuery = parse_query(&raw)?;
    let page = PageRequest::<(i32, String)>::new(query.page_size, query.cursor.as_deref())?;
    let include_deleted = query.include_deleted.unwrap_or(false);
    let (rows, total) = service::list(state.pool(), &caller, include_deleted, page.window()).await?;
    let body = page.finish(
        rows,
        total,
        |f| (f.definition.position, f.definition.key.clone()),
        |f| Ok(FieldView::from(f)),
    )?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Define a custom field
#[utoipa::path(post, path = "/api/v1/fields", tag = "fields", operation_id = "create_field",
    request_body = CreateField,
    responses(
        (status = 201, description = "The definition", body = FieldView),
        (status = 403, description = "Admins only"),
        (status = 409, description = "`conflict`: the key exists (a deleted field's key stays reserved), or 200 fields are live already"),
        (status = 422, description = "`validation_failed`: a bad key, label, rule, flag or default (which must satisfy the rules), or a key or label an import already reads as a built-in column"),
    ))]
#[tracing::instrument(skip_all)]
async fn create(caller: Principal, state: AppState, body: CreateField) -> Result<Response> {
    let field = service::create(state.pool(), &caller, body).await?;
    Ok(api::json(StatusCode::CREATED, &FieldView::from(field)))
}

/// Read a custom field definition
#[utoipa::path(get, path = "/api/v1/fields/{key}", tag = "fields", operation_id = "get_field",
    params(("key" = String, Path, description = "The field's key"), OneFieldQuery),
    responses(
        (status = 200, description = "The definition (a deleted one only with `include_deleted=true`)", body = FieldView),
        (status = 403, description = "Roles that read no accounts; `include_deleted` for other roles than admin"),
        (status = 404, description = "No such field, or a deleted one not asked for"),
    ))]
#[tracing::instrument(skip_all, fields(key = %key))]
async fn get(key: String, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let query: OneFieldQuery = parse_query(&raw)?;
    let field = service::get(state.pool(), &caller, &key, query.include_deleted).await?;
    Ok(api::json(StatusCode::OK, &FieldView::from(field)))
}

/// Change a custom field definition
///
/// Changes the label, `required`, the default, the rules (replaced whole), the flags,
/// the position or the type. The key never changes. A new type converts the values
/// accounts hold in the same transaction (docs/features/custom-fields.md, "Changing a
/// field's type"), or is refused when any would not convert.
#[utoipa::path(patch, path = "/api/v1/fields/{key}", tag = "fields", operation_id = "update_field",
    params(("key" = String, Path, description = "The field's key")),
    request_body = PatchField,
    responses(
        (status = 200, description = "The definition", body = FieldView),
        (status = 403, description = "Admins only"),
        (status = 404, description = "No such field"),
        (status = 409, description = "`conflict`: the field is deleted, or the body changes its type and values accounts hold do not convert; then `unconvertible` counts them and `unconvertible_accounts` lists up to 20 as `{account_id, account_number, value, reason}`, and nothing changed"),
        (status = 422, description = "`validation_failed`: a bad label, rule, flag or default (a rule or flag the new type does not take, a kept default that does not convert)"),
    ))]
#[tracing::instrument(skip_all, fields(key = %key))]
async fn update(key: String, caller: Principal, state: AppState, body: PatchField) -> Result<Response> {
    let field = service::update(state.pool(), &caller, &key, body).await?;
    Ok(api::json(StatusCode::OK, &FieldView::from(field)))
}

/// Delete a custom field definition
///
/// A soft delete: the definition is kept with `deleted_at` set, its key stays reserved,
/// and the values accounts hold stay (untyped, as keys without a definition are).
#[utoipa::path(delete, path = "/api/v1/fields/{key}", tag = "fields", operation_id = "delete_field",
    params(("key" = String, Path, description = "The field's key")),
    responses(
        (status = 200, description = "The definition as deleted", body = FieldView),
        (status = 403, description = "Admins only"),
        (status = 404, description = "No such field"),
        (status = 409, description = "`conflict`: the field is deleted already"),
    ))]
#[tracing::instrument(skip_all, fields(key = %key))]
async fn delete(key: String, caller: Principal, state: AppState) -> Result<Response> {
    let field = service::delete(state.pool(), &caller, &key).await?;
    Ok(api::json(StatusCode::OK, &FieldView::from(field)))
}

/// Restore a deleted custom field definition
#[utoipa::path(post, path = "/api/v1/fields/{key}/restore", tag = "fields", operation_id = "restore_field",
    params(("key" = String, Path, description = "The field's key")),
    responses(
        (status = 200, description = "The definition, live again", body = FieldView),
        (status = 403, description = "Admins only"),
        (status = 404, description = "No such field"),
        (status = 409, description = "`conflict`: the field is not deleted, its label is taken by a live field, or 200 fields are live already"),
    ))]
#[tracing::instrument(skip_all, fields(key = %key))]
async fn restore(key: String, caller: Principal, state: AppState) -> Result<Response> {
    let field = service::restore(state.pool(), &caller, &key).await?;
    Ok(api::json(StatusCode::OK, &FieldView::from(field)))
}
