//! What providers report back, over HTTP: Twilio's status callbacks and incoming
//! messages (`POST /webhooks/twilio`, signed with `X-Twilio-Signature`), Meta's
//! WhatsApp webhooks (`POST /webhooks/meta`, signed with `X-Hub-Signature-256`, and the
//! `GET` that subscribes them), none with a bearer token; and the messages from numbers
//! no account has, for managers. Each is closed unless the operator configures it.

use bytes::Bytes;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{StatusCode, header};
use warp::reply::Response;

use crate::domain::principal::Principal;
use crate::error::{Code, Error, Result};
use crate::http::filters::{principal, with_state};
use crate::http::paging::{PageQuery, PageRequest};
use crate::http::{self as api, ListPage, respond};
use crate::messaging::{meta, twilio};
use crate::service::calls::{self, DialEnd};
use crate::service::webhooks::{self as service, InboundView};
use crate::state::AppState;
use crate::telephony::twilio::read_voice;
use crate::telephony::twiml::hang_up;
use crate::telephony::voice_url;

/// The largest Twilio webhook body read; Twilio's are a few KiB.
const MAX_BODY: u64 = 64 * 1024;
/// The largest Meta webhook body read; Meta batches reports into one request.
const MAX_META_BODY: u64 = 1024 * 1024;

/// An empty TwiML answer: taken, and nothing to reply to the debtor.
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let report = warp::path!("webhooks" / "twilio")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>("x-twilio-signature"))
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .then(twilio_report);
    let voice = warp::path!("webhooks" / "twilio" / "voice")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>("x-twilio-signature"))
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .then(voice_incoming);
    let voice_step = warp::path!("webhooks" / "twilio" / "voice" / String)
        .and(warp::post())
        .and(crate::http::query::raw_query())
        .and(with_state(state.clone()))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>("x-twilio-signature"))
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .then(voice_step);
    let meta = warp::path!("webhooks" / "meta")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>("x-hub-signature-256"))
        .and(warp::body::content_length_limit(MAX_META_BODY))
        .and(warp::body::bytes())
        .then(meta_report);
    let subscribe = warp::path!("webhooks" / "meta")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(crate::http::query::raw_query())
        .then(meta_subscribe);
    let unmatched = warp::path!("inbound-messages" / "unmatched")
        .and(warp::get())
        .and(principal(state.clone()))
        .and(with_state(state))
        .and(crate::http::query::raw_query())
        .then(unmatched);
    report
        .or(voice)
        .unify()
        .or(voice_step)
        .unify()
        .or(meta)
        .unify()
        .or(subscribe)
        .unify()
        .or(unmatched)
        .unify()
        .map(respond)
        .boxed()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(twilio_report, voice_incoming, voice_step, meta_report, meta_subscribe, unmatched))]
pub struct Api;

/// Twilio's form parameters (those read; Twilio sends more), for the API description.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "PascalCase")]
pub struct TwilioForm {
    /// This service's Twilio account.
    pub account_sid: String,
    /// The message the report is about, or the incoming message's id.
    pub message_sid: String,
    /// A status callback's status (`sent`, `delivered`, `undelivered`, `failed`, `read`, ...).
    pub message_status: Option<String>,
    /// `received` on an incoming message.
    pub sms_status: Option<String>,
    /// Why a message was not delivered.
    pub error_code: Option<String>,
    /// The sender of an incoming message: `+<number>` or `whatsapp:+<number>`.
    pub from: Option<String>,
    /// What an incoming message says.
    pub body: Option<String>,
}

