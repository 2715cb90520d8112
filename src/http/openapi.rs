//! The API description: OpenAPI 3.1 generated from the handlers' `#[utoipa::path]`
//! annotations and the types they answer, served at `/api/v1/openapi.json`, and the
//! Swagger UI (vendored in the binary: nothing is fetched) at `/docs`. Neither needs a
//! token: they describe the API and hold no data.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::Config;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::error::Error;
use crate::http::throttle;
use crate::http::{
    accounts, activities, attachments, audit_log, auth, calls, compliance, credentials, export, fields, headers, health, imports, jobs,
    kpis, messages, notifications, payments, plans, portfolios, queue, second_factor, system, timeline, users, webhooks, ws,
};

pub const SPEC_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Arrears",
        description = "Search-first collections API. Errors are RFC 9457 `application/problem+json` \
                       with a stable `code`; lists answer `{data, total, next_cursor, facets}`."
    ),
    paths(spec),
    // Named here because only the conventions (`Problem`) or a default type parameter
    // (`NoMore`) refer to them.
    components(schemas(crate::error::ProblemBody, crate::http::NoMore)),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// The description as served, built once: each resource's operations, declared beside
/// its handlers, with the conventions every operation shares.
pub fn document() -> &'static serde_json::Value {
    static DOCUMENT: LazyLock<serde_json::Value> = LazyLock::new(|| {
        let mut api = ApiDoc::openapi();
        for resource in [
            auth::Api::openapi(),
            second_factor::Api::openapi(),
            users::Api::openapi(),
            credentials::Api::openapi(),
            accounts::Api::openapi(),
            export::Api::openapi(),
            fields::Api::openapi(),
            payments::Api::openapi(),
            activities::Api::openapi(),
            timeline::Api::openapi(),
            audit_log::Api::openapi(),
            compliance::Api::openapi(),
            queue::Api::openapi(),
            plans::Api::openapi(),
            attachments::Api::openapi(),
            messages::Api::openapi(),
            calls::Api::openapi(),
            webhooks::Api::openapi(),
            portfolios::Api::openapi(),
            notifications::Api::openapi(),
            jobs::Api::openapi(),
            imports::Api::openapi(),
            kpis::Api::openapi(),
            system::Api::openapi(),
            ws::Api::openapi(),
            health::Api::openapi(),
        ] {
            api.merge(resource);
        }
        Conventions.modify(&mut api);
        serde_json::to_value(api).expect("the API description serializes")
    });
    &DOCUMENT
}

/// What the conventions of this API add to every operation, so that no annotation has
/// to repeat them: the bearer scheme, `/health` (readiness under its usual name), and
/// the problems an operation can answer by its kind (authenticated, with a body, with
/// query or path parameters, waiting for the index), each as problem+json.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        let paths = &mut openapi.paths.paths;
        if let Some(mut ready) = paths.get("/health/ready").cloned() {
            if let Some(get) = ready.get.as_mut() {
                get.operation_id = Some("health".to_owned());
            }
            paths.insert("/health".to_owned(), ready);
        }
        for (path, item) in paths.iter_mut() {
            let operations = [
                (Method::GET, &mut item.get),
                (Method::PUT, &mut item.put),
                (Method::POST, &mut item.post),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    add_problems(operation, throttle::class_of(&method, path).is_some());
                }
            }
        }
    }
}

fn add_problems(operation: &mut Operation, rate_limited: bool) {
    let parameters: Vec<(String, ParameterIn)> = operation
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some((p.name.clone(), p.parameter_in.clone())),
            RefOr::Ref(_) => None,
        })
        .collect();
    let has = |place: ParameterIn| parameters.iter().any(|(_, p)| *p == place);
    // An operation without its own security inherits the document's: the bearer token.
    let authenticated = operation.security.is_none();
    let has_json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|b| matches!(b, RefOr::T(body) if body.content.contains_key("application/json")));
    let mut common = Vec::new();
    if authenticated {
        common.extend([
            ("401", "`unauthorized` or `token_expired`: no valid access token"),
            (
                "403",
                "`second_factor_enrollment_required`: the caller's role requires a second factor they have not turned on",
            ),
        ]);
    }
    if has_json_body {
        common.extend([
            ("400", "`malformed_json`, or a bad parameter or header"),
            ("413", "`payload_too_large`"),
            ("415", "`unsupported_media_type`: the body is not `application/json`"),
            ("422", "`validation_failed`, naming each field in `errors`"),
        ]);
    } else if operation.request_body.is_some() {
        common.extend([
            ("400", "`invalid_parameter`: a bad parameter, header or form"),
            ("413", "`payload_too_large` or `inflated_too_large`"),
            ("415", "`unsupported_media_type` or `unsupported_file`"),
            (
                "422",
                "`validation_failed`, `corrupt_file`, `password_protected`, `too_many_rows` or `workbook_too_large`",
            ),
        ]);
    }
    if has(ParameterIn::Query) {
        common.push(("400", "`invalid_parameter`, naming each parameter in `errors`"));
    }
    if has(ParameterIn::Path) {
        common.push(("404", "`not_found`: no such resource (or not one the caller may see)"));
    }
    if parameters.iter().any(|(name, _)| name == "wait_for") {
        common.extend([
            ("422", "`validation_failed`: `wait_for` other than `indexed`"),
            ("504", "`index_timeout`: saved, but not searchable within the bound"),
        ]);
    }
    if rate_limited {
        common.push((
            "429",
            "`rate_limited`: over the client's or the user's budget; see `Retry-After` and `RateLimit-*`",
        ));
    }
    common.push(("500", "`internal`: logged with the request id the answer carries"));
    let responses = &mut operation.responses.responses;
    for (status, description) in common {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| ResponseBuilder::new().description(description).build().into());
    }
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response
            && status.parse::<u16>().is_ok_and(|code| code >= 400)
            && response.content.is_empty()
        {
            let problem = Content::new(Some(Ref::from_schema_name("Problem")));
            response.content.insert("application/problem+json".to_owned(), problem.into());
        }
    }
}

/// This API description
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "docs", operation_id = "openapi", security(()),
    responses((status = 200, description = "This description (OpenAPI 3.1)", content_type = "application/json", body = Object)))]
fn spec() -> Response {
    static BODY: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(document().to_string()));
    let mut response = Response::new(BODY.clone().into());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The Swagger UI's files, with its configuration pointing at the description.
fn swagger_ui(tail: &str) -> Response {
    static CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| Arc::new(Config::new([SPEC_PATH]).validator_url("none")));
    let file = match utoipa_swagger_ui::serve(tail, CONFIG.clone()) {
        Ok(Some(file)) => file,
        Ok(None) => return Error::not_found("file").into_response(),
        Err(err) => return Error::Internal(anyhow::anyhow!("swagger ui {tail}: {err}")).into_response(),
    };
    let mut response = Response::new(Bytes::from(file.bytes.into_owned()).into());
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&file.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if file.gzpipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(headers::DOCS_POLICY));
    response
}

pub fn routes() -> BoxedFilter<(Response,)> {
    let spec = warp::path!("api" / "v1" / "openapi.json").and(warp::get()).map(spec);
    // The page's files are relative to `/docs/`, so `/docs` itself moves there.
    let docs = warp::path("docs")
        .and(warp::get())
        .and(warp::path::full())
        .and(warp::path::tail())
        .map(|full: warp::path::FullPath, tail: warp::path::Tail| {
            if full.as_str() == "/docs" {
                let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
                response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/docs/"));
                return response;
            }
            swagger_ui(tail.as_str())
        });
    spec.or(docs).unify().boxed()
}
