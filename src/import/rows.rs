//! One row, validated exactly like an API body: the cells become a `CreateAccount` (or a
//! patch of the existing account) and go through the same `AccountFields` checks.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use phonenumber::country;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::columns::{Column, Mapping};
use crate::domain::account::{AccountFields, AccountStatus, Address, CreateAccount, PatchAccount};
use crate::domain::custom_field::{Catalog, FieldType};
use crate::domain::dates;
use crate::error::FieldError;
use crate::import::RowError;
use crate::import::locale::{self, Locale};

/// How each agent cell resolved: a user id, or why it cannot be assigned.
pub type Agents = HashMap<String, Result<Uuid, String>>;

/// How each portfolio cell resolved (by [`agent_key`] of a name or id): a live
/// portfolio's id, or why the account cannot be placed in it.
pub type Portfolios = HashMap<String, Result<Uuid, String>>;

/// What every row of one import shares.
pub struct Context<'a> {
    pub headers: &'a [String],
    pub mapping: &'a Mapping,
    pub region: country::Id,
    /// How the sheet writes amounts (see [`crate::import::locale`]).
    pub locale: Option<Locale>,
    pub agents: &'a Agents,
    pub portfolios: &'a Portfolios,
    /// The live custom field definitions rows are checked against.
    pub catalog: &'a Catalog,
}

/// A row's non-empty cells by field.
pub struct Values<'a> {
    cells: HashMap<Column, &'a str>,
    /// Custom field cells by key.
    custom: Vec<(&'a str, &'a str)>,
}

impl<'a> Values<'a> {
    pub fn new(mapping: &'a Mapping, cells: &'a [String]) -> Self {
        let filled = |cell: &'a String| Some(unquote(cell.trim())).filter(|c| !c.is_empty());
        let custom = mapping
            .custom
            .iter()
            .zip(cells)
            .filter_map(|(key, cell)| Some((key.as_deref()?, filled(cell)?)))
            .collect();
        let cells = mapping
            .columns
            .iter()
            .zip(cells)
            .filter_map(|(column, cell)| Some(((*column)?, filled(cell)?)))
            .collect();
        Self { cells, custom }
    }

    pub fn get(&self, column: Column) -> Option<&'a str> {
        self.cells.get(&column).copied()
    }

    fn owned(&self, column: Column) -> Option<String> {
        self.get(column).map(str::to_owned)
    }

    /// The account number the row names, normalised (upsert's key).
    pub fn account_number(&self) -> Option<Result<String, String>> {
        self.get(Column::AccountNumber).map(crate::domain::account::account_number)
    }
}

/// CSV exports prefix text that looks like a formula with `'`; an exported file comes
/// back with the original text.
fn unquote(text: &str) -> &str {
    match text.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => text,
    }
}

struct Errors<'a> {
    context: &'a Context<'a>,
    list: Vec<RowError>,
}

impl<'a> Errors<'a> {
    fn new(context: &'a Context<'a>) -> Self {
        Self { context, list: Vec::new() }
    }

    /// The header errors about `column` are filed under.
    fn header(&self, column: Column) -> String {
        let mapping = self.context.mapping;
        // Without an original_balance column, the current balance stands for both.
        let column = match column {
            Column::OriginalBalance if !mapping.has(column) => Column::CurrentBalance,
            other => other,
        };
        let header = mapping.header(self.context.headers, column);
        if header.is_empty() { column.name() } else { header }.to_owned()
    }

    /// The header a custom field's errors are filed under.
    fn custom_header(&self, key: &str) -> String {
        let context = self.context;
        let header = context.mapping.custom_header(context.headers, key);
        header.map_or_else(|| format!("custom_fields.{key}"), str::to_owned)
    }

    fn push(&mut self, column: Column, message: impl Into<String>) {
        let header = self.header(column);
        self.push_at(header, message.into());
    }

    fn push_at(&mut self, column: String, message: String) {
        let error = RowError { column, message };
        if !self.list.contains(&error) {
            self.list.push(error);
        }
    }

    fn refused_at(&self, header: &str) -> bool {
        self.list.iter().any(|e| e.column == header)
    }

    fn check<T>(&mut self, column: Column, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.push(column, message)).ok()
    }

    /// Field errors of the domain checks, named by the file's headers; a column whose
    /// cell was already refused keeps that, more specific, error.
    fn fields(&mut self, errors: Vec<FieldError>) {
        for error in errors {
            let header = match (error.field.strip_prefix("custom_fields."), column_of(&error.field)) {
                (Some(key), _) => self.custom_header(key),
                (None, Some(column)) => self.header(column),
                (None, None) => error.field,
            };
            if !self.refused_at(&header) {
                self.push_at(header, error.message);
            }
        }
    }
}