/// Take a Twilio webhook
#[utoipa::path(post, path = "/api/v1/webhooks/twilio", tag = "messages", operation_id = "twilio_webhook", security(()),
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the request: base64 HMAC-SHA1, keyed by the auth token, of TWILIO_WEBHOOK_URL (an explicit port included) followed by each parameter's name and value, names sorted")),
    request_body(content = TwilioForm, content_type = "application/x-www-form-urlencoded",
        description = "A status callback (MessageStatus) or an incoming message (SmsStatus `received`, From, Body), as Twilio sends them"),
    responses(
        (status = 200, description = "Taken: a delivery report moved its message forward, or an incoming message landed on the accounts with the sender's number (an opt-out word set `do_not_call` on every account with that number, deleted ones included). An empty TwiML `<Response>`: nothing is sent back", content_type = "text/xml", body = String),
        (status = 403, description = "`forbidden`: no signature, or not Twilio's for this request; or another Twilio account's report"),
        (status = 404, description = "`not_found`: Twilio webhooks are not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_WEBHOOK_URL)"),
        (status = 409, description = "`conflict`: this report was taken before (a replay changes nothing)"),
        (status = 411, description = "`length_required`: no Content-Length"),
        (status = 413, description = "`payload_too_large`: more than 64 KiB"),
        (status = 415, description = "`unsupported_media_type`: not `application/x-www-form-urlencoded`"),
        (status = 422, description = "`validation_failed`: signed, but not a report this service reads (no MessageSid, a From that is not a phone number)"),
    ))]
#[tracing::instrument(skip_all)]
async fn twilio_report(state: AppState, content_type: Option<String>, signature: Option<String>, body: Bytes) -> Result<Response> {
    let (account_sid, params) = signed_twilio_form(&state, "", content_type, signature, &body)?;
    let account_sid = account_sid.as_str();
    let report = twilio::read_report(&params, account_sid).map_err(unread)?;
    service::take(state.pool(), "twilio", report, state.clock().now()).await?;
    Ok(twiml(EMPTY_TWIML.to_owned()))
}

/// A TwiML answer.
fn twiml(document: String) -> Response {
    let mut response = warp::http::Response::new(document.into());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/xml; charset=utf-8"));
    response
}

/// The form parameters of a Twilio webhook to TWILIO_WEBHOOK_URL followed by `suffix`
/// (a voice step's path and query), once its signature is checked, with our account
/// SID: 404 when Twilio webhooks are not configured, 415 for another body, 403 for a
/// missing or wrong signature.
fn signed_twilio_form(
    state: &AppState,
    suffix: &str,
    content_type: Option<String>,
    signature: Option<String>,
    body: &[u8],
) -> Result<(String, Vec<(String, String)>)> {
    let settings = state.settings();
    let (Some(account_sid), Some(auth_token), Some(url)) = (
        settings.twilio_account_sid.as_deref(),
        settings.twilio_auth_token.as_deref(),
        settings.twilio_webhook_url.as_deref(),
    ) else {
        return Err(Error::new(Code::NotFound, "Twilio webhooks are not configured on this service"));
    };
    let is_form = content_type
        .as_deref()
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(Error::new(
            Code::UnsupportedMediaType,
            "send the body as `Content-Type: application/x-www-form-urlencoded`",
        ));
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let signed_url = format!("{}{suffix}", url.trim_end_matches('/'));
    let signed = signature.is_some_and(|signature| twilio::signature_matches(auth_token, &signed_url, &params, &signature));
    if !signed {
        tracing::warn!("a Twilio webhook without a valid signature was refused");
        return Err(Error::new(
            Code::Forbidden,
            "the X-Twilio-Signature header is missing or is not Twilio's signature of this request",
        ));
    }
    Ok((account_sid.to_owned(), params))
}

/// The query of a voice step: the call, and on `answered` the agent who answered.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct VoiceQuery {
    /// The call, as the service named it when it asked for this step.
    call: Uuid,
    /// The agent whose phone answered (`answered` only).
    agent: Option<Uuid>,
}

