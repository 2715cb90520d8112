//! Custom field definitions: every role that reads accounts reads the live ones (the
//! console and importers need them); admins create, change, delete and restore them.

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::custom_field::{Catalog, Conversion, CreateField, Definition, FieldType, MAX_LIVE_DEFINITIONS, PatchField};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Code, Error, FieldError, Result};
use crate::import::columns::Mapping;
use crate::service::Window;
use crate::store::{self, fields};

pub use crate::store::fields::StoredField;

/// The live definitions, as account writes validate `custom_fields` against them; read
/// on `conn`, inside the writing transaction.
pub async fn catalog(conn: &mut PgConnection) -> Result<Catalog> {
    Ok(Catalog::new(fields::live(conn).await?))
}

/// The live definitions when `raw`, an account list's query, names a custom field (a
/// filter, the sort or a facet); none are read otherwise.
pub async fn for_list(pool: &PgPool, raw: &str) -> Result<Catalog> {
    if !crate::lists::accounts::names_custom_fields(raw) {
        return Ok(Catalog::default());
    }
    let mut conn = pool.acquire().await?;
    catalog(&mut conn).await
}

/// Definitions by position then key, and how many there are: the live ones, and for
/// admins who ask, the deleted ones too.
pub async fn list(
    pool: &PgPool,
    caller: &Principal,
    include_deleted: bool,
    window: Window<(i32, String)>,
) -> Result<(Vec<StoredField>, i64)> {
    readable(caller, include_deleted)?;
    let rows = fields::page(pool, include_deleted, window.after, window.limit).await?;
    Ok((rows, fields::count(pool, include_deleted).await?))
}

/// The definition `key`: a live one, or a deleted one too when `include_deleted`.
pub async fn get(pool: &PgPool, caller: &Principal, key: &str, include_deleted: bool) -> Result<StoredField> {
    readable(caller, include_deleted)?;
    fields::by_key(pool, key)
        .await?
        .filter(|f| include_deleted || f.definition.deleted_at.is_none())
        .ok_or_else(|| Error::not_found("field"))
}

/// Whether `caller` may read definitions: every role that reads accounts reads the live
/// ones, only admins the deleted ones.
fn readable(caller: &Principal, include_deleted: bool) -> Result<()> {
    caller.require(Action::ReadAccounts)?;
    if include_deleted && !caller.can(Action::ManageFields) {
        return Err(Error::forbidden("only admins read deleted fields"));
    }
    Ok(())
}

/// Why `text`, a new key or label, would make an import ambiguous: the importer already
/// reads a column headed so (compared as it compares headers), or skips it.
fn import_clash(text: &str) -> Option<String> {
    let mapping = Mapping::new(&[text.to_owned()], &Catalog::default()).ok()?;
    if !mapping.unknown.is_empty() {
        return None;
    }
    Some(match mapping.columns.first().copied().flatten() {
        Some(column) => format!(
            "imports read a column headed {text:?} as the built-in field `{}`; choose another",
            column.name()
        ),
        None => format!("imports skip a column headed {text:?} (a computed column, or no letter or digit); choose another"),
    })
}

/// The field errors of a definition's key (when new) and label against the importer's
/// headers and the other live definitions' labels.
async fn clashes(conn: &mut PgConnection, definition: &Definition, new_key: bool) -> Result<Vec<FieldError>> {
    let mut errors = Vec::new();
    if new_key && let Some(why) = import_clash(&definition.key) {
        errors.push(FieldError::new("key", why));
    }
    if let Some(why) = import_clash(&definition.label) {
        errors.push(FieldError::new("label", why));
    }
    let label = definition.label.to_lowercase();
    let others = fields::live(conn).await?;
    if let Some(other) = others.iter().find(|o| o.key != definition.key && o.label.to_lowercase() == label) {
        errors.push(FieldError::new(
            "label",
            format!("the field `{}` has this label already", other.key),
        ));
    }
    Ok(errors)
}

fn too_many() -> Error {
    Error::new(
        Code::Conflict,
        format!("there are {MAX_LIVE_DEFINITIONS} live fields already, the most there may be; delete one first"),
    )
}

