//! What the multipart uploads (imports, documents) share: the boundary a request must
//! name, and the problem each refusal of the multipart reader answers.

use serde_json::json;

use crate::error::{Code, Error, Result};

/// The boundary of a `multipart/form-data` body, or 415 naming the field the file goes in.
pub fn boundary(content_type: Option<&str>) -> Result<String> {
    content_type.and_then(|ct| multer::parse_boundary(ct).ok()).ok_or_else(|| {
        Error::new(
            Code::UnsupportedMediaType,
            "send the file as multipart/form-data in the field `file`",
        )
    })
}

/// 413 for a file over `limit` bytes; `limit_name` names the limit ("upload limit").
pub fn too_large(limit: u64, limit_name: &str) -> Error {
    Error::new(
        Code::PayloadTooLarge,
        match limit % (1024 * 1024) {
            0 => format!("the file exceeds the {limit_name} of {} MiB", limit / 1024 / 1024),
            _ => format!("the file exceeds the {limit_name} of {limit} bytes"),
        },
    )
    .with_extension("limit_bytes", json!(limit))
}

/// The problem a multipart reader's error answers: a file over `limit` (413), another
/// field too long or not one of those `fields` says the form takes (each named), or a
/// malformed body.
pub fn refusal(err: multer::Error, limit: u64, limit_name: &str, fields: &str) -> Error {
    match err {
        multer::Error::FieldSizeExceeded { field_name, .. } if field_name.as_deref() != Some("file") => {
            Error::field(field_name.as_deref().unwrap_or("field"), "too long")
        }
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => too_large(limit, limit_name),
        multer::Error::UnknownField { field_name } => {
            Error::field(field_name.as_deref().unwrap_or("field"), format!("unknown form field; {fields}"))
        }
        other => Error::new(Code::InvalidParameter, format!("the multipart body is malformed: {other}")),
    }
}