/// Twilio's voice parameters (those read; Twilio sends more), for the API description.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "PascalCase")]
pub struct TwilioVoiceForm {
    /// This service's Twilio account.
    pub account_sid: String,
    /// The call (on `answered`, the agent's leg).
    pub call_sid: String,
    /// On `answered`: the debtor's call the agent's leg belongs to.
    pub parent_call_sid: Option<String>,
    /// `queued`, `initiated`, `ringing`, `in-progress`, `completed`, `busy`, `no-answer`, `failed` or `canceled`.
    pub call_status: Option<String>,
    /// The caller, on a call a debtor makes.
    pub from: Option<String>,
    /// On `dialed`: how the dialled leg ended.
    pub dial_call_status: Option<String>,
    /// On `dialed`: how long the dialled party was on the line, in seconds.
    pub dial_call_duration: Option<String>,
    /// On `dialed`, when calls are recorded.
    pub recording_url: Option<String>,
}

/// Take a debtor's call
#[utoipa::path(post, path = "/api/v1/webhooks/twilio/voice", tag = "calls", operation_id = "twilio_voice_incoming", security(()),
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the request, over TWILIO_WEBHOOK_URL followed by `/voice`")),
    request_body(content = TwilioVoiceForm, content_type = "application/x-www-form-urlencoded",
        description = "An incoming call to TWILIO_VOICE_FROM: the number's Voice URL is TWILIO_WEBHOOK_URL followed by `/voice`"),
    responses(
        (status = 200, description = "TwiML: ring the agents of the caller's accounts who have a phone (every agent's with one when none does), at most ten at once; or tell the caller no one can take the call", content_type = "text/xml", body = String),
        (status = 403, description = "`forbidden`: no signature, or not Twilio's; or another Twilio account's"),
        (status = 404, description = "`not_found`: Twilio webhooks are not configured"),
        (status = 411, description = "`length_required`: no Content-Length"),
        (status = 413, description = "`payload_too_large`: more than 64 KiB"),
        (status = 415, description = "`unsupported_media_type`"),
        (status = 422, description = "`validation_failed`: signed, but not a call (no CallSid)"),
    ))]
#[tracing::instrument(skip_all)]
async fn voice_incoming(state: AppState, content_type: Option<String>, signature: Option<String>, body: Bytes) -> Result<Response> {
    let (account_sid, params) = signed_twilio_form(&state, "/voice", content_type, signature, &body)?;
    let report = read_voice(&params, &account_sid).map_err(unread)?;
    let settings = state.settings();
    let answer = calls::incoming(
        state.pool(),
        "twilio",
        &report.call_sid,
        report.from.as_deref(),
        settings.twilio_webhook_url.as_deref().unwrap_or_default(),
        settings.twilio_record_calls,
    )
    .await?;
    Ok(twiml(answer))
}

/// Take a step of a call
#[utoipa::path(post, path = "/api/v1/webhooks/twilio/voice/{step}", tag = "calls", operation_id = "twilio_voice_step", security(()),
    params(
        ("step" = String, Path, description = "`connect` (the agent answered a call the console placed: the guard decides again), `status` (the agent's leg moved on), `dialed` (a `<Dial>` ended) or `answered` (an agent answered a debtor's call)"),
        VoiceQuery,
        ("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the request, over TWILIO_WEBHOOK_URL followed by `/voice/{step}` and the query"),
    ),
    request_body(content = TwilioVoiceForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML: on `connect`, dial the debtor (or say the guard stopped the call and hang up); on `answered`, connect the agent (or hang up on a second one); otherwise nothing more", content_type = "text/xml", body = String),
        (status = 403, description = "`forbidden`: no signature, or not Twilio's; or another Twilio account's"),
        (status = 404, description = "`not_found`: Twilio webhooks are not configured, no such step, or no such call of this provider's"),
        (status = 411, description = "`length_required`: no Content-Length"),
        (status = 413, description = "`payload_too_large`: more than 64 KiB"),
        (status = 415, description = "`unsupported_media_type`"),
        (status = 422, description = "`validation_failed`: signed, but not what the step reads"),
    ))]
