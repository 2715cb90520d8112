//! Files kept with an account, which the API calls documents (`/documents`; "document"
//! in this crate is the search index's account document, [`crate::domain::document`]):
//! the name a file was uploaded under, bounded, and the name and header it is downloaded
//! with, made safe. What kind a file is comes from its bytes ([`kind`]).

pub mod bulk;
pub mod extract;
pub mod kind;

pub use kind::Kind;

/// Where a document's processing is ([`extract`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Processing {
    /// Waiting for a worker, or being read.
    Pending,
    /// Read: its page count, thumbnail and text are recorded (those its kind has).
    Processed,
    /// It could not be read; `processing_error` says why.
    Failed,
}

/// The longest name kept, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// The name a file is kept under when the upload gave none.
const UNNAMED: &str = "document";

/// The name to keep for an upload named `given` (the multipart `filename`): as given,
/// trimmed, [`UNNAMED`] when there is none. Refused when longer than
/// [`MAX_NAME_CHARS`] or holding NUL (which no file name holds and PostgreSQL cannot
/// store); anything else is kept and made safe where it is shown ([`download_name`]).
pub fn stored_name(given: Option<&str>) -> Result<String, String> {
    let name = given.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(UNNAMED);
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("the file name is longer than {MAX_NAME_CHARS} characters"));
    }
    if name.contains('\0') {
        return Err("the file name holds a NUL character".to_owned());
    }
    Ok(name.to_owned())
}

/// The name a file of `kind` kept as `name` is downloaded under: the last path
/// component only, characters that break or reorder a line replaced (controls, U+202E:
/// `crate::domain::text::breaks_line`), no leading dots (no hidden file), and
/// ending in an extension of its kind (a text file named `page.html` downloads as
/// `page.html.txt`, so no program opens it for what its name claims).
pub fn download_name(name: &str, kind: Kind) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .map(|c| if super::text::breaks_line(c) { '_' } else { c })
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_owned();
    let base = if cleaned.is_empty() { UNNAMED.to_owned() } else { cleaned };
    let lower = base.to_lowercase();
    let has_extension = kind.extensions().iter().any(|extension| {
        lower
            .strip_suffix(extension)
            .is_some_and(|stem| stem.ends_with('.') && stem.len() > 1)
    });
    if has_extension {
        base
    } else {
        format!("{base}.{}", kind.extensions()[0])
    }
}

/// `Content-Disposition: attachment` for `file_name` (RFC 6266): an ASCII `filename`
/// for old clients (anything else, quotes, backslashes and `%` as `_`) and the exact
/// name in `filename*` (RFC 8187, UTF-8, percent-encoded beyond `attr-char`). Always a
/// valid header value, whatever the name.
pub fn content_disposition(file_name: &str) -> String {
    let fallback: String = file_name
        .chars()
        .map(|c| match c {
            ' '..='~' if !matches!(c, '"' | '\\' | '%') => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::with_capacity(file_name.len() * 3);
    for byte in file_name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_kept_as_given_within_its_bounds() {
        assert_eq!(stored_name(Some("  Proof of payment.pdf ")).unwrap(), "Proof of payment.pdf");
        assert_eq!(stored_name(None).unwrap(), "document");
        assert_eq!(stored_name(Some("   ")).unwrap(), "document");
        assert_eq!(stored_name(Some("../x\"y\r\n.pdf")).unwrap(), "../x\"y\r\n.pdf");
        assert!(stored_name(Some(&"é".repeat(255))).is_ok());
        assert!(stored_name(Some(&"é".repeat(256))).is_err());
        assert!(stored_name(Some("a\0b")).is_err());
    }

    #[test]
    fn a_download_name_is_one_safe_component_ending_in_its_kind() {
        assert_eq!(download_name("../../etc/passwd", Kind::Text), "passwd.txt");
        assert_eq!(download_name("C:\\Users\\x\\scan.PDF", Kind::Pdf), "scan.PDF");
        assert_eq!(download_name("page.html", Kind::Text), "page.html.txt");
        assert_eq!(download_name("invoice.exe", Kind::Pdf), "invoice.exe.pdf");
        assert_eq!(download_name(".bashrc", Kind::Text), "bashrc.txt");
        assert_eq!(download_name("a\r\nb.jpeg", Kind::Jpeg), "a__b.jpeg");
        assert_eq!(download_name("photo.jpg", Kind::Jpeg), "photo.jpg");
        assert_eq!(download_name("..", Kind::Png), "document.png");
        assert_eq!(download_name(".pdf", Kind::Pdf), "pdf.pdf");
    }

    #[test]
    fn the_disposition_is_a_valid_header_for_any_name() {
        assert_eq!(
            content_disposition("Zahlungsbestätigung \"März\".pdf"),
            "attachment; filename=\"Zahlungsbest_tigung _M_rz_.pdf\"; \
             filename*=UTF-8''Zahlungsbest%C3%A4tigung%20%22M%C3%A4rz%22.pdf"
        );
        assert_eq!(
            content_disposition("100%;x=1.txt"),
            "attachment; filename=\"100_;x=1.txt\"; filename*=UTF-8''100%25%3Bx%3D1.txt"
        );
        for name in ["a\\b\".txt", "日本語.pdf", "tab\there.txt"] {
            let value = content_disposition(name);
            assert!(value.bytes().all(|b| (b' '..=b'~').contains(&b)), "{value}");
        }
    }
}
