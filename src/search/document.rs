//! Documents as the index holds them, rebuilt from SQL by the sync worker.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::account::{AccountStatus, Address};
use crate::store::accounts::AccountRow;

/// An account in the index. Soft-deleted accounts stay, flagged by `deleted_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountDoc {
    pub id: Uuid,
    pub account_number: String,
    pub external_ref: Option<String>,
    pub debtor_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Address,
    pub timezone: String,
    pub status: AccountStatus,
    pub original_balance: Decimal,
    pub current_balance: Decimal,
    pub currency: String,
    pub due_date: Option<NaiveDate>,
    pub assigned_agent_id: Option<Uuid>,
    pub next_action_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub custom_fields: Map<String, Value>,
    pub do_not_call: bool,
    pub do_not_email: bool,
    pub cease_communication: bool,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub search_version: i64,
}

impl From<AccountRow> for AccountDoc {
    fn from(row: AccountRow) -> Self {
        Self {
            address: row.address(),
            status: row.status(),
            id: row.id,
            account_number: row.account_number,
            external_ref: row.external_ref,
            debtor_name: row.debtor_name,
            email: row.email,
            phone: row.phone,
            timezone: row.timezone,
            original_balance: row.original_balance,
            current_balance: row.current_balance,
            currency: row.currency,
            due_date: row.due_date,
            assigned_agent_id: row.assigned_agent_id,
            next_action_at: row.next_action_at,
            tags: row.tags,
            custom_fields: row.custom_fields.0,
            do_not_call: row.do_not_call,
            do_not_email: row.do_not_email,
            cease_communication: row.cease_communication,
            created_by: row.created_by,
            updated_by: row.updated_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: row.deleted_at,
            search_version: row.search_version,
        }
    }
}

/// One change for the index: a document, or a tombstone for a purged entity.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexOp {
    pub id: Uuid,
    pub version: i64,
    pub doc: Option<AccountDoc>,
}

impl IndexOp {
    pub fn upsert(doc: AccountDoc) -> Self {
        Self {
            id: doc.id,
            version: doc.search_version,
            doc: Some(doc),
        }
    }

    pub fn tombstone(id: Uuid, version: i64) -> Self {
        Self { id, version, doc: None }
    }
}
