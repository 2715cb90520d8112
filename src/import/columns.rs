//! Header mapping: each column's name is compared case-, space- and
//! punctuation-insensitively with the account fields and their common aliases, then
//! with the keys and labels of the custom field definitions.

use serde::{Deserialize, Serialize};

use crate::domain::custom_field::{Catalog, FieldType};
use crate::error::FieldError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Column {
    AccountNumber,
    ExternalRef,
    DebtorName,
    Email,
    Phone,
    AddressLine1,
    AddressLine2,
    City,
    Region,
    PostalCode,
    Country,
    Timezone,
    Status,
    OriginalBalance,
    CurrentBalance,
    Currency,
    DueDate,
    AssignedAgentId,
    NextActionAt,
    Tags,
    DoNotCall,
    DoNotEmail,
    CeaseCommunication,
    /// The portfolio, by name or id.
    Portfolio,
    /// The account's version when exported: an upsert row older than the account is refused.
    Version,
}

/// Each column: its canonical header (the export's), what it holds, and its aliases.
const TABLE: &[(Column, &str, &str, &[&str])] = &[
    (
        Column::AccountNumber,
        "account_number",
        "3-32 letters, digits, - or _; assigned when empty (create)",
        &["account", "accountno", "accountnum", "acctnumber", "acctno", "acct", "loannumber"],
    ),
    (
        Column::ExternalRef,
        "external_ref",
        "your own reference",
        &[
            "externalreference",
            "reference",
            "ref",
            "customerid",
            "clientref",
            "clientreference",
            "customernumber",
        ],
    ),
    (
        Column::DebtorName,
        "debtor_name",
        "required to create",
        &[
            "debtor",
            "customername",
            "customer",
            "name",
            "fullname",
            "clientname",
            "borrower",
            "borrowername",
        ],
    ),
    (Column::Email, "email", "email address", &["emailaddress", "mail"]),
    (
        Column::Phone,
        "phone",
        "any format; normalised to E.164",
        &[
            "phonenumber",
            "phoneno",
            "mobile",
            "mobilenumber",
            "telephone",
            "tel",
            "cell",
            "cellphone",
            "contactnumber",
        ],
    ),
    (
        Column::AddressLine1,
        "address_line1",
        "",
        &["address", "address1", "street", "streetaddress"],
    ),
    (Column::AddressLine2, "address_line2", "", &["address2"]),
    (Column::City, "city", "", &["town"]),
    (
        Column::Region,
        "region",
        "state, province or county",
        &["state", "province", "county"],
    ),
    (Column::PostalCode, "postal_code", "", &["postcode", "zip", "zipcode"]),
    (Column::Country, "country", "ISO 3166 alpha-2, e.g. US", &["countrycode"]),
    (
        Column::Timezone,
        "timezone",
        "IANA name, e.g. America/New_York; when empty, derived from the address and phone",
        &["tz", "timezonename"],
    ),
    (
        Column::Status,
        "status",
        "active, delinquent, promise_to_pay, payment_plan, disputed, paid, settled or closed",
        &["accountstatus"],
    ),
    (
        Column::OriginalBalance,
        "original_balance",
        "exact decimal, e.g. 1250.00; defaults to current_balance",
        &["originalamount", "principal", "originaldebt", "debtamount"],
    ),
    (
        Column::CurrentBalance,
        "current_balance",
        "exact decimal; defaults to original_balance",
        &[
            "balance",
            "amountdue",
            "balancedue",
            "outstanding",
            "outstandingbalance",
            "amountowed",
        ],
    ),
    (
        Column::Currency,
        "currency",
        "ISO 4217 code, e.g. USD; required to create",
        &["ccy", "currencycode"],
    ),
    (Column::DueDate, "due_date", "YYYY-MM-DD or a date cell", &["datedue", "due"]),
    (
        Column::AssignedAgentId,
        "assigned_agent_id",
        "the agent's user id or email",
        &["agentid", "assignedagent", "agent", "agentemail", "assignedto"],
    ),
    (
        Column::NextActionAt,
        "next_action_at",
        "RFC 3339 time, YYYY-MM-DD or a date cell (UTC)",
        &["nextaction", "nextactiondate", "followup", "followupdate"],
    ),
    (Column::Tags, "tags", "separated by ; or ,", &["tag", "labels"]),
    (Column::DoNotCall, "do_not_call", "yes/no, true/false or 1/0", &["dnc"]),
    (Column::DoNotEmail, "do_not_email", "yes/no, true/false or 1/0", &[]),
    (
        Column::CeaseCommunication,
        "cease_communication",
        "yes/no, true/false or 1/0",
        &["cease"],
    ),
    (
        Column::Portfolio,
        "portfolio",
        "the live portfolio's name or id",
        &["portfolioname", "portfolioid"],
    ),
    (
        Column::Version,
        "version",
        "the account's version in an export; upsert refuses a row older than the account",
        &["searchversion", "rowversion"],
    ),
];

