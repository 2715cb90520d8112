//! One error type for the whole service and the one table of machine codes.
//! Every failure a client can see becomes RFC 9457 problem+json through [`Error::into_response`].

use std::time::Duration;

use serde::Serialize;
use warp::http::{HeaderValue, StatusCode, header};

use crate::domain::refusal::Denied;
pub use crate::domain::refusal::FieldError;
use crate::telemetry;

/// Stable machine codes. The table in [`Code::describe`] is the public contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    ValidationFailed,
    MalformedJson,
    InvalidParameter,
    UnsupportedMediaType,
    PayloadTooLarge,
    UnsupportedFile,
    PasswordProtected,
    CorruptFile,
    InflatedTooLarge,
    TooManyRows,
    WorkbookTooLarge,
    LengthRequired,
    RangeNotSatisfiable,
    NotFound,
    RouteNotFound,
    MethodNotAllowed,
    Unauthorized,
    TokenExpired,
    InvalidCredentials,
    RefreshTokenInvalid,
    RefreshTokenReused,
    SecondFactorRequired,
    SecondFactorInvalid,
    SecondFactorEnrollmentRequired,
    RateLimited,
    Forbidden,
    FieldForbidden,
    RegistrationDisabled,
    DuplicateAccountNumber,
    EmailTaken,
    CurrencyMismatch,
    Overpayment,
    IdempotencyKeyReused,
    InvalidTransition,
    PromiseAlreadyOpen,
    ContactBlocked,
    NotDisputed,
    PlanAlreadyActive,
    DuplicateDocument,
    NoRecipient,
    WhatsappWindowClosed,
    NoAgentPhone,
    CallNotPlaced,
    Conflict,
    PreconditionFailed,
    PreconditionRequired,
    ServiceUnavailable,
    UpgradeRequired,
    IndexTimeout,
    Internal,
}