#[tracing::instrument(skip_all)]
async fn voice_step(
    step: String,
    raw: String,
    state: AppState,
    content_type: Option<String>,
    signature: Option<String>,
    body: Bytes,
) -> Result<Response> {
    if !matches!(step.as_str(), "connect" | "status" | "dialed" | "answered") {
        return Err(Error::new(Code::NotFound, "no such voice step"));
    }
    let suffix = format!("/voice/{step}?{raw}");
    let (account_sid, params) = signed_twilio_form(&state, &suffix, content_type, signature, &body)?;
    let query: VoiceQuery = crate::http::query::parse_query(&raw)?;
    let report = read_voice(&params, &account_sid).map_err(unread)?;
    let settings = state.settings();
    let pool = state.pool();
    let now = state.clock().now();
    let answer = match step.as_str() {
        "connect" => {
            let webhook = settings.twilio_webhook_url.as_deref().unwrap_or_default();
            let caller_id = settings.twilio_voice_from.as_deref().unwrap_or_default();
            let dialled = voice_url(webhook, "dialed", query.call);
            calls::connect(
                pool,
                query.call,
                &report.call_sid,
                caller_id,
                &dialled,
                settings.twilio_record_calls,
                now,
            )
            .await?
        }
        "status" => {
            let status = report
                .call_status
                .as_deref()
                .ok_or_else(|| Error::field("CallStatus", "is required"))?;
            calls::status(pool, query.call, &report.call_sid, status).await?;
            EMPTY_TWIML.to_owned()
        }
        "dialed" => {
            let end = DialEnd {
                status: report
                    .dial_call_status
                    .as_deref()
                    .ok_or_else(|| Error::field("DialCallStatus", "is required"))?,
                duration_seconds: report.dial_call_duration,
                recording_url: report.recording_url.as_deref(),
            };
            calls::dialled(pool, query.call, &report.call_sid, &end).await?;
            hang_up()
        }
        _ => {
            let agent = query.agent.ok_or_else(|| Error::field("agent", "is required on `answered`"))?;
            let parent = report
                .parent_call_sid
                .as_deref()
                .ok_or_else(|| Error::field("ParentCallSid", "is required on `answered`"))?;
            calls::answered(pool, query.call, parent, agent, now).await?
        }
    };
    Ok(twiml(answer))
}

/// Why a signed Twilio webhook was not read: 403 for another account's, 422 for one
/// that is not what the route reads.
fn unread(why: String) -> Error {
    if why.starts_with("AccountSid") {
        Error::new(Code::Forbidden, why)
    } else {
        Error::new(Code::ValidationFailed, why)
    }
}

/// Take a Meta WhatsApp webhook
#[utoipa::path(post, path = "/api/v1/webhooks/meta", tag = "messages", operation_id = "meta_webhook", security(()),
    params(("X-Hub-Signature-256" = String, Header, description = "Meta's signature of the body: `sha256=` and the hex HMAC-SHA256 of the raw body, keyed by the app secret")),
    request_body(content = Object, content_type = "application/json",
        description = "A WhatsApp Business Account webhook (`object`: `whatsapp_business_account`): incoming messages and the statuses of messages sent, for META_PHONE_NUMBER_ID"),
    responses(
        (status = 200, description = "Taken: `{taken}`, the reports that were new (delivery reports moved their messages forward, incoming messages landed on the accounts with the sender's number)", body = MetaTaken),
        (status = 403, description = "`forbidden`: no signature, or not Meta's for this body"),
        (status = 404, description = "`not_found`: Meta webhooks are not configured (META_PHONE_NUMBER_ID and META_APP_SECRET)"),
        (status = 409, description = "`conflict`: every report in it was taken before (a replay changes nothing)"),
        (status = 411, description = "`length_required`: no Content-Length"),
        (status = 413, description = "`payload_too_large`: more than 1 MiB"),
        (status = 415, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, description = "`validation_failed`: signed, but not a WhatsApp webhook this service reads"),
    ))]