/// The columns of the import template: every built-in one, then each live custom field
/// (headed by its key; its label maps too), with what it holds.
pub fn template_columns(catalog: &Catalog) -> Vec<(String, String)> {
    let builtin = Column::all().map(|(_, name, help)| (name.to_owned(), help.to_owned()));
    let custom = catalog.definitions().map(|d| {
        let mut help = format!("{} (custom field, {}", d.label, d.field_type.as_str());
        if d.required {
            help.push_str(", required");
        }
        if let Some(allowed) = &d.rules.allowed {
            help.push_str(&format!("; one of: {}", allowed.join(", ")));
        }
        if d.field_type == FieldType::MultiList {
            help.push_str("; several separated by ; or ,");
        }
        help.push(')');
        (d.key.clone(), help)
    });
    builtin.chain(custom).collect()
}

/// Columns of an export that are computed, so a re-imported export skips them.
const READ_ONLY: &[&str] = &["id", "days_past_due", "bucket", "assigned_agent_name", "created_at", "updated_at"];

/// The column the error file adds; it is ignored when that file comes back.
pub const ERROR_COLUMN: &str = "import_errors";

impl Column {
    pub fn all() -> impl Iterator<Item = (Column, &'static str, &'static str)> {
        TABLE.iter().map(|(c, name, help, _)| (*c, *name, *help))
    }

    pub fn name(self) -> &'static str {
        TABLE.iter().find(|row| row.0 == self).map(|row| row.1).unwrap_or_default()
    }

    /// The column a header means, if any.
    pub fn from_header(header: &str) -> Option<Column> {
        let key = squash(header);
        TABLE
            .iter()
            .find(|(_, name, _, aliases)| squash(name) == key || aliases.contains(&key.as_str()))
            .map(|row| row.0)
    }
}

/// Lowercase letters and digits only: "Phone Number", "phone_number" and "PHONE-NUMBER"
/// are the same header.
fn squash(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// How a file's columns map to fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    /// Per file column, the field it fills.
    pub columns: Vec<Option<Column>>,
    /// Per file column, the custom field (its key) it fills when no built-in field does.
    #[serde(default)]
    pub custom: Vec<Option<String>>,
    /// Headers that match no field (their cells are not imported).
    pub unknown: Vec<String>,
}

impl Mapping {
    /// Maps `headers` to the built-in fields, then to the live definitions of `catalog`
    /// by key or label (a definition's key and label never read as a built-in column).
    pub fn new(headers: &[String], catalog: &Catalog) -> Result<Self, Vec<FieldError>> {
        let mut mapping = Mapping::default();
        let mut errors = Vec::new();
        for (index, header) in headers.iter().enumerate() {
            let key = squash(header);
            let column = Column::from_header(header);
            let custom = match column {
                Some(_) => None,
                None => catalog
                    .definitions()
                    .find(|d| squash(&d.key) == key || squash(&d.label) == key)
                    .map(|d| d.key.clone()),
            };
            let first = match (&column, &custom) {
                (Some(column), _) => mapping.columns.iter().position(|c| c == &Some(*column)).map(|i| (i, column.name())),
                (None, Some(field)) => mapping.custom.iter().position(|c| c == &custom).map(|i| (i, field.as_str())),
                (None, None) => None,
            };
            if let Some((first, name)) = first {
                errors.push(FieldError::new(
                    "file",
                    format!("columns {:?} and {header:?} both mean {name}; keep one", headers[first]),
                ));
            }
            let skipped = key.is_empty() || READ_ONLY.iter().chain([&ERROR_COLUMN]).any(|r| squash(r) == key);
            if column.is_none() && custom.is_none() && !skipped {
                mapping.unknown.push(headers[index].clone());
            }
            mapping.columns.push(column);
            mapping.custom.push(custom);
        }
        if errors.is_empty() { Ok(mapping) } else { Err(errors) }
    }