impl Code {
    /// `(code, HTTP status, title)`.
    pub fn describe(self) -> (&'static str, StatusCode, &'static str) {
        use Code::*;
        match self {
            ValidationFailed => ("validation_failed", StatusCode::UNPROCESSABLE_ENTITY, "Validation failed"),
            MalformedJson => ("malformed_json", StatusCode::BAD_REQUEST, "Malformed JSON body"),
            InvalidParameter => ("invalid_parameter", StatusCode::BAD_REQUEST, "Invalid query parameter"),
            UnsupportedMediaType => (
                "unsupported_media_type",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
            ),
            PayloadTooLarge => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"),
            UnsupportedFile => ("unsupported_file", StatusCode::UNSUPPORTED_MEDIA_TYPE, "Not a spreadsheet"),
            PasswordProtected => (
                "password_protected",
                StatusCode::UNPROCESSABLE_ENTITY,
                "Spreadsheet is password-protected",
            ),
            CorruptFile => ("corrupt_file", StatusCode::UNPROCESSABLE_ENTITY, "Spreadsheet cannot be read"),
            InflatedTooLarge => (
                "inflated_too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                "Spreadsheet decompresses too large",
            ),
            TooManyRows => ("too_many_rows", StatusCode::UNPROCESSABLE_ENTITY, "Too many rows"),
            WorkbookTooLarge => ("workbook_too_large", StatusCode::UNPROCESSABLE_ENTITY, "Workbook too large to read"),
            LengthRequired => ("length_required", StatusCode::LENGTH_REQUIRED, "Content-Length required"),
            RangeNotSatisfiable => ("range_not_satisfiable", StatusCode::RANGE_NOT_SATISFIABLE, "Range not satisfiable"),
            NotFound => ("not_found", StatusCode::NOT_FOUND, "Resource not found"),
            RouteNotFound => ("route_not_found", StatusCode::NOT_FOUND, "No such route"),
            MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
            Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED, "Authentication required"),
            TokenExpired => ("token_expired", StatusCode::UNAUTHORIZED, "Access token expired"),
            InvalidCredentials => ("invalid_credentials", StatusCode::UNAUTHORIZED, "Invalid email or password"),
            RefreshTokenInvalid => ("refresh_token_invalid", StatusCode::UNAUTHORIZED, "Refresh token invalid"),
            RefreshTokenReused => ("refresh_token_reused", StatusCode::UNAUTHORIZED, "Refresh token reused"),
            SecondFactorRequired => ("second_factor_required", StatusCode::UNAUTHORIZED, "Second factor required"),
            SecondFactorInvalid => (
                "second_factor_invalid",
                StatusCode::UNAUTHORIZED,
                "Second factor code wrong or used",
            ),
            SecondFactorEnrollmentRequired => (
                "second_factor_enrollment_required",
                StatusCode::FORBIDDEN,
                "Second factor enrolment required",
            ),
            RateLimited => ("rate_limited", StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
            Forbidden => ("forbidden", StatusCode::FORBIDDEN, "Forbidden"),
            FieldForbidden => ("field_forbidden", StatusCode::FORBIDDEN, "Field not writable by your role"),
            RegistrationDisabled => ("registration_disabled", StatusCode::FORBIDDEN, "Registration is disabled"),
            DuplicateAccountNumber => ("duplicate_account_number", StatusCode::CONFLICT, "Account number already exists"),
            EmailTaken => ("email_taken", StatusCode::CONFLICT, "Email already registered"),
            CurrencyMismatch => (
                "currency_mismatch",
                StatusCode::UNPROCESSABLE_ENTITY,
                "Currency does not match the account",
            ),
            Overpayment => ("overpayment", StatusCode::UNPROCESSABLE_ENTITY, "Payment exceeds the balance"),
            IdempotencyKeyReused => (
                "idempotency_key_reused",
                StatusCode::UNPROCESSABLE_ENTITY,
                "Idempotency key reused with another request",
            ),
            InvalidTransition => ("invalid_transition", StatusCode::CONFLICT, "Status change not allowed"),
            PromiseAlreadyOpen => ("promise_already_open", StatusCode::CONFLICT, "A promise to pay is already open"),
            ContactBlocked => ("contact_blocked", StatusCode::CONFLICT, "Contact not allowed now"),
            NotDisputed => ("not_disputed", StatusCode::CONFLICT, "The account is not disputed"),
            PlanAlreadyActive => ("plan_already_active", StatusCode::CONFLICT, "A payment plan is already active"),
            DuplicateDocument => (
                "duplicate_document",
                StatusCode::CONFLICT,
                "The account already holds this document",
            ),
            NoRecipient => ("no_recipient", StatusCode::CONFLICT, "The account has no address for this channel"),
            WhatsappWindowClosed => (
                "whatsapp_window_closed",
                StatusCode::CONFLICT,
                "Outside WhatsApp's 24-hour window only an approved template goes",
            ),
            NoAgentPhone => ("no_agent_phone", StatusCode::CONFLICT, "No phone of yours to ring"),
            CallNotPlaced => (
                "call_not_placed",
                StatusCode::BAD_GATEWAY,
                "The telephony provider did not place the call",
            ),
            Conflict => ("conflict", StatusCode::CONFLICT, "Conflict"),
            PreconditionFailed => ("precondition_failed", StatusCode::PRECONDITION_FAILED, "Precondition failed"),
            PreconditionRequired => ("precondition_required", StatusCode::PRECONDITION_REQUIRED, "Precondition required"),
            ServiceUnavailable => ("service_unavailable", StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
            UpgradeRequired => ("upgrade_required", StatusCode::UPGRADE_REQUIRED, "WebSocket upgrade required"),
            IndexTimeout => ("index_timeout", StatusCode::GATEWAY_TIMEOUT, "Not indexed in time"),
            Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
        }
    }
}

/// A failure the client is told about in detail.
#[derive(Clone, Debug)]
pub struct Problem {
    pub code: Code,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<Duration>,
    /// Extension members (RFC 9457 section 3.2), e.g. the allowed transitions.
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// What lies behind the problem for an operator (a dependency's own words), never
    /// sent to the client: logs and readiness show it.
    pub cause: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {}", .0.code.describe().0, .0.detail)]
    Problem(Problem),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self::with_fields(code, detail, Vec::new())
    }

    /// A problem that names the fields (or parameters) it is about.
    pub fn with_fields(code: Code, detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        Error::Problem(Problem {
            code,
            detail: detail.into(),
            errors,
            retry_after: None,
            extensions: serde_json::Map::new(),
            cause: None,
        })
    }

    /// Records what lies behind the problem for an operator ([`Problem::cause`]).
    pub fn with_cause(self, cause: impl Into<String>) -> Self {
        match self {
            Error::Problem(p) => Error::Problem(Problem {
                cause: Some(cause.into()),
                ..p
            }),
            other => other,
        }
    }

    /// The error as an operator reads it: a problem's detail with its cause, when it has
    /// one (the client is told only the detail).
    pub fn for_operators(&self) -> String {
        match self {
            Error::Problem(Problem { cause: Some(cause), .. }) => format!("{self} ({cause})"),
            other => other.to_string(),
        }
    }

    /// Adds an extension member to a problem.
    pub fn with_extension(self, name: &str, value: serde_json::Value) -> Self {
        match self {
            Error::Problem(mut p) => {
                p.extensions.insert(name.to_owned(), value);
                Error::Problem(p)
            }
            other => other,
        }
    }