/// Creates a definition as `caller`, an admin. Its key may not be one that exists, live
/// or deleted.
pub async fn create(pool: &PgPool, caller: &Principal, body: CreateField) -> Result<StoredField> {
    caller.require(Action::ManageFields)?;
    let positioned = body.position.is_some();
    let mut definition = Definition::from_create(body).map_err(Error::validation)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    fields::lock_all(&mut tx).await?;
    if let Some(existing) = fields::lock(&mut tx, &definition.key).await? {
        let key = &definition.key;
        return Err(Error::new(
            Code::Conflict,
            match existing.definition.deleted_at {
                Some(_) => format!(
                    "the field `{key}` was deleted, and its key stays reserved; restore it (POST /api/v1/fields/{key}/restore) or choose another key"
                ),
                None => format!("a field with the key `{key}` exists already"),
            },
        ));
    }
    let errors = clashes(&mut tx, &definition, true).await?;
    if !errors.is_empty() {
        return Err(Error::validation(errors));
    }
    if fields::live(&mut tx).await?.len() >= MAX_LIVE_DEFINITIONS {
        return Err(too_many());
    }
    if !positioned {
        definition.position = fields::next_position(&mut tx).await?;
    }
    let stored = fields::insert(&mut tx, &definition, caller.user_id).await?;
    reindex_holders(&mut tx, &stored.definition.key).await?;
    tx.commit().await?;
    tracing::info!(key = %stored.definition.key, field_type = stored.definition.field_type.as_str(), "field defined");
    Ok(stored)
}

/// Re-indexes the accounts holding a value for `key`, whose typed value in the index
/// (docs/features/custom-fields.md, "Searching by custom fields") depends on what
/// changed: the definition's existence, its type and rules (which values it accepts)
/// and whether text is searchable or filterable. In the changing transaction, so a
/// document built after it commits sees the new definition.
async fn reindex_holders(tx: &mut PgConnection, key: &str) -> Result<()> {
    let queued = fields::touch_holders(tx, key).await?;
    tracing::info!(key = %key, accounts = queued, "accounts holding the field queued for the index");
    Ok(())
}

/// The definition `key` locked in `tx`, live; 404 when there is none, 409 when deleted.
async fn lock_live(tx: &mut PgConnection, key: &str) -> Result<StoredField> {
    let current = fields::lock(tx, key).await?.ok_or_else(|| Error::not_found("field"))?;
    if current.definition.deleted_at.is_some() {
        return Err(Error::new(
            Code::Conflict,
            format!("the field `{key}` is deleted; restore it first (POST /api/v1/fields/{key}/restore)"),
        ));
    }
    Ok(current)
}

/// How many accounts whose values do not convert a refused type change lists.
const LISTED_UNCONVERTIBLE: usize = 20;

/// Converts the values accounts hold for `definition.key` from `from` to its new type,
/// in `tx`, as `actor`: every holder is read (and locked) once, and each batch's changed
/// values are written in one statement. When any value does not convert, the change is
/// refused (its transaction rolls back, so nothing changes), counting them and listing
/// up to [`LISTED_UNCONVERTIBLE`] with why.
async fn convert_holders(tx: &mut PgConnection, from: FieldType, definition: &Definition, actor: Uuid) -> Result<()> {
    let key = &definition.key;
    let conversion = Conversion::new(from, definition).map_err(Error::validation)?;
    fields::open_holders(tx, key).await?;
    let (mut refused, mut listed, mut converted) = (0u64, Vec::new(), 0u64);
    loop {
        let holders = fields::next_holders(tx).await?;
        if holders.is_empty() {
            break;
        }
        let mut changed = Vec::new();
        for holder in holders {
            match conversion.convert(&holder.value, holder.currency) {
                Ok(value) if value.as_ref() == Some(&holder.value.0) => {}
                Ok(value) => changed.push((holder.id, value)),
                Err(why) => {
                    refused += 1;
                    if listed.len() < LISTED_UNCONVERTIBLE {
                        listed.push(json!({"account_id": holder.id, "account_number": holder.account_number,
                                           "value": holder.value.0, "reason": why}));
                    }
                }
            }
        }
        if refused == 0 && !changed.is_empty() {
            converted += fields::set_values(tx, key, &changed, actor).await?;
        }
    }
    if refused > 0 {
        return Err(Error::new(
            Code::Conflict,
            format!(
                "{refused} accounts hold `{key}` values that do not convert from {} to {}, so nothing was changed; \
                 `unconvertible_accounts` lists up to {LISTED_UNCONVERTIBLE} of them with why. Correct or remove those values, \
                 or change the new rules, and send the change again",
                from.as_str(),
                definition.field_type.as_str()
            ),
        )
        .with_extension("unconvertible", json!(refused))
        .with_extension("unconvertible_accounts", json!(listed)));
    }
    tracing::info!(key = %key, accounts = converted, "values converted to the field's new type");
    Ok(())
}

