//! Where the debtor lives in time: an account's zone named by whoever wrote it, or derived
//! from the address's postal code and country and from the phone number's prefix, with the
//! datasets `bin/zone-data` writes from registry packages (US ZIP codes from `zipcodes`,
//! libphonenumber's prefix-to-zone data from `phonenumbers`, one-zone countries from the
//! IANA `zone.tab` in `tzdata`).

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono_tz::Tz;
use phonenumber::country;
use serde::{Deserialize, Serialize};

use super::account::Address;
use super::compliance::known_zone;

/// Where an account's zone came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum ZoneSource {
    /// Named by the creditor's file, the API or a user.
    Given,
    /// The address's postal code (US) or its country (one with a single zone).
    Address,
    /// The phone number's prefix, the address saying nothing.
    Phone,
    /// Nothing said where: the zone is `UTC` and the contact guard fits every zone of
    /// the address's country.
    Unknown,
}

impl ZoneSource {
    /// The name as stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Given => "given",
            Self::Address => "address",
            Self::Phone => "phone",
            Self::Unknown => "unknown",
        }
    }
}

/// An account's zone and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebtorZone {
    pub timezone: String,
    pub source: ZoneSource,
    /// Other zones the debtor may be in: the phone's when its prefix disagrees with the
    /// address, or the rest of a prefix that spans zones. The contact guard allows only
    /// the hours open in the account's zone and every one of these.
    pub alternates: Vec<String>,
}

/// A phone prefix naming more zones than this says nothing about where the debtor is (a
/// country's mobile or toll-free numbers list every zone of the country).
const MOST_PHONE_ZONES: usize = 3;

impl DebtorZone {
    /// The zone named by `given`, unless it names none (`UTC` and its aliases): then the
    /// zone derived from `address` and `phone`, the address's country defaulting to
    /// `region` (the agency's phone region).
    pub fn resolve(given: Option<&str>, address: &Address, phone: Option<&str>, region: country::Id) -> Self {
        if let Some(zone) = given.and_then(known_zone) {
            return Self {
                timezone: zone.name().to_owned(),
                source: ZoneSource::Given,
                alternates: Vec::new(),
            };
        }
        Self::derive(address, phone, region)
    }

    /// The zone the address and the phone say, the address first (Regulation F speaks of
    /// the consumer's location); `UTC` and `unknown` when neither says.
    pub fn derive(address: &Address, phone: Option<&str>, region: country::Id) -> Self {
        let written = [
            &address.line1,
            &address.city,
            &address.region,
            &address.postal_code,
            &address.country,
        ];
        let by_address = written
            .iter()
            .any(|part| part.is_some())
            .then(|| {
                address_zone(
                    address.country.as_deref().unwrap_or(region.as_ref()),
                    address.postal_code.as_deref(),
                )
            })
            .flatten();
        let by_phone = phone.map(phone_zones).unwrap_or_default();
        let names = |zones: &[Tz]| zones.iter().map(|z| z.name().to_owned()).collect::<Vec<_>>();
        match (by_address, by_phone.as_slice()) {
            (Some(zone), phone) => Self {
                timezone: zone.name().to_owned(),
                source: ZoneSource::Address,
                alternates: if phone.contains(&zone) { Vec::new() } else { names(phone) },
            },
            (None, [first, rest @ ..]) => Self {
                timezone: first.name().to_owned(),
                source: ZoneSource::Phone,
                alternates: names(rest),
            },
            (None, []) => Self::unknown(),
        }
    }

    pub fn unknown() -> Self {
        Self {
            timezone: Tz::UTC.name().to_owned(),
            source: ZoneSource::Unknown,
            alternates: Vec::new(),
        }
    }
}

