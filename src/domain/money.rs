//! Money: exact decimals with exactly the currency's minor digits. Never a float.

use std::str::FromStr;

use rust_decimal::Decimal;

/// An ISO 4217 currency that has minor units (XAU and friends are refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Currency {
    code: iso_currency::Currency,
    minor_digits: u32,
}

/// Largest amount accepted: fits `numeric(20,4)` with room for sums.
pub const MAX_AMOUNT_UNITS: i64 = 1_000_000_000_000;

impl Currency {
    pub fn parse(code: &str) -> Result<Self, String> {
        let upper = code.trim().to_ascii_uppercase();
        let currency = iso_currency::Currency::from_code(&upper).ok_or_else(|| format!("`{code}` is not an ISO 4217 currency code"))?;
        let minor_digits = currency
            .exponent()
            .ok_or_else(|| format!("`{upper}` has no minor unit and cannot hold balances"))?;
        Ok(Self {
            code: currency,
            minor_digits: u32::from(minor_digits),
        })
    }

    pub fn code(&self) -> &'static str {
        self.code.code()
    }

    pub fn minor_digits(&self) -> u32 {
        self.minor_digits
    }

    /// Parses a non-negative decimal string with at most the currency's minor digits.
    pub fn parse_amount(&self, text: &str) -> Result<Decimal, String> {
        parse_decimal(text, self.minor_digits, || {
            format!("{} allows at most {} decimal places", self.code(), self.minor_digits)
        })
    }

    /// Whether a stored amount is representable in this currency (used when the currency changes).
    pub fn fits(&self, amount: Decimal) -> bool {
        amount.normalize().scale() <= self.minor_digits
    }

    /// Formats with exactly the currency's minor digits: `"1250.00"`.
    pub fn format(&self, amount: Decimal) -> String {
        let mut value = amount;
        value.rescale(self.minor_digits);
        value.to_string()
    }
}

/// Parses a non-negative decimal string below [`MAX_AMOUNT_UNITS`] with at most `places`
/// decimal places (`too_precise` says why more are refused): an amount as the API writes
/// it, in a currency or, with the index's four places, in any.
pub fn parse_decimal(text: &str, places: u32, too_precise: impl FnOnce() -> String) -> Result<Decimal, String> {
    let well_formed = !text.is_empty()
        && text.bytes().filter(|b| *b == b'.').count() <= 1
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && !text.starts_with('.')
        && !text.ends_with('.');
    let value = Decimal::from_str_exact(text)
        .ok()
        .filter(|_| well_formed)
        .ok_or_else(|| format!("`{text}` is not a decimal amount such as \"1250.00\""))?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err("must not be negative".to_owned());
    }
    if value.scale() > places {
        return Err(too_precise());
    }
    if value >= Decimal::from(MAX_AMOUNT_UNITS) {
        return Err(format!("must be less than {MAX_AMOUNT_UNITS}"));
    }
    Ok(value.abs())
}

/// An amount in one currency, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CurrencyAmount {
    pub currency: String,
    /// Exact decimal with the currency's minor digits.
    #[schema(example = "1250.00")]
    pub amount: String,
}

impl CurrencyAmount {
    /// `amount` with the minor digits of the currency `code` (as it is, normalized, for
    /// a code this build does not know).
    pub fn new(code: &str, amount: Decimal) -> Self {
        Self {
            amount: Currency::parse(code).map_or_else(|_| amount.normalize().to_string(), |c| c.format(amount)),
            currency: code.to_owned(),
        }
    }
}

/// Stored as its code in a text column (`currency`, whose CHECK asks for three capitals);
/// a code this build cannot hold balances in fails to decode.
impl sqlx::Type<sqlx::Postgres> for Currency {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl sqlx::postgres::PgHasArrayType for Currency {
    fn array_type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for Currency {
    fn encode_by_ref(&self, buf: &mut sqlx::postgres::PgArgumentBuffer) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.code(), buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Currency {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let code = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(Self::parse(code)?)
    }
}

impl FromStr for Currency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_minor_digits() {
        let usd = Currency::parse("usd").unwrap();
        assert_eq!(usd.format(usd.parse_amount("1250").unwrap()), "1250.00");
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(jpy.format(jpy.parse_amount("1250").unwrap()), "1250");
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(kwd.format(kwd.parse_amount("1.5").unwrap()), "1.500");
    }

    #[test]
    fn refuses_bad_amounts() {
        let usd = Currency::parse("USD").unwrap();
        assert!(usd.parse_amount("1.001").unwrap_err().contains("at most 2"));
        assert!(usd.parse_amount("-1.00").unwrap_err().contains("negative"));
        for bad in ["", "1e3", "1,000.00", " 1.00", ".5", "5.", "1.2.3", "NaN"] {
            assert!(usd.parse_amount(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Currency::parse("XAU").is_err());
        assert!(Currency::parse("ABC").is_err());
    }
}