fn column_of(field: &str) -> Option<Column> {
    match field {
        "address.line1" => Some(Column::AddressLine1),
        "address.line2" => Some(Column::AddressLine2),
        "portfolio_id" => Some(Column::Portfolio),
        other => Column::from_header(other.trim_start_matches("address.")),
    }
}

/// The typed cells every mode reads the same way.
struct Typed {
    /// Amount cells as the API's plain decimals, read under the sheet's locale.
    original_balance: Option<String>,
    current_balance: Option<String>,
    status: Option<AccountStatus>,
    due_date: Option<NaiveDate>,
    next_action_at: Option<DateTime<Utc>>,
    agent: Option<Uuid>,
    tags: Option<Vec<String>>,
    do_not_call: Option<bool>,
    do_not_email: Option<bool>,
    cease_communication: Option<bool>,
    portfolio: Option<Uuid>,
    /// The custom field cells as the API's wire values.
    custom: Map<String, Value>,
}

fn typed(values: &Values<'_>, errors: &mut Errors<'_>) -> Typed {
    let context = errors.context;
    let (agents, sheet_locale) = (context.agents, context.locale);
    let mut amount = |column| {
        values
            .get(column)
            .and_then(|text| errors.check(column, locale::amount(text, sheet_locale)))
    };
    let (original_balance, current_balance) = (amount(Column::OriginalBalance), amount(Column::CurrentBalance));
    let mut flag = |column| values.get(column).and_then(|text| errors.check(column, parse_bool(text)));
    let (do_not_call, do_not_email, cease_communication) =
        (flag(Column::DoNotCall), flag(Column::DoNotEmail), flag(Column::CeaseCommunication));
    Typed {
        original_balance,
        current_balance,
        status: values
            .get(Column::Status)
            .and_then(|t| errors.check(Column::Status, parse_status(t))),
        due_date: values
            .get(Column::DueDate)
            .and_then(|t| errors.check(Column::DueDate, parse_date(t))),
        next_action_at: values
            .get(Column::NextActionAt)
            .and_then(|t| errors.check(Column::NextActionAt, parse_time(t))),
        agent: values.get(Column::AssignedAgentId).and_then(|t| {
            let resolved = agents.get(&agent_key(t)).cloned().unwrap_or_else(|| Err("no such user".to_owned()));
            errors.check(Column::AssignedAgentId, resolved)
        }),
        tags: values.get(Column::Tags).map(split_tags),
        do_not_call,
        do_not_email,
        cease_communication,
        portfolio: values.get(Column::Portfolio).and_then(|t| {
            let resolved = context.portfolios.get(&agent_key(t)).cloned();
            errors.check(Column::Portfolio, resolved.unwrap_or_else(|| Err("no such portfolio".to_owned())))
        }),
        custom: custom_cells(values, errors),
    }
}

/// The row's custom field cells as the API's wire values (a key whose definition was
/// deleted since the upload keeps its text); a cell that cannot be read is refused
/// under its column.
fn custom_cells(values: &Values<'_>, errors: &mut Errors<'_>) -> Map<String, Value> {
    let context = errors.context;
    let mut map = Map::new();
    for (key, text) in &values.custom {
        let read = match context.catalog.get(key) {
            Some(definition) => custom_value(definition.field_type, text, context.locale),
            None => Ok(Value::from(*text)),
        };
        match read {
            Ok(value) => {
                map.insert((*key).to_owned(), value);
            }
            Err(message) => {
                let header = errors.custom_header(key);
                errors.push_at(header, message);
            }
        }
    }
    map
}

/// A custom field's cell as the API's wire value for `field_type`: numbers and money
/// read under the sheet's locale, dates as dates are read, several list values
/// separated by `;` or `,`. The definition's own checks run after, as for the API.
fn custom_value(field_type: FieldType, text: &str, sheet_locale: Option<Locale>) -> Result<Value, String> {
    Ok(match field_type {
        FieldType::Text | FieldType::List => Value::from(text),
        FieldType::Number => {
            let plain = locale::amount(text, sheet_locale)?;
            serde_json::from_str::<serde_json::Number>(&plain)
                .map(Value::Number)
                .map_err(|_| format!("`{text}` is not a number"))?
        }
        FieldType::Money => Value::from(locale::amount(text, sheet_locale)?),
        FieldType::Date => Value::from(parse_date(text)?.to_string()),
        FieldType::Boolean => Value::Bool(parse_bool(text)?),
        FieldType::MultiList => Value::from(split_tags(text)),
    })
}

