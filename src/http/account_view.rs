//! The account as every answer shows it, built from its document (reads by id build
//! the document from SQL; lists take it from the index).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::account::{AccountStatus, Address, Bucket, days_past_due};
use crate::domain::debtor_zone::ZoneSource;
use crate::domain::document::AccountDoc;
use crate::domain::money::Currency;
use crate::domain::plan::PlanStatus;
use crate::domain::privacy::Access;
use crate::error::{Error, Result};
use crate::http::{self as api, with_etag};
use crate::service::accounts::Shown;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    pub account_number: String,
    pub external_ref: Option<String>,
    pub debtor_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Address,
    pub timezone: String,
    /// Where `timezone` came from: `given` (by the creditor's file, the API or a user),
    /// `address` (its US ZIP code, or a country with one zone), `phone` (its prefix), or
    /// `unknown` (`UTC`: the contact guard fits every zone of the country). On reads of
    /// one account and write answers; lists leave it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub timezone_source: Option<ZoneSource>,
    /// Other zones the debtor may be in (the phone's prefix disagreeing with the
    /// address): the contact guard allows only the hours open in `timezone` and every
    /// one of these. Where `timezone_source` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub alternate_timezones: Option<Vec<String>>,
    pub status: AccountStatus,
    pub original_balance: String,
    pub current_balance: String,
    pub currency: String,
    pub due_date: Option<NaiveDate>,
    pub days_past_due: i64,
    pub bucket: Bucket,
    pub assigned_agent_id: Option<Uuid>,
    /// The assigned agent's name; on reads of one account only (lists leave it out).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub assigned_agent_name: Option<String>,
    /// `summary` when the caller is an agent reading an account that is not theirs: email
    /// and phone masked; address, external reference, tags and custom fields left out.
    pub access: Access,
    pub next_action_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub custom_fields: Map<String, Value>,
    pub do_not_call: bool,
    pub do_not_email: bool,
    pub cease_communication: bool,
    /// The portfolio the account belongs to.
    pub portfolio_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub search_version: i64,
    pub total_paid: String,
    pub payment_count: i64,
    pub last_payment_at: Option<DateTime<Utc>>,
    pub last_payment_amount: Option<String>,
    pub last_contact_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub open_promise: Option<OpenPromiseView>,
    pub plan: Option<PlanSummaryView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OpenPromiseView {
    pub id: Uuid,
    pub amount: String,
    pub due_date: NaiveDate,
}

/// The account's latest payment plan.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlanSummaryView {
    pub id: Uuid,
    pub status: PlanStatus,
    /// Due date of the oldest instalment not paid in full; null unless active.
    pub next_due_date: Option<NaiveDate>,
    /// What is still owed on that instalment.
    pub next_amount: Option<String>,
    pub missed_count: i64,
    /// Due date of the latest missed instalment.
    pub last_missed_on: Option<NaiveDate>,
}

impl AccountView {
    /// The account as `shown` lets its caller read it; delinquency is computed for `today`.
    pub fn from_shown(shown: Shown, today: NaiveDate) -> Result<Self> {
        let mut view = Self::from_doc(shown.doc, today)?;
        view.access = shown.access;
        view.assigned_agent_name = shown.owner_name;
        Ok(view)
    }

    /// The whole account; delinquency is computed for `today`.
    pub fn from_doc(row: AccountDoc, today: NaiveDate) -> Result<Self> {
        let currency = Currency::parse(&row.currency).map_err(|e| Error::Internal(anyhow::anyhow!("account {} currency: {e}", row.id)))?;
        let status = row.status;
        let days = days_past_due(row.due_date, status, today);
        let summary = row.summary;
        Ok(Self {
            total_paid: currency.format(summary.total_paid),
            payment_count: summary.payment_count,
            last_payment_at: summary.last_payment_at,
            last_payment_amount: summary.last_payment_amount.map(|a| currency.format(a)),
            last_contact_at: summary.last_contact_at,
            last_outcome: summary.last_outcome,
            open_promise: summary.open_promise.map(|p| OpenPromiseView {
                id: p.id,
                amount: currency.format(p.amount),
                due_date: p.due_date,
            }),
            plan: summary.plan.map(|p| PlanSummaryView {
                id: p.id,
                status: p.status,
                next_due_date: p.next_due_date,
                next_amount: p.next_amount.map(|a| currency.format(a)),
                missed_count: p.missed_count,
                last_missed_on: p.last_missed_on,
            }),
            address: row.address,
            original_balance: currency.format(row.original_balance),
            current_balance: currency.format(row.current_balance),
            currency: currency.code().to_owned(),
            days_past_due: days,
            bucket: Bucket::from_days_past_due(days),
            status,
            id: row.id,
            account_number: row.account_number,
            external_ref: row.external_ref,
            debtor_name: row.debtor_name,
            email: row.email,
            phone: row.phone,
            timezone: row.timezone,
            timezone_source: row.zone.as_ref().map(|z| z.source),
            alternate_timezones: row.zone.map(|z| z.alternates),
            due_date: row.due_date,
            assigned_agent_id: row.assigned_agent_id,
            assigned_agent_name: None,
            access: Access::Full,
            next_action_at: row.next_action_at,
            tags: row.tags,
            custom_fields: row.custom_fields,
            do_not_call: row.do_not_call,
            do_not_email: row.do_not_email,
            cease_communication: row.cease_communication,
            portfolio_id: row.portfolio_id,
            created_by: row.created_by,
            updated_by: row.updated_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: row.deleted_at,
            search_version: row.search_version,
        })
    }
}

/// The whole account as JSON with its ETag; delinquency is computed for today.
pub fn account_response(status: StatusCode, doc: AccountDoc) -> Result<Response> {
    shown_response(
        status,
        Shown {
            doc,
            access: Access::Full,
            owner_name: None,
        },
    )
}

/// The account as its caller may read it, as JSON with its ETag.
pub fn shown_response(status: StatusCode, shown: Shown) -> Result<Response> {
    let version = shown.doc.search_version;
    let view = AccountView::from_shown(shown, Utc::now().date_naive())?;
    Ok(with_etag(api::json(status, &view), version))
}