/// The zone of a postal code in `country` (ISO 3166 alpha-2): a US ZIP code (`07030`,
/// `07030-1234`), or any address in a country with a single zone.
pub fn address_zone(country: &str, postal_code: Option<&str>) -> Option<Tz> {
    let country = country.trim().to_ascii_uppercase();
    if country == "US" {
        return postal_code.and_then(us_zip_zone);
    }
    DATA.countries.get(country.as_str()).copied()
}

fn us_zip_zone(code: &str) -> Option<Tz> {
    let digits = code.trim().split('-').next()?;
    if digits.len() != 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let zip: u32 = digits.parse().ok()?;
    let at = DATA.us_zips.partition_point(|(first, _, _)| *first <= zip);
    let (_, last, zone) = DATA.us_zips.get(at.checked_sub(1)?)?;
    (zip <= *last).then_some(*zone)
}

/// The zones libphonenumber gives the longest prefix of an E.164 number (`+12015550134`),
/// none when that prefix spans more than [`MOST_PHONE_ZONES`].
pub fn phone_zones(e164: &str) -> Vec<Tz> {
    let digits = e164.trim().trim_start_matches('+');
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Vec::new();
    }
    (1..=digits.len().min(DATA.longest_prefix))
        .rev()
        .find_map(|n| DATA.phone_prefixes.get(&digits[..n]))
        .filter(|zones| zones.len() <= MOST_PHONE_ZONES)
        .cloned()
        .unwrap_or_default()
}

struct Data {
    /// (first ZIP, last ZIP, zone), sorted and disjoint.
    us_zips: Vec<(u32, u32, Tz)>,
    phone_prefixes: HashMap<&'static str, Vec<Tz>>,
    longest_prefix: usize,
    countries: HashMap<&'static str, Tz>,
}

static DATA: LazyLock<Data> = LazyLock::new(|| {
    let phone_prefixes: HashMap<&str, Vec<Tz>> = rows(include_str!("debtor_zone/phone_prefix.tsv"))
        .map(|[prefix, zones]| (prefix, zones.split(' ').map(zone).collect()))
        .collect();
    Data {
        us_zips: rows(include_str!("debtor_zone/us_zip.tsv"))
            .map(|[first, last, name]| (number(first), number(last), zone(name)))
            .collect(),
        longest_prefix: phone_prefixes.keys().map(|p| p.len()).max().unwrap_or(0),
        phone_prefixes,
        countries: rows(include_str!("debtor_zone/country.tsv"))
            .map(|[country, name]| (country, zone(name)))
            .collect(),
    }
});

/// A dataset's rows: tab-separated, after its comment and header lines.
fn rows<const N: usize>(text: &'static str) -> impl Iterator<Item = [&'static str; N]> {
    text.lines().skip(2).map(|line| {
        let cells: Vec<&str> = line.split('\t').collect();
        cells
            .try_into()
            .unwrap_or_else(|_| panic!("a zone dataset row has {N} cells: {line}"))
    })
}

fn zone(name: &str) -> Tz {
    name.parse().unwrap_or_else(|_| panic!("chrono-tz knows the dataset's zone {name}"))
}

