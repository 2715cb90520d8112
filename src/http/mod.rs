//! HTTP API: one module per resource, each a boxed route group; `recover` maps the rest.

pub mod account_view;
pub mod accounts;
pub mod activities;
pub mod attachments;
pub mod audit_log;
pub mod auth;
pub mod calls;
pub mod compliance;
pub mod compress;
pub mod console;
pub mod credentials;
pub mod export;
pub mod fields;
pub mod filters;
pub mod headers;
pub mod health;
pub mod idempotent;
pub mod imports;
pub mod indexed;
pub mod jobs;
pub mod kpis;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod multipart;
pub mod notifications;
pub mod openapi;
pub mod paging;
pub mod payments;
pub mod plans;
pub mod portfolios;
pub mod query;
pub mod queue;
pub mod ranges;
pub mod recover;
pub mod second_factor;
pub mod server;
pub mod system;
pub mod throttle;
pub mod timeline;
pub mod users;
pub mod webhooks;
pub mod ws;

use serde::Serialize;
use utoipa::openapi::schema::{KnownFormat, Object, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::error::Result;
use crate::lists::accounts::FacetValueView;
use crate::state::AppState;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    // Each module's routes are tried in turn, each step boxed: a chain of `or`s nested
    // twenty deep made a release build overflow the trait solver's recursion limit
    // (`Unpin` of the nested futures, which only the optimiser's inlining asks for).
    let modules = [
        auth::routes(state.clone()),
        second_factor::routes(state.clone()),
        users::routes(state.clone()),
        credentials::routes(state.clone()),
        accounts::routes(state.clone()),
        fields::routes(state.clone()),
        payments::routes(state.clone()),
        activities::routes(state.clone()),
        timeline::routes(state.clone()),
        audit_log::routes(state.clone()),
        compliance::routes(state.clone()),
        queue::routes(state.clone()),
        plans::routes(state.clone()),
        attachments::routes(state.clone()),
        messages::routes(state.clone()),
        calls::routes(state.clone()),
        webhooks::routes(state.clone()),
        portfolios::routes(state.clone()),
        notifications::routes(state.clone()),
        jobs::routes(state.clone()),
        imports::routes(state.clone()),
        export::routes(state.clone()),
        kpis::routes(state.clone()),
        system::routes(state.clone()),
    ];
    let modules = modules
        .into_iter()
        .reduce(|tried, next| tried.or(next).unify().boxed())
        .expect("the API has routes");
    let api = warp::path("api").and(warp::path("v1")).and(modules).boxed();
    let routed = health::routes(state.clone())
        .or(ws::routes())
        .unify()
        .or(openapi::routes())
        .unify()
        .or(console::routes())
        .unify()
        .or(api)
        .unify();
    let handled = query::nul_free().and(routed).recover(recover::recover).unify().boxed();
    let origins = &state.settings().cors_origins;
    if origins.is_empty() {
        return handled;
    }
    let cors = warp::cors()
        .allow_origins(origins.iter().map(String::as_str))
        .allow_methods(["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"])
        .allow_headers(["authorization", "content-type", "if-match", "idempotency-key", "x-request-id"])
        .expose_headers([
            "etag",
            "x-request-id",
            "x-client-request-id",
            "retry-after",
            "location",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "ratelimit-policy",
        ])
        .max_age(600);
    handled
        .with(cors)
        .map(Reply::into_response)
        .recover(recover::recover)
        .unify()
        .boxed()
}

/// Turns a handler result into a response; errors become problem+json.
pub fn respond(result: Result<Response>) -> Response {
    result.unwrap_or_else(|err| err.into_response())
}

/// A file's body: chunks produced by a task, handed to the response as they come.
struct Chunks(tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>);

impl futures_util::Stream for Chunks {
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// A file streamed from `chunks` as an attachment named `name-<time>.extension`.
pub fn attachment(
    chunks: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    content_type: &'static str,
    name: &str,
    extension: &str,
) -> Response {
    let mut response = warp::reply::stream(Chunks(chunks)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}-{stamp}.{extension}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// Whether a secret someone sent is the one expected: compared as SHA-256 digests, so
/// the time taken says nothing about the secret.
pub fn same_secret(sent: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(sent.as_bytes()) == Sha256::digest(expected.as_bytes())
}

pub fn with_etag(mut response: Response, version: i64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `{data, total, next_cursor, facets}`, the shape of every list, serialized straight
/// from the views; `more` adds a list's own fields (the notifications' `unread_count`).
#[derive(Serialize, ToSchema)]
pub struct ListPage<T, M = NoMore> {
    pub data: Vec<T>,
    pub total: u64,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// For each facet asked for, its values with their counts (and sums per currency for amounts).
    #[schema(value_type = HashMap<String, Vec<FacetValueView>>)]
    pub facets: serde_json::Map<String, serde_json::Value>,
    #[serde(flatten)]
    pub more: M,
}

/// What most lists add to a page: nothing (a braced struct, so that its schema is an
/// object the page's schema can be combined with).
#[derive(Serialize, ToSchema)]
pub struct NoMore {}

/// What a list that stops counting adds to a page (the audit log, and the searches
/// unless `exact_total` is asked): whether `total` is a lower bound.
#[derive(Serialize, ToSchema)]
pub struct Counted {
    /// True when more than `total` match (counting stopped at 10,000).
    pub total_is_lower_bound: bool,
}

/// A file's bytes, as OpenAPI 3.1 describes binary content.
pub struct FileBytes;

impl PartialSchema for FileBytes {
    fn schema() -> RefOr<Schema> {
        Object::builder()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for FileBytes {}
