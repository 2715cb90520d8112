//! The account list's custom field grammar, resolved against the live definitions:
//! `cf.<key>=v1,v2` (one of these values), `cf.<key>.gte|gt|lte|lt=v` (number, money and
//! date fields), `cf.<key>.exists=true|false`, `sort=[-]cf.<key>` (sortable fields) and
//! `facets=cf.<key>` (list, multi_list, boolean and text fields). Filters and facets need
//! a filterable field (docs/features/custom-fields.md, "Searching by custom fields").

use rust_decimal::Decimal;

use crate::domain::custom_field::{Catalog, Definition, FieldType, MAX_ALLOWED_VALUES, MAX_TEXT_LENGTH, NUMBER_LIMIT};
use crate::domain::document::ten_thousandths;
use crate::domain::money::MAX_AMOUNT_UNITS;
use crate::domain::search::{CustomField, CustomFilter, CustomKind, CustomTest, FieldKey};
use crate::lists::params::Value;
use crate::lists::values;

/// The most custom field filters one query takes.
pub const MAX_FILTERS: usize = 50;

const OPERATORS: &str = "gte, gt, lte or lt (number, money and date fields) or exists";

/// Whether a parameter name or a sort or facet item names a custom field.
pub fn is_custom(name: &str) -> bool {
    name.starts_with(FieldKey::PREFIX)
}

/// Whether a query string names a custom field anywhere (so the definitions are needed).
pub fn named_in(raw: &str) -> bool {
    form_urlencoded::parse(raw.as_bytes())
        .any(|(name, value)| is_custom(&name) || (matches!(&*name, "sort" | "facets") && value.contains(FieldKey::PREFIX)))
}

/// The live definition of `key`, or why there is none to use.
fn definition<'c>(catalog: &'c Catalog, key: &str) -> Result<&'c Definition, String> {
    catalog
        .get(key)
        .ok_or_else(|| format!("there is no custom field `{key}` (or it was deleted)"))
}

fn field_of(definition: &Definition) -> CustomField {
    CustomField {
        key: FieldKey::new(&definition.key),
        kind: CustomKind::of(definition.field_type),
    }
}

/// What a value of an ordered type must be.
fn expected(field_type: FieldType) -> String {
    match field_type {
        FieldType::Number => format!("a number between -{NUMBER_LIMIT} and {NUMBER_LIMIT} with at most 4 decimal places"),
        FieldType::Money => format!("an amount between -{MAX_AMOUNT_UNITS} and {MAX_AMOUNT_UNITS} with at most 4 decimal places"),
        _ => values::DATE.to_owned(),
    }
}

/// An ordered type's value in its index units (see [`CustomKind`]).
fn units(field_type: FieldType, text: &str) -> Option<i64> {
    match field_type {
        FieldType::Number | FieldType::Money => {
            let limit = if field_type == FieldType::Number {
                NUMBER_LIMIT
            } else {
                MAX_AMOUNT_UNITS
            };
            let amount = Decimal::from_str_exact(text).ok().filter(|d| d.abs() < Decimal::from(limit))?;
            ten_thousandths(amount)
        }
        _ => values::date(text).map(crate::domain::queue::days),
    }
}

/// The values `cf.<key>=` names: one for an ordered type, any number for the others
/// (list values as the definition spells them, matched ignoring case).
fn equal(definition: &Definition, value: &mut Value<'_>) -> Option<CustomTest> {
    let field_type = definition.field_type;
    if field_type.is_ordered() {
        if value.items().count() > 1 {
            value.refuse(format!("takes one {} value; use .gte and .lte for a range", field_type.as_str()));
            return None;
        }
        let unit = value.one(|t| units(field_type, t), &expected(field_type))?;
        return Some(CustomTest::Range {
            lo: Some(unit),
            hi: Some(unit),
        });
    }
    if value.items().count() > MAX_ALLOWED_VALUES {
        value.refuse(format!("takes at most {MAX_ALLOWED_VALUES} values"));
        return None;
    }
    let allowed = definition.rules.allowed.as_deref().unwrap_or_default();
    let chosen = match field_type {
        FieldType::Boolean => value.each(|t| values::boolean(t).map(|b| b.to_string()), "true or false"),
        FieldType::Text => value.each(
            |t| (t.chars().count() <= MAX_TEXT_LENGTH as usize).then(|| t.to_owned()),
            &format!("a text of at most {MAX_TEXT_LENGTH} characters"),
        ),
        _ => {
            let shown: Vec<&str> = allowed.iter().take(10).map(String::as_str).collect();
            let more = if allowed.len() > 10 { ", ..." } else { "" };
            value.each(
                |t| allowed.iter().find(|a| a.to_lowercase() == t.to_lowercase()).cloned(),
                &format!("one of the field's values ({}{more})", shown.join(", ")),
            )
        }
    };
    (!chosen.is_empty()).then_some(CustomTest::OneOf(chosen))
}

