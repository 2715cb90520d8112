//! Contact details: email (RFC 5322 via `email_address`), phone (E.164), timezone, country.

use std::str::FromStr;

use email_address::EmailAddress;
use phonenumber::country;

/// Trims and lowercases; refuses anything that is not a single valid address.
pub fn normalize_email(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.len() > 254 {
        return Err("must be at most 254 characters".to_owned());
    }
    let parsed = EmailAddress::from_str(trimmed).map_err(|e| format!("not a valid email address: {e}"))?;
    if !parsed.domain().contains('.') {
        return Err("not a valid email address: the domain needs a dot".to_owned());
    }
    Ok(parsed.as_str().to_ascii_lowercase())
}

/// Parses a phone number, using `default_region` when it has no country code, into E.164.
pub fn normalize_phone(text: &str, default_region: country::Id) -> Result<String, String> {
    let number = phonenumber::parse(Some(default_region), text.trim()).map_err(|e| format!("not a phone number: {e}"))?;
    if !phonenumber::is_valid(&number) {
        return Err("not a valid phone number for its region".to_owned());
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

pub fn parse_region(code: &str) -> Result<country::Id, String> {
    country::Id::from_str(&code.trim().to_ascii_uppercase()).map_err(|_| format!("`{code}` is not an ISO 3166 region code"))
}

/// IANA zone name such as `America/New_York`.
pub fn validate_timezone(name: &str) -> Result<String, String> {
    chrono_tz::Tz::from_str(name.trim())
        .map(|tz| tz.name().to_owned())
        .map_err(|_| format!("`{name}` is not an IANA timezone"))
}

/// ISO 3166-1 alpha-2 country of an address.
pub fn validate_country(code: &str) -> Result<String, String> {
    parse_region(code).map(|_| code.trim().to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_become_e164() {
        let us = parse_region("us").unwrap();
        assert_eq!(normalize_phone("(201) 555-0134", us).unwrap(), "+12015550134");
        assert_eq!(normalize_phone("+44 20 7946 0958", us).unwrap(), "+442079460958");
        // Numbers of several countries, as their own people write them.
        let fr = country::Id::FR;
        assert_eq!(normalize_phone("01 42 68 53 00", fr).unwrap(), "+33142685300");
        assert_eq!(normalize_phone("+33 6 12 34 56 78", us).unwrap(), "+33612345678");
        assert_eq!(normalize_phone("030 901820", country::Id::DE).unwrap(), "+4930901820");
        assert_eq!(normalize_phone("03-1234-5678", country::Id::JP).unwrap(), "+81312345678");
        assert_eq!(normalize_phone("(11) 91234-5678", country::Id::BR).unwrap(), "+5511912345678");
        assert!(normalize_phone("12", us).is_err());
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(normalize_email(" Jane.Doe@Example.COM ").unwrap(), "jane.doe@example.com");
        assert!(normalize_email("jane@").is_err());
        assert!(normalize_email("jane@localhost").is_err());
    }
}
