//! RFC 6238 time-based one-time passwords: HMAC-SHA1 over 30-second steps, six digits,
//! as every authenticator app computes them; the secrets enrolment hands out and the
//! `otpauth://` URI that carries one to an app.

use chrono::{DateTime, Utc};
use data_encoding::BASE32_NOPAD;
use rand::RngCore;
use ring::hmac;

/// Seconds one code lives (RFC 6238's default, the only period apps agree on).
pub const STEP_SECS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps either side of now a code is accepted from: a phone clock a little off, or a
/// code typed as it turned over.
const SKEW_STEPS: i64 = 1;
/// 160 bits, the length RFC 4226 recommends for HMAC-SHA1.
const SECRET_BYTES: usize = 20;
/// The name an authenticator app files the code under.
const ISSUER: &str = "Arrears";

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut secret);
    secret
}

/// The secret as a person types it into an app: RFC 4648 base32, unpadded.
pub fn base32(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

/// The Key URI an authenticator app reads (from a QR code or pasted):
/// `otpauth://totp/Arrears:<account>?secret=…&issuer=Arrears&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_uri(account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        issuer = ISSUER,
        account = percent_encode(account),
        secret = base32(secret),
    )
}

/// `uri` as a QR code an authenticator app scans: an SVG image as a `data:` URI (the
/// console shows it as an image; nothing is asked of a QR service).
pub fn qr_code(uri: &str) -> String {
    use base64::Engine as _;
    let svg = match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    };
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

/// The time step `at` falls in (RFC 6238's T, counted from the Unix epoch).
pub fn step_at(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(STEP_SECS)
}

/// The RFC 4226 HOTP value of `counter` under `secret`, `digits` long (RFC 6238 uses the
/// time step as the counter).
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // Dynamic truncation (RFC 4226 section 5.3): four bytes at the offset the last
    // nibble names, without the sign bit.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([mac[offset], mac[offset + 1], mac[offset + 2], mac[offset + 3]]) & 0x7fff_ffff;
    binary % 10u32.pow(digits)
}

/// The six-digit code for `step`, zero-padded as an app shows it.
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    let counter = u64::try_from(step).unwrap_or_default();
    format!("{:0width$}", hotp(secret, counter, DIGITS), width = DIGITS as usize)
}

/// Whether `typed` has the shape of a code: exactly six ASCII digits.
pub fn is_code_shaped(typed: &str) -> bool {
    typed.len() == DIGITS as usize && typed.bytes().all(|b| b.is_ascii_digit())
}

/// The step, within one either side of `at`'s, whose code is `typed` and that comes
/// after `last_used` (a code, once accepted, is never accepted again, nor any older one).
pub fn matching_step(secret: &[u8], typed: &str, at: DateTime<Utc>, last_used: Option<i64>) -> Option<i64> {
    if !is_code_shaped(typed) {
        return None;
    }
    let now = step_at(at);
    (now - SKEW_STEPS..=now + SKEW_STEPS)
        .filter(|step| last_used.is_none_or(|used| *step > used))
        .find(|step| same_code(code_at_step(secret, *step).as_bytes(), typed.as_bytes()))
}

/// Compares two codes of one length in time that does not depend on where they differ.
fn same_code(expected: &[u8], typed: &[u8]) -> bool {
    expected.len() == typed.len() && expected.iter().zip(typed).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// RFC 3986 percent-encoding of a URI label: unreserved characters and `@` stay.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `rqrr` (another library) reads from the QR code [`qr_code`] draws for `uri`:
    /// the code's modules, as the SVG's dark squares place them, decoded.
    fn decoded_qr(uri: &str) -> String {
        use base64::Engine as _;
        let data = qr_code(uri);
        let svg = base64::engine::general_purpose::STANDARD
            .decode(data.strip_prefix("data:image/svg+xml;base64,").unwrap())
            .unwrap();
        let svg = String::from_utf8(svg).unwrap();
        let number = |text: &str, name: &str| -> u32 {
            let at = text.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            text[at..].split('"').next().unwrap().parse().unwrap()
        };
        let (width, height) = (number(&svg, "width") as usize, number(&svg, "height") as usize);
        let mut dark = vec![false; width * height];
        let path = svg.split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
        // The path is `M{x} {y}h{w}v{h}H{x}Z` per dark square.
        for square in path.split('M').filter(|s| !s.is_empty()) {
            let (x, rest) = square.split_once(' ').unwrap();
            let (y, rest) = rest.split_once('h').unwrap();
            let (w, rest) = rest.split_once('v').unwrap();
            let (h, _) = rest.split_once('H').unwrap();
            let [x, y, w, h] = [x, y, w, h].map(|n| n.parse::<usize>().unwrap());
            for row in y..y + h {
                for column in x..x + w {
                    dark[row * width + column] = true;
                }
            }
        }
        let mut image = rqrr::PreparedImage::prepare_from_bitmap(width, height, |x, y| dark[y * width + x]);
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().unwrap().1
    }

    /// RFC 6238 Appendix B's SHA-1 seed.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn rfc_6238_appendix_b_sha1_vectors() {
        let vectors = [
            (59, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ];
        for (time, expected) in vectors {
            let step = u64::try_from(step_at(at(time))).unwrap();
            assert_eq!(hotp(RFC_SECRET, step, 8), expected, "T = {time}");
        }
    }

    #[test]
    fn rfc_4226_appendix_d_hotp_vectors() {
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871, 520_489,
        ];
        for (counter, value) in expected.into_iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as u64, 6), value, "counter {counter}");
        }
    }

    #[test]
    fn six_digit_codes_keep_their_leading_zeros() {
        // T = 1111111109 is 07081804 with eight digits; with six, 081804.
        assert_eq!(code_at_step(RFC_SECRET, step_at(at(1_111_111_109))), "081804");
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_never_twice() {
        let now = at(1_234_567_890);
        let step = step_at(now);
        for offset in [-1, 0, 1] {
            let code = code_at_step(RFC_SECRET, step + offset);
            assert_eq!(matching_step(RFC_SECRET, &code, now, None), Some(step + offset));
        }
        for offset in [-2, 2] {
            let code = code_at_step(RFC_SECRET, step + offset);
            assert_eq!(matching_step(RFC_SECRET, &code, now, None), None, "offset {offset}");
        }
        let code = code_at_step(RFC_SECRET, step);
        assert_eq!(matching_step(RFC_SECRET, &code, now, Some(step)), None, "replayed");
        let older = code_at_step(RFC_SECRET, step - 1);
        assert_eq!(matching_step(RFC_SECRET, &older, now, Some(step)), None, "older than the last used");
    }

    #[test]
    fn only_six_digits_are_a_code() {
        let now = at(59);
        for typed in ["", "12345", "1234567", "12345a", " 12345", "１２３４５６"] {
            assert_eq!(matching_step(RFC_SECRET, typed, now, None), None, "{typed:?}");
        }
    }

    #[test]
    fn the_uri_names_the_issuer_account_and_base32_secret() {
        let uri = otpauth_uri("ann+ops@example.com", RFC_SECRET);
        assert_eq!(decoded_qr(&uri), uri, "the QR code carries the URI, as another library reads it");
        assert_eq!(
            uri,
            "otpauth://totp/Arrears:ann%2Bops@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Arrears&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(new_secret().len(), SECRET_BYTES);
        assert_ne!(new_secret(), new_secret());
    }
}