    /// Field errors under the generic detail: "field: message", or "N fields are invalid"
    /// (the console says these by its inputs' labels instead: `showProblem` in dom.js).
    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self::with_fields(Code::ValidationFailed, generic_detail(&errors), errors)
    }

    /// The same problem about a part of a larger body: each field named `part.field`, in
    /// the generic detail too.
    pub fn within(self, part: &str) -> Self {
        match self {
            Error::Problem(mut p) => {
                let generic = p.detail == generic_detail(&p.errors);
                for error in &mut p.errors {
                    error.field = format!("{part}.{}", error.field);
                }
                if generic {
                    p.detail = generic_detail(&p.errors);
                }
                Error::Problem(p)
            }
            other => other,
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn with_retry_after(self, after: Duration) -> Self {
        match self {
            Error::Problem(p) => Error::Problem(Problem {
                retry_after: Some(after),
                ..p
            }),
            other => other,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(Code::NotFound, format!("{what} not found"))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, detail)
    }

    /// An extension member of a problem.
    pub fn extension(&self, name: &str) -> Option<&serde_json::Value> {
        match self {
            Error::Problem(p) => p.extensions.get(name),
            Error::Internal(_) => None,
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Error::Problem(p) => p.code,
            Error::Internal(_) => Code::Internal,
        }
    }

    /// Builds the problem+json response. Internal errors are logged here with the
    /// request id and never shown to the client.
    pub fn into_response(self) -> warp::reply::Response {
        let request_id = telemetry::current_request_id();
        let problem = match self {
            Error::Problem(p) => p,
            Error::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), request_id = %request_id, "internal error");
                Problem {
                    code: Code::Internal,
                    detail: format!("an internal error occurred; quote request id {request_id} when reporting it"),
                    errors: Vec::new(),
                    retry_after: None,
                    extensions: serde_json::Map::new(),
                    cause: None,
                }
            }
        };
        problem_response(&problem, &request_id)
    }
}

/// The detail of field errors said no better: "field: message", or "N fields are invalid".
fn generic_detail(errors: &[FieldError]) -> String {
    match errors {
        [one] => format!("{}: {}", one.field, one.message),
        many => format!("{} fields are invalid", many.len()),
    }
}

/// An RFC 9457 problem, as every failure is answered (`application/problem+json`).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemBody<'a> {
    /// `urn:arrears:problem:` and the code.
    #[serde(rename = "type")]
    #[schema(example = "urn:arrears:problem:validation_failed")]
    kind: String,
    title: &'static str,
    /// The HTTP status, repeated.
    status: u16,
    detail: &'a str,
    /// The stable machine code (docs/api.md, "Errors").
    #[schema(example = "validation_failed")]
    code: &'static str,
    /// Also in the `x-request-id` header; quote it when reporting a 500.
    request_id: &'a str,
    /// The fields or parameters refused, each with why.
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    /// Extension members, such as `allowed` (the transitions a status allows) or
    /// `limit_bytes`.
    #[serde(flatten)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

fn problem_response(problem: &Problem, request_id: &str) -> warp::reply::Response {
    let (code, status, title) = problem.code.describe();
    let body = ProblemBody {
        kind: format!("urn:arrears:problem:{code}"),
        title,
        status: status.as_u16(),
        detail: &problem.detail,
        code,
        request_id,
        errors: &problem.errors,
        extensions: &problem.extensions,
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = warp::reply::Response::new(json.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    if let Some(after) = problem.retry_after {
        let secs = after.as_secs().max(1);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            match db.constraint() {
                Some("accounts_account_number_key") => {
                    return Error::new(Code::DuplicateAccountNumber, "an account with this account number already exists");
                }
                Some("users_email_key") => {
                    return Error::new(Code::EmailTaken, "a user with this email already exists");
                }
                Some("accounts_currency_fixed_by_payments") => {
                    return Error::new(
                        Code::Conflict,
                        "the account has payments in its currency; its currency cannot change",
                    );
                }
                Some("accounts_currency_fixed_by_open_promises") => {
                    return Error::new(
                        Code::Conflict,
                        "the account has an open promise to pay or an active payment plan in its currency; \
                         its currency cannot change until they are resolved or cancelled",
                    );
                }
                Some("promises_one_open_key") => {
                    return Error::new(Code::PromiseAlreadyOpen, "this account already has an open promise to pay");
                }
                Some("account_documents_live_content") => {
                    return Error::new(
                        Code::DuplicateDocument,
                        "this account already holds a document with the same content",
                    );
                }
                Some("plans_one_active_key") => {
                    return Error::new(Code::PlanAlreadyActive, "this account already has an active payment plan");
                }
                _ => {}
            }
        }
        Error::Internal(anyhow::Error::new(err))
    }
}

impl From<Denied> for Error {
    fn from(denied: Denied) -> Self {
        Error::forbidden(denied.0)
    }
}

impl From<Error> for warp::reply::Response {
    fn from(err: Error) -> Self {
        err.into_response()
    }
}