/// Validates a row that creates an account.
pub fn for_create(context: &Context<'_>, values: &Values<'_>) -> Result<AccountFields, Vec<RowError>> {
    let mut errors = Errors::new(context);
    let t = typed(values, &mut errors);
    let original = t.original_balance.clone().or_else(|| t.current_balance.clone());
    let body = CreateAccount {
        account_number: values.owned(Column::AccountNumber),
        external_ref: values.owned(Column::ExternalRef),
        debtor_name: values.owned(Column::DebtorName).unwrap_or_default(),
        email: values.owned(Column::Email),
        phone: values.owned(Column::Phone),
        address: Some(Address {
            line1: values.owned(Column::AddressLine1),
            line2: values.owned(Column::AddressLine2),
            city: values.owned(Column::City),
            region: values.owned(Column::Region),
            postal_code: values.owned(Column::PostalCode),
            country: values.owned(Column::Country),
        }),
        timezone: values.owned(Column::Timezone),
        status: t.status,
        original_balance: original.unwrap_or_default(),
        current_balance: t.current_balance,
        currency: values.owned(Column::Currency).unwrap_or_default(),
        due_date: t.due_date,
        assigned_agent_id: t.agent,
        next_action_at: t.next_action_at,
        tags: t.tags,
        custom_fields: Some(t.custom),
        do_not_call: t.do_not_call,
        do_not_email: t.do_not_email,
        cease_communication: t.cease_communication,
        portfolio_id: t.portfolio,
    };
    match AccountFields::from_create(body, context.region, context.catalog) {
        Ok(fields) if errors.list.is_empty() => Ok(fields),
        Ok(_) => Err(errors.list),
        Err(field_errors) => {
            errors.fields(field_errors);
            Err(errors.list)
        }
    }
}

/// Validates a row that updates `current` (at `version`): its non-empty cells replace
/// those fields. A row exported before the account last changed is refused
/// (`changed_since_export`), so re-importing an old export cannot undo payments. The
/// current balance follows the payments: a row may correct the original debt, which
/// moves the balance by as much, and may not set the balance itself.
pub fn for_update(
    context: &Context<'_>,
    values: &Values<'_>,
    current: AccountFields,
    version: i64,
) -> Result<AccountFields, Vec<RowError>> {
    let mut errors = Errors::new(context);
    if let Some(text) = values.get(Column::Version) {
        match text.parse::<i64>() {
            Ok(exported) if exported < version => errors.push(
                Column::Version,
                format!(
                    "changed_since_export: the account changed after this row was exported (version {exported}, now {version}); export it again"
                ),
            ),
            Ok(_) => {}
            Err(_) => errors.push(Column::Version, "must be the whole number an export wrote"),
        }
    }
    let (old_original, old_current) = (current.original_balance, current.current_balance);
    let t = typed(values, &mut errors);
    // The row's custom cells replace those keys; the others stay.
    let custom_fields = (!t.custom.is_empty()).then(|| {
        let mut map = current.custom_fields.clone();
        map.extend(t.custom);
        map
    });
    let address_columns = [
        Column::AddressLine1,
        Column::AddressLine2,
        Column::City,
        Column::Region,
        Column::PostalCode,
        Column::Country,
    ];
    let address = address_columns.iter().any(|c| values.get(*c).is_some()).then(|| {
        let old = current.address.clone();
        Address {
            line1: values.owned(Column::AddressLine1).or(old.line1),
            line2: values.owned(Column::AddressLine2).or(old.line2),
            city: values.owned(Column::City).or(old.city),
            region: values.owned(Column::Region).or(old.region),
            postal_code: values.owned(Column::PostalCode).or(old.postal_code),
            country: values.owned(Column::Country).or(old.country),
        }
    });
    let patch = PatchAccount {
        account_number: None,
        external_ref: values.owned(Column::ExternalRef).map(Some),
        debtor_name: values.owned(Column::DebtorName),
        email: values.owned(Column::Email).map(Some),
        phone: values.owned(Column::Phone).map(Some),
        address,
        timezone: values.owned(Column::Timezone),
        status: t.status,
        original_balance: t.original_balance,
        current_balance: None,
        currency: values.owned(Column::Currency),
        due_date: t.due_date.map(Some),
        assigned_agent_id: t.agent.map(Some),
        next_action_at: t.next_action_at.map(Some),
        tags: t.tags,
        custom_fields,
        do_not_call: t.do_not_call,
        do_not_email: t.do_not_email,
        cease_communication: t.cease_communication,
        portfolio_id: t.portfolio.map(Some),
    };
    match current.apply(patch, context.region, context.catalog) {
        Ok(mut fields) => {
            fields.current_balance = old_current + (fields.original_balance - old_original);
            if fields.current_balance.is_sign_negative() {
                errors.push(
                    Column::OriginalBalance,
                    format!(
                        "may not fall below the {} already paid",
                        fields.currency.format(old_original - old_current)
                    ),
                );
            }
            if let Some(text) = &t.current_balance
                && fields.currency.parse_amount(text).ok() != Some(fields.current_balance)
            {
                errors.push(
                    Column::CurrentBalance,
                    format!(
                        "current_balance_set_by_payments: the balance follows the account's payments ({}); an import cannot set it",
                        fields.currency.format(fields.current_balance)
                    ),
                );
            }
            if errors.list.is_empty() { Ok(fields) } else { Err(errors.list) }
        }
        Err(field_errors) => {
            errors.fields(field_errors);
            Err(errors.list)
        }
    }
}

