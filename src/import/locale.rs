//! Amounts as a sheet's locale writes them. A typed number cell is exact in any locale
//! (an xlsx, xls, xlsb or ods number is stored as a number, not as text); a text cell,
//! and every CSV cell, is read with the separators of the locale the importer names.
//! Without a locale the API's own form is read (`.` before the decimals) and a `,` is
//! taken only where it cannot be a decimal comma (`1,234.56`); a value that reads two
//! ways (`1,200`) is refused with its row and column, never guessed.

use serde::{Deserialize, Serialize};

/// A locale whose way of writing numbers an import can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Locale {
    #[serde(rename = "en-US")]
    EnUs,
    #[serde(rename = "en-GB")]
    EnGb,
    #[serde(rename = "de-DE")]
    DeDe,
    #[serde(rename = "de-CH")]
    DeCh,
    #[serde(rename = "es-ES")]
    EsEs,
    #[serde(rename = "fr-FR")]
    FrFr,
    #[serde(rename = "it-IT")]
    ItIt,
    #[serde(rename = "nl-NL")]
    NlNl,
}

impl Locale {
    pub const ALL: [Locale; 8] = [
        Locale::EnUs,
        Locale::EnGb,
        Locale::DeDe,
        Locale::DeCh,
        Locale::EsEs,
        Locale::FrFr,
        Locale::ItIt,
        Locale::NlNl,
    ];

    pub fn tag(self) -> &'static str {
        match self {
            Locale::EnUs => "en-US",
            Locale::EnGb => "en-GB",
            Locale::DeDe => "de-DE",
            Locale::DeCh => "de-CH",
            Locale::EsEs => "es-ES",
            Locale::FrFr => "fr-FR",
            Locale::ItIt => "it-IT",
            Locale::NlNl => "nl-NL",
        }
    }

    /// A BCP 47 tag (`de-DE`, `de_de` too), or a message naming the ones known.
    pub fn parse(text: &str) -> Result<Locale, String> {
        let wanted = text.trim().replace('_', "-");
        Locale::ALL
            .into_iter()
            .find(|l| l.tag().eq_ignore_ascii_case(&wanted))
            .ok_or_else(|| {
                let known: Vec<&str> = Locale::ALL.iter().map(|l| l.tag()).collect();
                format!("`{text}` is not a locale an import reads; use one of {}", known.join(", "))
            })
    }

    /// The separator before the decimals.
    pub fn decimal(self) -> char {
        match self {
            Locale::EnUs | Locale::EnGb | Locale::DeCh => '.',
            Locale::DeDe | Locale::EsEs | Locale::FrFr | Locale::ItIt | Locale::NlNl => ',',
        }
    }

    /// The separators between groups of thousands.
    fn groups(self) -> &'static [char] {
        match self {
            Locale::EnUs | Locale::EnGb => &[','],
            Locale::DeDe | Locale::EsEs | Locale::ItIt | Locale::NlNl => &['.'],
            Locale::DeCh => &['\'', '\u{2019}'],
            Locale::FrFr => &[' ', '\u{a0}', '\u{202f}'],
        }
    }

    fn example(self) -> &'static str {
        match self {
            Locale::EnUs | Locale::EnGb => "1,234.56",
            Locale::DeDe | Locale::EsEs | Locale::ItIt | Locale::NlNl => "1.234,56",
            Locale::DeCh => "1'234.56",
            Locale::FrFr => "1 234,56",
        }
    }
}

/// The decimal separator a typed number cell is written with, so that it reads back
/// exactly under `locale`.
pub fn decimal_of(locale: Option<Locale>) -> char {
    locale.map_or('.', Locale::decimal)
}

