//! `GET /api/v1/accounts/export` and `GET /api/v1/payments/export`: the list filters,
//! resolved through the index (the same filters as the lists), streamed as the file
//! `service::exports` writes.

use chrono::Utc;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::error::{Code, Error, FieldError, Result};
use crate::http::filters::{principal, with_state};
use crate::http::query::raw_query;
use crate::http::respond;
use crate::http::{FileBytes, attachment};
use crate::lists::accounts::AccountListParams;
use crate::lists::payments::PaymentListParams;
use crate::service::exports::{self, Format, Selection};
use crate::state::AppState;

fn stream(state: &AppState, selection: Selection, format: Format, name: &str) -> Response {
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Xlsx => ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    };
    let rx = exports::produce(state.pool().clone(), selection.source, selection.ids, format);
    attachment(rx, content_type, name, extension)
}

/// `format=`, read by [`split_format`], for the API description.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormatParam {
    /// The file's format; csv when absent.
    #[param(inline)]
    pub format: Option<Format>,
}

/// Splits `format=` off the list parameters.
fn split_format(raw: &str) -> Result<(Format, String)> {
    let mut format = Format::Csv;
    let mut rest = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        if key == "format" {
            format = match value.as_ref() {
                "csv" => Format::Csv,
                "xlsx" => Format::Xlsx,
                other => {
                    return Err(Error::with_fields(
                        Code::InvalidParameter,
                        format!("format `{other}` is not supported; use csv or xlsx"),
                        vec![FieldError::new("format", "csv or xlsx")],
                    ));
                }
            };
        } else {
            rest.append_pair(&key, &value);
        }
    }
    Ok((format, rest.finish()))
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let caller = principal(state.clone()).and(with_state(state));
    warp::path!("accounts" / "export")
        .and(warp::get())
        .and(caller.clone())
        .and(raw_query())
        .then(export_accounts)
        .or(warp::path!("payments" / "export")
            .and(warp::get())
            .and(caller)
            .and(raw_query())
            .then(export_payments))
        .unify()
        .map(respond)
        .boxed()
}

/// The operations this module serves, for the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(export_accounts, export_payments))]
pub struct Api;

/// Export accounts as CSV or XLSX
#[utoipa::path(get, path = "/api/v1/accounts/export", tag = "accounts", operation_id = "export_accounts",
    params(FormatParam, AccountListParams),
    responses(
        (status = 200, description = "The accounts the filters match, streamed as a file (attachment)",
            content((FileBytes = "text/csv"), (FileBytes = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 403, description = "The role may not read accounts"),
        (status = 422, description = "`validation_failed`: more rows than the format allows"),
        (status = 503, description = "`service_unavailable`: the search index did not answer in full"),
    ))]
#[tracing::instrument(skip_all)]
async fn export_accounts(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let (format, rest) = split_format(&raw)?;
    let today = Utc::now().date_naive();
    let selection = exports::select_accounts(state.pool(), state.search().as_ref(), &caller, &rest, format, today).await?;
    tracing::info!(rows = selection.ids.len(), ?format, "account export started");
    Ok(stream(&state, selection, format, "accounts"))
}

/// Export payments as CSV or XLSX
#[utoipa::path(get, path = "/api/v1/payments/export", tag = "payments", operation_id = "export_payments",
    params(FormatParam, PaymentListParams),
    responses(
        (status = 200, description = "The payments the filters match, streamed as a file (attachment)",
            content((FileBytes = "text/csv"), (FileBytes = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 403, description = "The role may not read accounts"),
        (status = 422, description = "`validation_failed`: more rows than the format allows"),
        (status = 503, description = "`service_unavailable`: the search index did not answer in full"),
    ))]
#[tracing::instrument(skip_all)]
async fn export_payments(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let (format, rest) = split_format(&raw)?;
    let selection = exports::select_payments(state.pool(), state.search().as_ref(), &caller, &rest, format).await?;
    tracing::info!(rows = selection.ids.len(), ?format, "payment export started");
    Ok(stream(&state, selection, format, "payments"))
}