/// Agent cells are looked up by id or by email, case-insensitively.
pub fn agent_key(text: &str) -> String {
    text.trim().to_lowercase()
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "x" => Ok(true),
        "false" | "no" | "n" | "0" => Ok(false),
        _ => Err(format!("`{text}` is not yes/no, true/false or 1/0")),
    }
}

fn parse_status(text: &str) -> Result<AccountStatus, String> {
    let key: String = text
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect();
    AccountStatus::parse(&key).ok_or_else(|| {
        let known: Vec<&str> = AccountStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("`{text}` is not a status; use one of {}", known.join(", "))
    })
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| format!("`{text}` is not a date; use YYYY-MM-DD or a date cell"))?;
    supported_year(date.year(), date)
}

fn supported_year<T>(year: i32, value: T) -> Result<T, String> {
    if dates::YEARS.contains(&year) {
        Ok(value)
    } else {
        Err(dates::OUT_OF_RANGE.to_owned())
    }
}

/// RFC 3339; a time without offset or a bare date is UTC.
fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").map(|t| t.and_utc()))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").map(|t| t.and_utc()))
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc()))
        .map_err(|_| format!("`{text}` is not a time; use RFC 3339 (2026-05-01T09:00:00Z), YYYY-MM-DD or a date cell"))
        .and_then(|time| supported_year(time.year(), time))
}

fn split_tags(text: &str) -> Vec<String> {
    text.split([';', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_PORTFOLIOS: std::sync::LazyLock<Portfolios> = std::sync::LazyLock::new(Portfolios::new);
    static NO_FIELDS: std::sync::LazyLock<Catalog> = std::sync::LazyLock::new(Catalog::default);

    fn context<'a>(headers: &'a [String], mapping: &'a Mapping, agents: &'a Agents) -> Context<'a> {
        Context {
            headers,
            mapping,
            region: country::Id::US,
            locale: None,
            agents,
            portfolios: &NO_PORTFOLIOS,
            catalog: &NO_FIELDS,
        }
    }

    #[test]
    fn a_row_becomes_the_fields_the_api_would_store() {
        let headers: Vec<String> = ["Customer Name", "Amount Due", "Currency", "Phone Number", "Due", "DNC", "Tags"]
            .map(String::from)
            .to_vec();
        let mapping = Mapping::new(&headers, &NO_FIELDS).unwrap();
        let agents = Agents::new();
        let cells: Vec<String> = [
            "  Ada Lovelace ",
            "1250.5",
            "usd",
            "(415) 555-0123",
            "2026-03-01",
            "yes",
            "vip; Hardship",
        ]
        .map(String::from)
        .to_vec();
        let fields = for_create(&context(&headers, &mapping, &agents), &Values::new(&mapping, &cells)).unwrap();
        assert_eq!(fields.debtor_name, "Ada Lovelace");
        assert_eq!(fields.original_balance, "1250.50".parse::<rust_decimal::Decimal>().unwrap());
        assert_eq!(fields.current_balance, fields.original_balance);
        assert_eq!(fields.phone.as_deref(), Some("+14155550123"));
        assert_eq!(fields.due_date, NaiveDate::from_ymd_opt(2026, 3, 1));
        assert!(fields.do_not_call);
        assert_eq!(fields.tags, ["hardship", "vip"]);
    }

    #[test]
    fn errors_name_the_files_columns() {
        let headers: Vec<String> = ["Debtor", "Balance", "CCY", "E-mail", "Due Date", "Status"]
            .map(String::from)
            .to_vec();
        let mapping = Mapping::new(&headers, &NO_FIELDS).unwrap();
        let agents = Agents::new();
        let cells: Vec<String> = ["", "12.345", "USD", "not-an-email", "31/12/2026", "sleeping"]
            .map(String::from)
            .to_vec();
        let errors = for_create(&context(&headers, &mapping, &agents), &Values::new(&mapping, &cells)).unwrap_err();
        let columns: Vec<&str> = errors.iter().map(|e| e.column.as_str()).collect();
        for expected in ["Debtor", "Balance", "E-mail", "Due Date", "Status"] {
            assert!(columns.contains(&expected), "{expected} missing from {errors:?}");
        }
    }

    #[test]
    fn neutralised_cells_come_back_as_typed() {
        assert_eq!(unquote("'+14155550123"), "+14155550123");
        assert_eq!(unquote("'=SUM(A1)"), "=SUM(A1)");
        assert_eq!(unquote("'Connor"), "'Connor");
    }
}