/// Reads a parameter `cf.<key>` or `cf.<key>.<operator>` into `filters`; `false` when the
/// name is not a custom field's.
pub fn filter(catalog: &Catalog, filters: &mut Vec<CustomFilter>, value: &mut Value<'_>) -> bool {
    let Some(rest) = value.name().strip_prefix(FieldKey::PREFIX) else {
        return false;
    };
    let (key, operator) = match rest.split_once('.') {
        Some((key, operator)) => (key.to_owned(), Some(operator.to_owned())),
        None => (rest.to_owned(), None),
    };
    let definition = match definition(catalog, &key) {
        Ok(definition) => definition,
        Err(message) => {
            value.refuse(message);
            return true;
        }
    };
    if !definition.flags.filterable {
        value.refuse(format!("the custom field `{key}` is not filterable"));
        return true;
    }
    if filters.len() >= MAX_FILTERS {
        value.refuse(format!("a list takes at most {MAX_FILTERS} custom field filters"));
        return true;
    }
    let field_type = definition.field_type;
    let test = match operator.as_deref() {
        None => equal(definition, value),
        Some("exists") => value.boolean().map(CustomTest::Exists),
        Some(operator @ ("gte" | "gt" | "lte" | "lt")) if field_type.is_ordered() => value
            .one(|t| units(field_type, t), &expected(field_type))
            .map(|unit| match operator {
                "gte" => CustomTest::Range { lo: Some(unit), hi: None },
                "gt" => CustomTest::Range {
                    lo: Some(unit.saturating_add(1)),
                    hi: None,
                },
                "lte" => CustomTest::Range { lo: None, hi: Some(unit) },
                _ => CustomTest::Range {
                    lo: None,
                    hi: Some(unit.saturating_sub(1)),
                },
            }),
        Some(operator @ ("gte" | "gt" | "lte" | "lt")) => {
            value.refuse(format!(
                "`.{operator}` applies to number, money and date fields; `{key}` is a {} field",
                field_type.as_str()
            ));
            None
        }
        Some(other) => {
            value.refuse(format!("unknown operator `.{other}`; use {OPERATORS}"));
            None
        }
    };
    if let Some(test) = test {
        filters.push(CustomFilter {
            field: field_of(definition),
            test,
        });
    }
    true
}

/// The field `sort=[-]cf.<key>` names: a sortable one.
pub fn sort(catalog: &Catalog, name: &str) -> Result<CustomField, String> {
    let key = name.strip_prefix(FieldKey::PREFIX).unwrap_or(name);
    let definition = definition(catalog, key)?;
    if !definition.flags.sortable {
        return Err(format!("the custom field `{key}` is not sortable"));
    }
    Ok(field_of(definition))
}

