//! Where an account field must reach, each checked against the document's fields (the
//! checklist in `domain/account.rs`). The fields are read from the Elasticsearch
//! template, which `elastic::templates_map_every_field_the_documents_produce_and_nothing_else`
//! holds equal to what a document produces, so a new field on `AccountDoc` fails there
//! first and then here until every place below takes it or names why it does not.

use std::collections::BTreeSet;

use arrears::domain::document::Entity;
use arrears::domain::role::Role;
use arrears::import::columns::Column;
use arrears::service::exports::ACCOUNT_COLUMNS;
use chrono::{Duration, Utc};
use serde_json::json;

use crate::elastic::{mapped, mappings};
use crate::helpers::{id_of, spawn_app};

/// The figures payments, activities, promises and plans add: no file sets them, and an account
/// export is a working file of the account's own fields (the API shows the figures).
const SUMMARY: &[&str] = &[
    "summary.total_paid",
    "summary.payment_count",
    "summary.last_payment_at",
    "summary.last_payment_amount",
    "summary.last_contact_at",
    "summary.last_outcome",
    "summary.open_promise.id",
    "summary.open_promise.amount",
    "summary.open_promise.due_date",
    "summary.plan.id",
    "summary.plan.status",
    "summary.plan.next_due_date",
    "summary.plan.next_amount",
    "summary.plan.missed_count",
    "summary.plan.last_missed_on",
];

/// Fields no spreadsheet column sets, each for a reason (and [`SUMMARY`]).
const NOT_IMPORTED: &[&str] = &[
    // The server's own: identity, audit, versioning.
    "id",
    "created_by",
    "updated_by",
    "created_at",
    "updated_at",
    "deleted_at",
    // Each custom field with a definition is a column of its own (mapped by key or
    // label); the free-form rest has no cell form, and the API sets it.
    "custom_fields",
];

/// Fields an export leaves out, each for a reason (and [`SUMMARY`]).
const NOT_EXPORTED: &[&str] = &[
    // Audit columns: who changed it is in the API, not in a working file.
    "created_by",
    "updated_by",
    // An export holds live accounts only.
    "deleted_at",
    // Each custom field marked for export is a column of its own, after these; the
    // free-form rest has no cell form.
    "custom_fields",
];

/// What the index holds beside the account's own fields, for search and reports: the
/// name of `portfolio_id`'s portfolio, and the kinds and names of the account's documents
/// (files, read through `/accounts/{id}/documents`).
const INDEX_ONLY: &[&str] = &["tombstone", "portfolio_name", "document_kinds", "document_names"];

/// The account document's fields, as paths (`address.city`); not what the index derives
/// for search and reports (`derived`; `cf`, the custom fields typed by their definitions,
/// which `custom_fields` holds; [`INDEX_ONLY`]).
fn account_fields() -> BTreeSet<String> {
    let mut fields = BTreeSet::new();
    mapped(&mappings(Entity::Account)["properties"], "", &mut fields, &mut BTreeSet::new());
    fields.retain(|f| !INDEX_ONLY.contains(&f.as_str()) && !f.starts_with("derived.") && !f.starts_with("cf."));
    fields
}

/// A field's spreadsheet column: `address.city` is `city`, `address.line1` is
/// `address_line1`, the version is `version`.
fn column_of(field: &str) -> String {
    match field {
        "search_version" => "version".to_owned(),
        // The file names the portfolio (by name; an import takes a name or an id).
        "portfolio_id" => "portfolio".to_owned(),
        "address.line1" | "address.line2" => field.replace('.', "_"),
        _ => field.strip_prefix("address.").unwrap_or(field).to_owned(),
    }
}

/// The fields with no column in `columns` that neither `exempt` nor [`SUMMARY`] names;
/// an exemption that is no longer a field fails too.
fn missing(fields: &BTreeSet<String>, exempt: &[&str], columns: &BTreeSet<String>) -> Vec<String> {
    for name in exempt.iter().chain(SUMMARY) {
        assert!(fields.contains(*name), "{name} is no longer an account field");
    }
    fields
        .iter()
        .filter(|f| !exempt.contains(&f.as_str()) && !SUMMARY.contains(&f.as_str()) && !columns.contains(&column_of(f)))
        .cloned()
        .collect()
}

#[test]
fn every_account_field_has_an_import_column_or_a_reason() {
    let fields = account_fields();
    let columns: BTreeSet<String> = Column::all().map(|(_, name, _)| name.to_owned()).collect();
    let missing = missing(&fields, NOT_IMPORTED, &columns);
    assert!(
        missing.is_empty(),
        "no import column for {missing:?}: add one to import::columns or a reason here"
    );
    for exempt in NOT_IMPORTED {
        assert!(fields.contains(*exempt), "{exempt} is no longer an account field");
    }
}

#[test]
fn every_account_field_has_an_export_column_or_a_reason() {
    let fields = account_fields();
    let columns: BTreeSet<String> = ACCOUNT_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    let missing = missing(&fields, NOT_EXPORTED, &columns);
    assert!(
        missing.is_empty(),
        "no export column for {missing:?}: add one to ACCOUNT_COLUMNS or a reason here"
    );
    for exempt in NOT_EXPORTED {
        assert!(fields.contains(*exempt), "{exempt} is no longer an account field");
    }
}

#[tokio::test]
async fn the_account_view_shows_every_field() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let id = id_of(&app.account(&manager.token, json!({"original_balance": "100.00"})).await);
    // A payment, a contact, an open promise and a plan, so that every summary figure has
    // a value (`last_missed_on` may be null; the key is still there).
    let payment = json!({"amount": "10.00", "currency": "USD", "method": "card"});
    app.create_payment(&manager.token, &id, &payment).await;
    let call = json!({"type": "call", "direction": "outbound", "outcome": "right_party"});
    app.log_activity(&manager.token, &id, &call).await;
    let due = (Utc::now().date_naive() + Duration::days(7)).to_string();
    let promise = json!({"amount": "20.00", "due_date": due});
    app.create_promise(&manager.token, &id, &promise).await;
    let plan = json!({"total": "60.00", "instalment_count": 3, "frequency": "weekly", "first_due_date": due});
    app.create(&manager.token, &format!("/api/v1/accounts/{id}/plans"), &plan).await;
    let view = app.get_account(&manager.token, &id).await;
    for field in account_fields() {
        // The summary's figures sit beside the account's own fields.
        let path = field.strip_prefix("summary.").unwrap_or(&field);
        let pointer = format!("/{}", path.replace('.', "/"));
        assert!(
            view.pointer(&pointer).is_some(),
            "GET /accounts/{{id}} does not show {field}: {view}"
        );
    }
}
