//! What the providers that are HTTP APIs (Twilio, Meta's Graph API) share: one client
//! with bounded waits, an answer read to a bound, reasons kept short, and connection
//! errors told without the URL (which may hold an account's id).

use std::time::Duration;

use super::SendFailure;

/// The most of an answer read; a message's answer is about 1 KiB.
const MAX_ANSWER: usize = 64 * 1024;
/// The most of a reason kept with a failed message.
const MAX_REASON: usize = 500;

/// A client that waits 5 s to connect and 15 s in all.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build()?)
}

/// Sends `request` to `provider` and reads its answer (status and at most 64 KiB of
/// body). A connection that fails, times out or answers more is worth another try.
pub async fn exchange(provider: &str, request: reqwest::RequestBuilder) -> Result<(reqwest::StatusCode, Vec<u8>), SendFailure> {
    let failed = |e: reqwest::Error| SendFailure::Retry(format!("{provider}: {}", connection_error(&e)));
    let mut response = request.send().await.map_err(failed)?;
    let status = response.status();
    let mut answer = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if answer.len() + chunk.len() > MAX_ANSWER {
            return Err(SendFailure::Retry(format!(
                "{provider} answered {status} with more than {MAX_ANSWER} bytes"
            )));
        }
        answer.extend_from_slice(&chunk);
    }
    Ok((status, answer))
}

/// `{provider} answered {status}: {reason}`, cut to 500 characters.
pub fn reason(provider: &str, status: reqwest::StatusCode, reason: &str) -> String {
    format!("{provider} answered {status}: {reason}").chars().take(MAX_REASON).collect()
}

/// A connection error without the URL.
fn connection_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the connection failed"
    };
    let mut cause = std::error::Error::source(error);
    let mut deepest = None;
    while let Some(inner) = cause {
        deepest = Some(inner.to_string());
        cause = inner.source();
    }
    match deepest {
        Some(detail) => format!("{kind} ({detail})"),
        None => kind.to_owned(),
    }
}
