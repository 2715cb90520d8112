//! One byte range of a download (RFC 9110 §14): `Range: bytes=first-last`, `first-` or
//! `-suffix`. A header this module cannot honour as one range (another unit, several
//! ranges, bad syntax) is ignored and the whole file sent, as §14.2 allows.

/// What a download sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requested {
    Whole,
    /// Bytes `first` to `last`, both included.
    Part {
        first: u64,
        last: u64,
    },
    /// A range that starts past the end (416, `Content-Range: bytes */size`).
    Unsatisfiable,
}

fn number(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Beyond u64 is past the end of any file.
    Some(text.parse().unwrap_or(u64::MAX))
}

/// The part of a file of `size` bytes the `Range` header `header` asks for.
pub fn resolve(header: Option<&str>, size: u64) -> Requested {
    let Some((unit, spec)) = header.and_then(|h| h.split_once('=')) else {
        return Requested::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Requested::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Requested::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        return match number(last) {
            None => Requested::Whole,
            Some(0) => Requested::Unsatisfiable,
            Some(_) if size == 0 => Requested::Unsatisfiable,
            Some(suffix) => Requested::Part {
                first: size.saturating_sub(suffix),
                last: size - 1,
            },
        };
    }
    let Some(first) = number(first) else {
        return Requested::Whole;
    };
    let last = match number(last) {
        None if last.is_empty() => u64::MAX,
        Some(last) if last >= first => last,
        _ => return Requested::Whole,
    };
    if first >= size {
        Requested::Unsatisfiable
    } else {
        Requested::Part {
            first,
            last: last.min(size - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Requested::*;

    #[test]
    fn one_range_is_resolved_against_the_size() {
        let r = |h: &str| resolve(Some(h), 100);
        assert_eq!(resolve(None, 100), Whole);
        assert_eq!(r("bytes=0-9"), Part { first: 0, last: 9 });
        assert_eq!(r("bytes=90-"), Part { first: 90, last: 99 });
        assert_eq!(r("bytes=-10"), Part { first: 90, last: 99 });
        assert_eq!(r("bytes=-1000"), Part { first: 0, last: 99 });
        assert_eq!(r("bytes=50-1000"), Part { first: 50, last: 99 });
        assert_eq!(r("Bytes = 1-1"), Part { first: 1, last: 1 });
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=100-200"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(r("bytes=99999999999999999999999-"), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-5"), 0), Unsatisfiable);
    }

    #[test]
    fn what_is_not_one_byte_range_is_ignored() {
        let r = |h: &str| resolve(Some(h), 100);
        for header in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-x",
            "bytes",
        ] {
            assert_eq!(r(header), Whole, "{header}");
        }
    }
}