#[tracing::instrument(skip_all)]
async fn meta_report(state: AppState, content_type: Option<String>, signature: Option<String>, body: Bytes) -> Result<Response> {
    let settings = state.settings();
    let (Some(phone_number_id), Some(app_secret)) = (settings.meta_phone_number_id.as_deref(), settings.meta_app_secret.as_deref()) else {
        return Err(Error::new(Code::NotFound, "Meta webhooks are not configured on this service"));
    };
    let is_json = content_type
        .as_deref()
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Error::new(
            Code::UnsupportedMediaType,
            "send the body as `Content-Type: application/json`",
        ));
    }
    if !signature.is_some_and(|signature| meta::signature_matches(app_secret, &body, &signature)) {
        tracing::warn!("a Meta webhook without a valid signature was refused");
        return Err(Error::new(
            Code::Forbidden,
            "the X-Hub-Signature-256 header is missing or is not Meta's signature of this body",
        ));
    }
    let reports = meta::read_reports(&body, phone_number_id).map_err(|why| Error::new(Code::ValidationFailed, why))?;
    let taken = service::take_all(state.pool(), "meta", reports, state.clock().now()).await?;
    Ok(api::json(StatusCode::OK, &MetaTaken { taken }))
}

/// What a Meta webhook request did.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MetaTaken {
    /// The reports in it that were new.
    pub taken: usize,
}

/// Subscribe Meta's webhook
#[utoipa::path(get, path = "/api/v1/webhooks/meta", tag = "messages", operation_id = "meta_webhook_subscribe", security(()),
    params(
        ("hub.mode" = String, Query, description = "`subscribe`"),
        ("hub.verify_token" = String, Query, description = "META_VERIFY_TOKEN, as entered in the app's webhook settings"),
        ("hub.challenge" = String, Query, description = "What to answer back, at most 200 visible characters"),
    ),
    responses(
        (status = 200, description = "The challenge, as plain text: the subscription is confirmed", content_type = "text/plain", body = String),
        (status = 403, description = "`forbidden`: not a subscription, or the verify token is not ours"),
        (status = 404, description = "`not_found`: Meta webhooks are not configured (META_VERIFY_TOKEN)"),
    ))]
#[tracing::instrument(skip_all)]
async fn meta_subscribe(state: AppState, raw: String) -> Result<Response> {
    let Some(expected) = state.settings().meta_verify_token.as_deref() else {
        return Err(Error::new(Code::NotFound, "Meta webhooks are not configured on this service"));
    };
    let params: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
    let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let token_matches = param("hub.verify_token").is_some_and(|token| api::same_secret(token, expected));
    let challenge = param("hub.challenge").filter(|c| (1..=200).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_graphic()));
    match (param("hub.mode"), token_matches, challenge) {
        (Some("subscribe"), true, Some(challenge)) => {
            let mut response = warp::http::Response::new(challenge.to_owned().into());
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
            Ok(response)
        }
        _ => Err(Error::new(Code::Forbidden, "not a subscription with this service's verify token")),
    }
}

/// List messages from unknown numbers
#[utoipa::path(get, path = "/api/v1/inbound-messages/unmatched", tag = "messages", operation_id = "list_unmatched_inbound_messages",
    params(PageQuery),
    responses(
        (status = 200, description = "Messages debtors sent in from numbers no account had, newest first", body = ListPage<InboundView>),
        (status = 403, description = "Only managers and admins read them"),
    ))]
#[tracing::instrument(skip_all)]
async fn unmatched(caller: Principal, state: AppState, raw: String) -> Result<Response> {
    let page = PageRequest::from_query(&raw)?;
    let (rows, total) = service::unmatched(state.pool(), &caller, page.window()).await?;
    let body = page.finish(rows, total, |r| (r.received_at, r.id), |r| Ok(InboundView::from(r)))?;
    Ok(api::json(StatusCode::OK, &body))
}