/// Changes a live definition as `caller`, an admin. A new type converts the values
/// accounts hold in the same transaction, or is refused when any would not convert.
pub async fn update(pool: &PgPool, caller: &Principal, key: &str, patch: PatchField) -> Result<StoredField> {
    caller.require(Action::ManageFields)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    fields::lock_all(&mut tx).await?;
    let current = lock_live(&mut tx, key).await?.definition;
    let label_changes = patch.label.is_some();
    let indexed_before = (
        current.field_type,
        current.rules.clone(),
        current.flags.searchable,
        current.flags.filterable,
    );
    let definition = current.apply(patch).map_err(Error::validation)?;
    if label_changes {
        let errors = clashes(&mut tx, &definition, false).await?;
        if !errors.is_empty() {
            return Err(Error::validation(errors));
        }
    }
    if definition.field_type != indexed_before.0 {
        convert_holders(&mut tx, indexed_before.0, &definition, caller.user_id).await?;
    }
    let stored = fields::update(&mut tx, &definition, caller.user_id).await?;
    let indexed_after = (
        definition.field_type,
        definition.rules.clone(),
        definition.flags.searchable,
        definition.flags.filterable,
    );
    if indexed_before != indexed_after {
        reindex_holders(&mut tx, key).await?;
    }
    tx.commit().await?;
    tracing::info!(key = %key, field_type = definition.field_type.as_str(), "field changed");
    Ok(stored)
}

/// Deletes the definition `key` as `caller`, an admin: the row stays, so the key stays
/// reserved, and the values accounts hold are kept, untyped.
pub async fn delete(pool: &PgPool, caller: &Principal, key: &str) -> Result<StoredField> {
    caller.require(Action::ManageFields)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    fields::lock_all(&mut tx).await?;
    lock_live(&mut tx, key).await?;
    let stored = fields::set_deleted(&mut tx, key, true, caller.user_id).await?;
    reindex_holders(&mut tx, key).await?;
    tx.commit().await?;
    tracing::info!(key = %key, "field deleted");
    Ok(stored)
}

/// Restores the deleted definition `key` as `caller`, an admin, within the cap on live
/// definitions.
pub async fn restore(pool: &PgPool, caller: &Principal, key: &str) -> Result<StoredField> {
    caller.require(Action::ManageFields)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    fields::lock_all(&mut tx).await?;
    let current = fields::lock(&mut tx, key).await?.ok_or_else(|| Error::not_found("field"))?;
    if current.definition.deleted_at.is_none() {
        return Err(Error::new(Code::Conflict, format!("the field `{key}` is not deleted")));
    }
    let errors = clashes(&mut tx, &current.definition, false).await?;
    if !errors.is_empty() {
        return Err(Error::new(
            Code::Conflict,
            format!("the field `{key}` cannot come back as it is: {}", errors[0].message),
        ));
    }
    if fields::live(&mut tx).await?.len() >= MAX_LIVE_DEFINITIONS {
        return Err(too_many());
    }
    let stored = fields::set_deleted(&mut tx, key, false, caller.user_id).await?;
    reindex_holders(&mut tx, key).await?;
    tx.commit().await?;
    tracing::info!(key = %key, "field restored");
    Ok(stored)
}
