//! Compression of lists and exports by `Accept-Encoding` (RFC 9110 §12.5.3): brotli or
//! gzip, streamed, so a 100,000-row CSV export is compressed as it is written. Only
//! JSON and CSV bodies without an entity tag are compressed: an answer with an ETag is
//! one resource whose tag `If-Match` compares, and spreadsheets are already zipped.

use async_compression::Level;
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder};
use futures_util::TryStreamExt;
use http_body_util::BodyDataStream;
use hyper::body::Body as _;
use tokio_util::io::{ReaderStream, StreamReader};
use warp::Reply;
use warp::http::{HeaderMap, HeaderValue, header};
use warp::reply::Response;

/// Bodies known to be smaller than this are sent as they are: compressing them saves
/// less than it costs.
const MIN_BYTES: u64 = 1024;
/// Brotli's quality: 4 compresses JSON and CSV nearly as well as gzip's best at a
/// fraction of brotli's default (11) time, which would make an export CPU-bound.
const BROTLI_QUALITY: i32 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Brotli,
    Gzip,
}

impl Encoding {
    fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }
}

/// The encoding a client accepts with the highest weight, brotli on a tie; none when
/// it accepts neither (or gives both `q=0`).
pub fn negotiate(headers: &HeaderMap) -> Option<Encoding> {
    let mut best: Option<(Encoding, u16)> = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let weight = parts.find_map(|p| p.trim().strip_prefix("q=").map(quality)).unwrap_or(Some(1000));
            let encoding = match name.as_str() {
                "br" => Encoding::Brotli,
                "gzip" | "x-gzip" => Encoding::Gzip,
                _ => continue,
            };
            let Some(weight) = weight.filter(|w| *w > 0) else { continue };
            let better = match best {
                None => true,
                Some((held, w)) => weight > w || (weight == w && encoding == Encoding::Brotli && held != encoding),
            };
            if better {
                best = Some((encoding, weight));
            }
        }
    }
    best.map(|(encoding, _)| encoding)
}

/// A `q` value in thousandths; none when it is not one.
fn quality(text: &str) -> Option<u16> {
    let value: f32 = text.trim().parse().ok()?;
    (0.0..=1.0).contains(&value).then(|| (value * 1000.0).round() as u16)
}

/// The content types worth compressing: lists, exports and the console's files.
const TEXTUAL: &[&str] = &[
    "application/json",
    "text/csv",
    "text/html",
    "text/javascript",
    "text/css",
    "image/svg+xml",
];

/// Whether `response` is a list, an export or a console file worth compressing.
fn compressible(response: &Response) -> bool {
    let headers = response.headers();
    if headers.contains_key(header::CONTENT_ENCODING) || headers.contains_key(header::ETAG) {
        return false;
    }
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let textual = TEXTUAL.iter().any(|prefix| kind.starts_with(prefix));
    let small = response.body().size_hint().exact().is_some_and(|n| n < MIN_BYTES);
    textual && !small && response.status().is_success()
}

/// `response`, compressed with what the request accepts when it is worth it. The answer
/// says `Vary: Accept-Encoding` either way, so a cache keeps the two apart.
pub fn compress(response: Response, accepted: Option<Encoding>) -> Response {
    let worth_it = compressible(&response);
    let (mut parts, body) = response.into_parts();
    if worth_it {
        parts.headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    let Some(encoding) = accepted.filter(|_| worth_it) else {
        return Response::from_parts(parts, body);
    };
    let plain = StreamReader::new(BodyDataStream::new(body).map_err(std::io::Error::other));
    let compressed = match encoding {
        Encoding::Brotli => {
            let encoder = BrotliEncoder::with_quality(plain, Level::Precise(BROTLI_QUALITY));
            warp::reply::stream(ReaderStream::new(encoder)).into_response()
        }
        Encoding::Gzip => warp::reply::stream(ReaderStream::new(GzipEncoder::new(plain))).into_response(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding.token()));
    Response::from_parts(parts, compressed.into_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> Option<Encoding> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        negotiate(&headers)
    }

    #[test]
    fn the_client_chooses_by_weight_and_brotli_wins_a_tie() {
        assert_eq!(accepting("gzip, deflate, br"), Some(Encoding::Brotli));
        assert_eq!(accepting("gzip"), Some(Encoding::Gzip));
        assert_eq!(accepting("br;q=0.5, gzip;q=0.8"), Some(Encoding::Gzip));
        assert_eq!(accepting("br;q=0, gzip;q=0"), None);
        assert_eq!(accepting("identity"), None);
        assert_eq!(accepting("gzip;q=2"), None, "a weight above 1 is not a weight");
        assert_eq!(negotiate(&HeaderMap::new()), None);
    }
}