fn number(zip: &str) -> u32 {
    zip.parse().unwrap_or_else(|_| panic!("the dataset's ZIP code {zip} is a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(country: Option<&str>, postal_code: &str) -> Address {
        Address {
            country: country.map(str::to_owned),
            postal_code: Some(postal_code.to_owned()),
            ..Address::default()
        }
    }

    const US: country::Id = country::Id::US;

    #[test]
    fn every_dataset_row_parses_and_names_a_zone_chrono_tz_knows() {
        assert!(DATA.us_zips.len() > 100 && DATA.phone_prefixes.len() > 1000 && DATA.countries.len() > 100);
        assert!(DATA.us_zips.windows(2).all(|w| w[0].1 < w[1].0), "ZIP ranges sorted and disjoint");
    }

    #[test]
    fn us_zip_codes_give_their_zone() {
        assert_eq!(address_zone("US", Some("07030")), Some(Tz::America__New_York)); // Hoboken, NJ
        assert_eq!(address_zone("us", Some("90012-3456")), Some(Tz::America__Los_Angeles));
        assert_eq!(address_zone("US", Some("60606")), Some(Tz::America__Chicago));
        assert_eq!(address_zone("US", Some("85004")), Some(Tz::America__Phoenix));
        assert_eq!(address_zone("US", Some("96813")), Some(Tz::Pacific__Honolulu));
        assert_eq!(address_zone("US", Some("7030")), None);
        assert_eq!(address_zone("US", Some("ABCDE")), None);
        assert_eq!(address_zone("US", None), None);
    }

    #[test]
    fn a_one_zone_country_gives_its_zone_and_a_many_zone_one_none() {
        assert_eq!(address_zone("FR", None), Some(Tz::Europe__Paris));
        assert_eq!(address_zone("GB", Some("SW1A 1AA")), Some(Tz::Europe__London));
        assert_eq!(address_zone("CA", Some("M5V 2T6")), None);
        assert_eq!(address_zone("ZZ", None), None);
    }

    #[test]
    fn phone_prefixes_give_their_zones() {
        assert_eq!(phone_zones("+12015550134"), vec![Tz::America__New_York]);
        assert_eq!(phone_zones("+14155550134"), vec![Tz::America__Los_Angeles]);
        assert_eq!(phone_zones("+442079460958"), vec![Tz::Europe__London]);
        assert_eq!(phone_zones("+61732245000"), vec![Tz::Australia__Brisbane]);
        assert_eq!(phone_zones("+14165550134"), vec![Tz::America__Toronto]);
        assert_eq!(phone_zones("+4930901820"), vec![Tz::Europe__Berlin]);
        assert_eq!(phone_zones("+81312345678"), vec![Tz::Asia__Tokyo]);
        assert!(phone_zones("+18005550134").is_empty(), "toll-free spans the continent");
        assert!(phone_zones("not a number").is_empty());
    }

    #[test]
    fn a_given_zone_wins_and_utc_names_none() {
        let nj = address(Some("US"), "07030");
        let given = DebtorZone::resolve(Some("America/Denver"), &nj, Some("+14155550134"), US);
        assert_eq!((given.timezone.as_str(), given.source), ("America/Denver", ZoneSource::Given));
        assert!(given.alternates.is_empty());
        let utc = DebtorZone::resolve(Some("UTC"), &nj, None, US);
        assert_eq!((utc.timezone.as_str(), utc.source), ("America/New_York", ZoneSource::Address));
    }

    #[test]
    fn the_address_comes_first_and_a_disagreeing_phone_is_kept_beside_it() {
        let nj = address(None, "07030");
        let agree = DebtorZone::derive(&nj, Some("+12015550134"), US);
        assert_eq!((agree.timezone.as_str(), agree.source), ("America/New_York", ZoneSource::Address));
        assert!(agree.alternates.is_empty());
        let disagree = DebtorZone::derive(&nj, Some("+14155550134"), US);
        assert_eq!(disagree.timezone, "America/New_York");
        assert_eq!(disagree.alternates, vec!["America/Los_Angeles".to_owned()]);
    }

    #[test]
    fn the_phone_speaks_when_the_address_cannot_and_nothing_is_unknown() {
        let phone = DebtorZone::derive(&Address::default(), Some("+13125550134"), US);
        assert_eq!((phone.timezone.as_str(), phone.source), ("America/Chicago", ZoneSource::Phone));
        assert_eq!(
            DebtorZone::derive(&Address::default(), Some("+18005550134"), US),
            DebtorZone::unknown()
        );
        assert_eq!(DebtorZone::derive(&address(Some("CA"), "M5V 2T6"), None, US), DebtorZone::unknown());
        let empty_in_france = DebtorZone::derive(&Address::default(), None, country::Id::FR);
        assert_eq!(
            empty_in_france,
            DebtorZone::unknown(),
            "no address says nothing, whatever the agency's region"
        );
    }
}
