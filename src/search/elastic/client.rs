//! The HTTP side of the Elasticsearch backend. Requests are plain data, so tests can pin
//! the exact JSON sent; one function sends them and sorts failures into "retry",
//! "stop the worker" and "the request is wrong".

use std::time::Duration;

use anyhow::Context;
use elasticsearch::Elasticsearch;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::{Method, Url};
use serde_json::{Value, json};

use crate::error::{Code, Error};

/// How a request body goes over the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Json(Value),
    /// Newline-delimited JSON (`_bulk`).
    Ndjson(Vec<Value>),
}

/// One request to Elasticsearch; `path` carries the query string.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub body: Option<Body>,
}

impl Request {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::Get,
            path: path.into(),
            body: None,
        }
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Self {
            method: Method::Delete,
            path: path.into(),
            body: None,
        }
    }

    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Self {
            method: Method::Post,
            path: path.into(),
            body: Some(Body::Json(body)),
        }
    }

    pub fn put(path: impl Into<String>, body: Value) -> Self {
        Self {
            method: Method::Put,
            path: path.into(),
            body: Some(Body::Json(body)),
        }
    }

    pub fn bulk(path: impl Into<String>, lines: Vec<Value>) -> Self {
        Self {
            method: Method::Post,
            path: path.into(),
            body: Some(Body::Ndjson(lines)),
        }
    }

    /// The request as the golden fixtures hold it.
    pub fn to_json(&self) -> Value {
        let method = method_name(self.method);
        match &self.body {
            None => json!({ "method": method, "path": self.path }),
            Some(Body::Json(body)) => json!({ "method": method, "path": self.path, "body": body }),
            Some(Body::Ndjson(lines)) => json!({ "method": method, "path": self.path, "ndjson": lines }),
        }
    }
}

/// Why a request failed, sorted by what the caller should do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EsError {
    /// Worth retrying later: 429, 5xx, timeouts, refused connections.
    #[error("elasticsearch is unavailable: {0}")]
    Transient(String),
    /// Credentials refused or writes blocked by the cluster: nothing works until an
    /// operator acts, so a sync worker stops instead of retrying.
    #[error("elasticsearch refuses this client: {0}")]
    Fatal(String),
    /// The request was wrong (another 4xx): a bug or a mapping out of step.
    #[error("elasticsearch rejected the request ({status}): {reason}")]
    Rejected { status: u16, reason: String },
}

impl EsError {
    pub fn is_fatal(err: &Error) -> bool {
        matches!(err, Error::Internal(e) if matches!(e.downcast_ref::<EsError>(), Some(EsError::Fatal(_))))
    }
}

impl From<EsError> for Error {
    fn from(err: EsError) -> Self {
        match err {
            EsError::Transient(reason) => {
                tracing::warn!(reason = %reason, "elasticsearch unavailable");
                Error::new(Code::ServiceUnavailable, "the search index is unavailable; try again shortly")
                    .with_retry_after(Duration::from_secs(1))
            }
            other => Error::Internal(anyhow::Error::new(other)),
        }
    }
}

/// A response with its status; bodies that are not JSON become `Value::Null`.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `Ok` for a 2xx, the failure otherwise.
    pub fn success(self) -> Result<Value, EsError> {
        if self.is_success() {
            Ok(self.body)
        } else {
            Err(classify(self.status, &self.body))
        }
    }
}

/// The error object's `type` (top level or first root cause).
pub fn error_type(body: &Value) -> &str {
    body.pointer("/error/type")
        .or_else(|| body.pointer("/error/root_cause/0/type"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub fn error_reason(body: &Value) -> String {
    match body.pointer("/error/reason").and_then(Value::as_str) {
        Some(reason) => reason.to_owned(),
        None => body.get("error").map(Value::to_string).unwrap_or_else(|| body.to_string()),
    }
}

/// Sorts a failed status (of a response or of one bulk item) into what to do next.
pub fn classify(status: u16, body: &Value) -> EsError {
    let kind = error_type(body);
    let reason = error_reason(body);
    if kind == "cluster_block_exception" || status == 401 || status == 403 {
        return EsError::Fatal(format!("{status} {kind}: {reason}"));
    }
    if status == 429 || status >= 500 {
        return EsError::Transient(format!("{status} {kind}: {reason}"));
    }
    EsError::Rejected {
        status,
        reason: format!("{kind}: {reason}"),
    }
}

/// Connection settings (from `Settings`).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub url: Url,
    pub username: Option<String>,
    pub password: Option<String>,
    /// An encoded API key (`id:key` in base64), as Kibana shows it.
    pub api_key: Option<String>,
    /// PEM file of the CA that signed the cluster's certificate.
    pub ca_file: Option<std::path::PathBuf>,
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct Client {
    es: Elasticsearch,
    timeout: Duration,
}

impl Client {
    pub fn new(config: &ClientConfig) -> anyhow::Result<Self> {
        let mut url = config.url.clone();
        let mut credentials = None;
        if !url.username().is_empty() {
            let user = url.username().to_owned();
            let password = url.password().unwrap_or_default().to_owned();
            credentials = Some(Credentials::Basic(user, password));
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        if let Some(user) = &config.username {
            credentials = Some(Credentials::Basic(user.clone(), config.password.clone().unwrap_or_default()));
        }
        if let Some(key) = &config.api_key {
            credentials = Some(Credentials::EncodedApiKey(key.clone()));
        }
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .timeout(config.timeout)
            .disable_proxy();
        if let Some(credentials) = credentials {
            builder = builder.auth(credentials);
        }
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).with_context(|| format!("reading ELASTICSEARCH_CA_FILE {}", path.display()))?;
            let ca = Certificate::from_pem(&pem).map_err(|e| anyhow::anyhow!("ELASTICSEARCH_CA_FILE {}: {e}", path.display()))?;
            builder = builder.cert_validation(CertificateValidation::Full(ca));
        }
        let transport = builder.build().context("building the elasticsearch client")?;
        Ok(Self {
            es: Elasticsearch::new(transport),
            timeout: config.timeout,
        })
    }

    /// Sends a request. Auth failures, cluster blocks, 429 and 5xx come back as errors;
    /// every other status comes back as a reply for the caller to judge.
    pub async fn send(&self, request: &Request) -> Result<Reply, EsError> {
        let mut headers = HeaderMap::new();
        let body = match &request.body {
            None => None,
            Some(Body::Json(value)) => Some(serde_json::to_vec(value).map_err(|e| EsError::Transient(e.to_string()))?),
            Some(Body::Ndjson(lines)) => {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/vnd.elasticsearch+x-ndjson; compatible-with=8"),
                );
                let mut out = Vec::with_capacity(lines.len() * 256);
                for line in lines {
                    serde_json::to_writer(&mut out, line).map_err(|e| EsError::Transient(e.to_string()))?;
                    out.push(b'\n');
                }
                Some(out)
            }
        };
        let response = self
            .es
            .send::<Vec<u8>, ()>(request.method, &request.path, headers, None, body, Some(self.timeout))
            .await
            .map_err(|e| EsError::Transient(format!("{} {}: {e}", method_name(request.method), request.path)))?;
        let status = response.status_code().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| EsError::Transient(format!("reading the response to {}: {e}", request.path)))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status == 401 || status == 403 || status == 429 || status >= 500 || error_type(&body) == "cluster_block_exception" {
            return Err(classify(status, &body));
        }
        Ok(Reply { status, body })
    }
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Put => "PUT",
        Method::Post => "POST",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}