    pub fn has(&self, column: Column) -> bool {
        self.columns.contains(&Some(column))
    }

    /// The header of the column that fills the custom field `key`, for messages.
    pub fn custom_header<'a>(&self, headers: &'a [String], key: &str) -> Option<&'a str> {
        let index = self.custom.iter().position(|c| c.as_deref() == Some(key))?;
        headers.get(index).map(String::as_str)
    }

    /// The header a column came from, for messages.
    pub fn header<'a>(&self, headers: &'a [String], column: Column) -> &'a str {
        self.columns
            .iter()
            .position(|c| *c == Some(column))
            .and_then(|i| headers.get(i))
            .map_or("", String::as_str)
    }

    /// Columns a mode needs, as errors naming what is missing.
    pub fn require(&self, needed: &[&[Column]]) -> Result<(), Vec<FieldError>> {
        let missing: Vec<FieldError> = needed
            .iter()
            .filter(|any_of| !any_of.iter().any(|c| self.has(*c)))
            .map(|any_of| {
                let names: Vec<&str> = any_of.iter().map(|c| c.name()).collect();
                FieldError::new("file", format!("missing column {}", names.join(" or ")))
            })
            .collect();
        if missing.is_empty() { Ok(()) } else { Err(missing) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn headers_match_names_and_aliases_loosely() {
        assert_eq!(Column::from_header("Customer Name"), Some(Column::DebtorName));
        assert_eq!(Column::from_header("DEBTOR"), Some(Column::DebtorName));
        assert_eq!(Column::from_header(" phone number "), Some(Column::Phone));
        assert_eq!(Column::from_header("Amount Due"), Some(Column::CurrentBalance));
        assert_eq!(Column::from_header("account_number"), Some(Column::AccountNumber));
        assert_eq!(Column::from_header("Account #"), Some(Column::AccountNumber));
        assert_eq!(Column::from_header("E-mail"), Some(Column::Email));
        assert_eq!(Column::from_header("Favourite colour"), None);
    }

    #[test]
    fn unknown_and_duplicate_columns_are_reported() {
        let none = Catalog::default();
        let mapping = Mapping::new(&headers(&["Name", "Colour", "id", "bucket", ERROR_COLUMN]), &none).unwrap();
        assert_eq!(mapping.unknown, ["Colour"]);
        let errors = Mapping::new(&headers(&["Name", "Debtor"]), &none).unwrap_err();
        assert!(errors[0].message.contains("both mean debtor_name"), "{errors:?}");
        let missing = mapping.require(&[&[Column::Currency], &[Column::OriginalBalance, Column::CurrentBalance]]);
        assert_eq!(missing.unwrap_err().len(), 2);
    }

    #[test]
    fn custom_fields_map_by_key_or_label_once() {
        let definition =
            |body: serde_json::Value| crate::domain::custom_field::Definition::from_create(serde_json::from_value(body).unwrap()).unwrap();
        let catalog = Catalog::new([
            definition(serde_json::json!({"key": "risk_score", "label": "Risk score", "type": "number"})),
            definition(serde_json::json!({"key": "charge_off", "label": "Charge-off date", "type": "date"})),
        ]);
        let mapping = Mapping::new(&headers(&["Name", "RISK SCORE", "charge_off", "Colour"]), &catalog).unwrap();
        assert_eq!(
            mapping.custom,
            [None, Some("risk_score".to_owned()), Some("charge_off".to_owned()), None]
        );
        assert_eq!(mapping.unknown, ["Colour"], "only columns nothing takes are unmapped");
        assert_eq!(
            mapping.custom_header(&headers(&["Name", "RISK SCORE"]), "risk_score"),
            Some("RISK SCORE")
        );
        let errors = Mapping::new(&headers(&["risk_score", "Risk Score"]), &catalog).unwrap_err();
        assert!(errors[0].message.contains("both mean risk_score"), "{errors:?}");
    }
}