/// The field `facets=cf.<key>` names: a filterable list, multi_list, boolean or text one.
pub fn facet(catalog: &Catalog, name: &str) -> Result<CustomField, String> {
    let key = name.strip_prefix(FieldKey::PREFIX).unwrap_or(name);
    let definition = definition(catalog, key)?;
    if !definition.flags.filterable {
        return Err(format!("the custom field `{key}` is not filterable"));
    }
    if definition.field_type.is_ordered() {
        return Err(format!(
            "`{key}` is a {} field; facets count list, multi_list, boolean and text fields",
            definition.field_type.as_str()
        ));
    }
    Ok(field_of(definition))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::domain::principal::Principal;
    use crate::domain::role::Role;
    use crate::domain::search::{Facet, SortField};
    use crate::error::Error;
    use crate::lists::accounts::parse;

    fn catalog() -> Catalog {
        let bodies = [
            json!({"key": "product", "label": "Product", "type": "list", "rules": {"allowed": ["Card", "Loan"]}, "filterable": true}),
            json!({"key": "score", "label": "Score", "type": "number", "filterable": true, "sortable": true}),
            json!({"key": "limit", "label": "Limit", "type": "money", "filterable": true}),
            json!({"key": "charged", "label": "Charged", "type": "date", "filterable": true, "sortable": true}),
            json!({"key": "secured", "label": "Secured", "type": "boolean", "filterable": true}),
            json!({"key": "note", "label": "Note", "type": "text", "searchable": true}),
        ];
        Catalog::new(bodies.map(|body| Definition::from_create(serde_json::from_value(body).unwrap()).unwrap()))
    }

    fn caller() -> Principal {
        Principal {
            user_id: Uuid::nil(),
            session_id: Uuid::nil(),
            email: String::new(),
            name: String::new(),
            role: Role::Agent,
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()
    }

    fn refused(raw: &str) -> Vec<String> {
        match parse(raw, &caller(), today(), &catalog()) {
            Err(Error::Problem(problem)) => problem.errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{raw}: expected a problem, got {other:?}"),
        }
    }

    #[test]
    fn filters_sorts_and_facets_resolve_against_the_definitions() {
        let q = parse(
            "cf.product=card,LOAN&cf.score.gt=600.5&cf.score.lte=700&cf.limit=12.34&cf.charged.lt=2026-01-02&cf.secured.exists=false&sort=-cf.score&facets=cf.product,status,cf.secured",
            &caller(),
            today(),
            &catalog(),
        )
        .unwrap();
        let tests: Vec<&CustomTest> = q.custom.iter().map(|f| &f.test).collect();
        assert_eq!(
            tests,
            [
                &CustomTest::OneOf(vec!["Card".into(), "Loan".into()]),
                &CustomTest::Range {
                    lo: Some(6_005_001),
                    hi: None
                },
                &CustomTest::Range {
                    lo: None,
                    hi: Some(7_000_000)
                },
                &CustomTest::Range {
                    lo: Some(123_400),
                    hi: Some(123_400)
                },
                &CustomTest::Range {
                    lo: None,
                    hi: Some(crate::domain::queue::days(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()))
                },
                &CustomTest::Exists(false),
            ]
        );
        assert_eq!(q.custom[1].field.kind, CustomKind::Number);
        assert_eq!(q.custom[1].field.key.name(), "cf.score");
        match q.sort.field {
            SortField::Custom(field) => assert_eq!((field.key.key(), q.sort.descending), ("score", true)),
            other => panic!("sorted by {other:?}"),
        }
        let names: Vec<&str> = q.facets.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["status", "cf.product", "cf.secured"]);
        assert!(matches!(q.facets[1], Facet::Custom(_)));
        assert!(named_in("sort=-cf.score") && named_in("facets=status,cf.x") && named_in("cf.x.exists=true"));
        assert!(!named_in("q=cf&sort=-balance&status=active"));
    }

    #[test]
    fn every_bad_custom_parameter_is_named() {
        assert_eq!(
            refused(
                "cf.nothing=1&cf.note=x&cf.product=bike&cf.product.gte=1&cf.score=1,2&cf.score.between=3&sort=cf.product&facets=cf.score"
            ),
            [
                "cf.nothing",
                "cf.note",
                "cf.product",
                "cf.product.gte",
                "cf.score",
                "cf.score.between",
                "sort",
                "facets"
            ]
        );
        assert_eq!(
            refused("cf.score=1.00001&cf.limit.gte=1000000000000&cf.charged=2026-13-01&cf.secured=maybe"),
            ["cf.score", "cf.limit.gte", "cf.charged", "cf.secured"]
        );
    }
}
