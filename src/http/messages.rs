//! Messages to debtors over HTTP: sending one (202: the guard allowed it and it is
//! queued for the sender), previewing it, reading an account's messages, and the
//! templates. Reads come from SQL.

use serde::Deserialize;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::message::{ChangeTemplate, ComposeMessage, CreateTemplate, MessageChannel};
use crate::domain::principal::Principal;
use crate::error::Result;
use crate::http::filters::{json_body, principal, with_state};
use crate::http::idempotent::{accepted, replay};
use crate::http::paging::{PageQuery, PageRequest};
use crate::http::query::{parse_query, raw_query};
use crate::http::{self as api, ListPage, respond};
use crate::service::messages::{self as service, MessageView, Rendered, Sent, TemplateView};
use crate::state::AppState;

/// `GET /message-templates` parameters.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TemplateQuery {
    /// Only this channel's templates.
    channel: Option<MessageChannel>,
    #[param(minimum = 1, maximum = 200, default = 25)]
    page_size: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limit = state.settings().max_json_body_bytes;
    let caller = principal(state.clone()).and(with_state(state));
    let send = warp::path!("accounts" / Uuid / "messages")
        .and(warp::post())
        .and(caller.clone())
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(json_body::<ComposeMessage>(limit))
        .then(send);
    let preview = warp::path!("accounts" / Uuid / "messages" / "preview")
        .and(warp::post())
        .and(caller.clone())
        .and(json_body::<ComposeMessage>(limit))
        .then(preview);
    let for_account = warp::path!("accounts" / Uuid / "messages")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(for_account);
    let get = warp::path!("messages" / Uuid).and(warp::get()).and(caller.clone()).then(get);
    let templates = warp::path!("message-templates")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(templates);
    let create_template = warp::path!("message-templates")
        .and(warp::post())
        .and(caller.clone())
        .and(json_body::<CreateTemplate>(limit))
        .then(create_template);
    let template = warp::path!("message-templates" / Uuid)
        .and(warp::get())
        .and(caller.clone())
        .then(template);
    let change_template = warp::path!("message-templates" / Uuid)
        .and(warp::patch())
        .and(caller.clone())
        .and(json_body::<ChangeTemplate>(limit))
        .then(change_template);
    let delete_template = warp::path!("message-templates" / Uuid)
        .and(warp::delete())
        .and(caller)
        .then(delete_template);
    send.or(preview)
        .unify()
        .or(for_account)
        .unify()
        .or(get)
        .unify()
        .or(templates)
        .unify()
        .or(create_template)
        .unify()
        .or(template)
        .unify()
        .or(change_template)
        .unify()
        .or(delete_template)
        .unify()
        .map(respond)
        .boxed()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    send,
    preview,
    for_account,
    get,
    templates,
    create_template,
    template,
    change_template,
    delete_template
))]
pub struct Api;