/// `text` under `locale`'s separators, as the API's plain decimal (`1234.56`); `None`
/// when it is not a number written that way.
fn plain(text: &str, locale: Locale) -> Option<String> {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (whole, fraction) = match digits.split_once(locale.decimal()) {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(sign);
    match whole.find(locale.groups()) {
        None if !whole.is_empty() && whole.chars().all(|c| c.is_ascii_digit()) => out.push_str(whole),
        None => return None,
        Some(at) => {
            let separator = whole[at..].chars().next()?;
            let mut parts = whole.split(separator);
            let first = parts.next()?;
            let grouped = (1..=3).contains(&first.len())
                && first.chars().all(|c| c.is_ascii_digit())
                && parts.clone().all(|p| p.len() == 3 && p.chars().all(|c| c.is_ascii_digit()));
            if !grouped {
                return None;
            }
            out.push_str(first);
            parts.for_each(|p| out.push_str(p));
        }
    }
    if let Some(fraction) = fraction {
        if fraction.is_empty() || !fraction.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        out.push('.');
        out.push_str(fraction);
    }
    Some(out)
}

/// An amount cell as the API's plain decimal, read under `locale` (see the module), or
/// why it cannot be read.
pub fn amount(text: &str, locale: Option<Locale>) -> Result<String, String> {
    let text = text.trim();
    match locale {
        Some(locale) => plain(text, locale).ok_or_else(|| {
            format!(
                "`{text}` is not an amount as {} writes one (`{}` before the decimals, e.g. {})",
                locale.tag(),
                locale.decimal(),
                locale.example()
            )
        }),
        None if !text.contains(',') => Ok(text.to_owned()),
        None => match (plain(text, Locale::EnUs), plain(text, Locale::DeDe)) {
            (Some(_), Some(_)) if !text.contains('.') => Err(format!(
                "`{text}` reads two ways (`,` between thousands or before the decimals); name the sheet's locale, e.g. locale=en-US or locale=de-DE"
            )),
            (Some(plain), _) => Ok(plain),
            _ => Err(format!(
                "`{text}` is not an amount such as 1250.00; if the sheet writes decimals with a comma, name its locale, e.g. locale=de-DE"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_locale_reads_its_own_separators() {
        assert_eq!(amount("1,200.00", Some(Locale::EnUs)).unwrap(), "1200.00");
        assert_eq!(amount("1.200,00", Some(Locale::DeDe)).unwrap(), "1200.00");
        assert_eq!(amount("1\u{202f}234\u{202f}567,5", Some(Locale::FrFr)).unwrap(), "1234567.5");
        assert_eq!(amount("1'234.50", Some(Locale::DeCh)).unwrap(), "1234.50");
        assert_eq!(amount("1.200", Some(Locale::DeDe)).unwrap(), "1200");
        assert_eq!(amount("1200,5", Some(Locale::DeDe)).unwrap(), "1200.5");
        assert_eq!(amount(" 7 ", Some(Locale::EnUs)).unwrap(), "7");
    }

    #[test]
    fn the_other_locales_form_is_refused_not_guessed() {
        let error = amount("1200.50", Some(Locale::DeDe)).unwrap_err();
        assert!(error.contains("de-DE") && error.contains("1.234,56"), "{error}");
        assert!(amount("1,200.00", Some(Locale::DeDe)).is_err());
        assert!(amount("12,34,567", Some(Locale::EnUs)).is_err(), "groups hold three digits");
        assert!(amount("1,2.5", Some(Locale::EnUs)).is_err());
        assert!(amount("1.200.", Some(Locale::DeDe)).is_err());
    }

    #[test]
    fn without_a_locale_only_one_reading_is_taken() {
        assert_eq!(amount("1200.50", None).unwrap(), "1200.50");
        assert_eq!(amount("1,234,567.89", None).unwrap(), "1234567.89");
        assert!(amount("1,200", None).unwrap_err().contains("reads two ways"));
        assert!(amount("12,50", None).unwrap_err().contains("locale=de-DE"));
        assert!(amount("1.200,00", None).unwrap_err().contains("locale=de-DE"));
    }

    #[test]
    fn locales_are_named_by_their_tags() {
        assert_eq!(Locale::parse("de-DE"), Ok(Locale::DeDe));
        assert_eq!(Locale::parse("fr_fr"), Ok(Locale::FrFr));
        assert!(Locale::parse("xx-YY").unwrap_err().contains("en-US"));
    }
}