/// Send a message to the debtor
#[utoipa::path(post, path = "/api/v1/accounts/{id}/messages", tag = "messages", operation_id = "send_message",
    params(("id" = Uuid, Path, description = "The account whose debtor is messaged"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; a retry with the same key answers the first result and sends nothing again")),
    request_body = ComposeMessage,
    responses(
        (status = 202, description = "The guard allowed it: logged as an outbound contact and queued for the sender, with Location; `idempotency-replayed: true` on a replay. The sender asks the guard again before every try: a try outside the debtor's contact hours waits for them (`next_attempt_at`), and one the guard now refuses for good (or whose account was deleted) is `blocked`, with `blocked_rule`", body = MessageView),
        (status = 403, description = "The role may not work this account"),
        (status = 409, description = "`contact_blocked` (the guard's `rule`, `channel` and `next_allowed_at`; nothing is kept) or `no_recipient` (the account has no phone number or email address for the channel)"),
        (status = 422, description = "`validation_failed` (a placeholder the account cannot fill, a body too long for the channel, a template of another channel) or `idempotency_key_reused`"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn send(account_id: Uuid, caller: Principal, state: AppState, key: Option<String>, body: ComposeMessage) -> Result<Response> {
    let now = state.clock().now();
    match service::send(state.pool(), &caller, account_id, key.as_deref(), body, &state.outbox(), now).await? {
        Sent::Replayed(first) => Ok(replay(first)),
        Sent::Fresh(view) => Ok(accepted(view.as_ref(), &format!("/api/v1/messages/{}", view.id))),
    }
}

/// Preview a message
#[utoipa::path(post, path = "/api/v1/accounts/{id}/messages/preview", tag = "messages", operation_id = "preview_message",
    params(("id" = Uuid, Path, description = "The account whose debtor would be messaged")),
    request_body = ComposeMessage,
    responses(
        (status = 200, description = "The message as it would be sent now: recipient, subject and text, placeholders filled; nothing is sent or kept", body = Rendered),
        (status = 403, description = "The role may not work this account"),
        (status = 409, description = "`no_recipient`"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn preview(account_id: Uuid, caller: Principal, state: AppState, body: ComposeMessage) -> Result<Response> {
    let rendered = service::preview(state.pool(), &caller, account_id, &body, &state.outbox()).await?;
    Ok(api::json(StatusCode::OK, &rendered))
}

/// List an account's messages
#[utoipa::path(get, path = "/api/v1/accounts/{id}/messages", tag = "messages", operation_id = "list_account_messages",
    params(("id" = Uuid, Path, description = "The account's id"), PageQuery),
    responses(
        (status = 200, description = "The account's messages, newest first, each with how its sending stands", body = ListPage<MessageView>),
        (status = 403, description = "The role may not read this account in full (an agent: not assigned to them)"),
    ))]
#[tracing::instrument(skip_all, fields(account_id = %account_id))]
async fn for_account(account_id: Uuid, caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw)?;
    let (rows, total) = service::for_account(state.pool(), &caller, account_id, page.window()).await?;
    let body = page.finish(rows, total, |r| (r.created_at, r.id), |r| Ok(MessageView::from(r)))?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Get a message
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages", operation_id = "get_message",
    params(("id" = Uuid, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The message and how its sending stands: `queued`, `sent`, `failed` (the provider refused it, or every try failed) or `blocked` (the guard, asked again at a try, refused it, or its account was deleted: `blocked_rule`, `blocked_at`, and `error` saying why)", body = MessageView),
        (status = 403, description = "The role may not read its account in full"),
    ))]
#[tracing::instrument(skip_all, fields(message_id = %id))]
async fn get(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let row = service::get(state.pool(), &caller, id).await?;
    Ok(api::json(StatusCode::OK, &MessageView::from(row)))
}

/// List message templates
#[utoipa::path(get, path = "/api/v1/message-templates", tag = "messages", operation_id = "list_message_templates",
    params(TemplateQuery),
    responses(
        (status = 200, description = "The live templates, newest first", body = ListPage<TemplateView>),
        (status = 403, description = "Viewers do not send messages"),
    ))]
#[tracing::instrument(skip_all)]
async fn templates(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let query: TemplateQuery = parse_query(&raw)?;
    let page = PageRequest::new(query.page_size, query.cursor.as_deref())?;
    let (rows, total) = service::templates(state.pool(), &caller, query.channel, page.window()).await?;
    let body = page.finish(rows, total, |t| (t.created_at, t.id), |t| Ok(TemplateView::from(t)))?;
    Ok(api::json(StatusCode::OK, &body))
}

/// Create a message template
#[utoipa::path(post, path = "/api/v1/message-templates", tag = "messages", operation_id = "create_message_template",
    request_body = CreateTemplate,
    responses(
        (status = 201, description = "The template", body = TemplateView),
        (status = 403, description = "Only managers and admins manage templates"),
        (status = 409, description = "`conflict`: a live template has this name"),
        (status = 422, description = "`validation_failed`: an unknown placeholder, a subject on a text message or none on an email, a body too long"),
    ))]
#[tracing::instrument(skip_all)]
async fn create_template(caller: Principal, state: AppState, body: CreateTemplate) -> Result<Response> {
    let row = service::create_template(state.pool(), &caller, body).await?;
    Ok(api::json(StatusCode::CREATED, &TemplateView::from(row)))
}

/// Get a message template
#[utoipa::path(get, path = "/api/v1/message-templates/{id}", tag = "messages", operation_id = "get_message_template",
    params(("id" = Uuid, Path, description = "The template's id")),
    responses(
        (status = 200, description = "The live template", body = TemplateView),
        (status = 403, description = "Viewers do not send messages"),
    ))]
#[tracing::instrument(skip_all, fields(template_id = %id))]
async fn template(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let row = service::template(state.pool(), &caller, id).await?;
    Ok(api::json(StatusCode::OK, &TemplateView::from(row)))
}

/// Change a message template
#[utoipa::path(patch, path = "/api/v1/message-templates/{id}", tag = "messages", operation_id = "change_message_template",
    params(("id" = Uuid, Path, description = "The template's id")),
    request_body = ChangeTemplate,
    responses(
        (status = 200, description = "The template as changed (its channel stays); messages already sent keep their text", body = TemplateView),
        (status = 403, description = "Only managers and admins manage templates"),
        (status = 409, description = "`conflict`: a live template has this name"),
        (status = 422, description = "`validation_failed`"),
    ))]
#[tracing::instrument(skip_all, fields(template_id = %id))]
async fn change_template(id: Uuid, caller: Principal, state: AppState, body: ChangeTemplate) -> Result<Response> {
    let row = service::change_template(state.pool(), &caller, id, body).await?;
    Ok(api::json(StatusCode::OK, &TemplateView::from(row)))
}

/// Delete a message template
#[utoipa::path(delete, path = "/api/v1/message-templates/{id}", tag = "messages", operation_id = "delete_message_template",
    params(("id" = Uuid, Path, description = "The template's id")),
    responses(
        (status = 200, description = "The template, marked deleted: no new message uses it", body = TemplateView),
        (status = 403, description = "Only managers and admins manage templates"),
    ))]
#[tracing::instrument(skip_all, fields(template_id = %id))]
async fn delete_template(id: Uuid, caller: Principal, state: AppState) -> Result<Response> {
    let row = service::delete_template(state.pool(), &caller, id).await?;
    Ok(api::json(StatusCode::OK, &TemplateView::from(row)))
}
