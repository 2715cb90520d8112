//! Notifications: what a user is told about. The database's triggers write them
//! (`notify_user` in migrations/, which merges a batch into one notification with a
//! count and skips the user's own actions); `store::notifications` writes the
//! registration attempt. What a notification says and where it leads are decided here,
//! once, from its kind, count and data, for the API and the live events alike.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a notification is about. Stored as text (`notifications.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum NotificationKind {
    PaymentReceived,
    PaymentOverdue,
    AccountAssigned,
    JobFinished,
    PlanBroken,
    PlanInstalmentMissed,
    RegistrationAttempt,
    /// A message the user sent failed for good (the provider refused it, or every try
    /// failed).
    MessageFailed,
    /// A debtor of one of the user's accounts sent a message in (an opt-out word among
    /// them: `opt_out` in its data).
    MessageReceived,
    /// One of the user's accounts passed its due date unpaid and became delinquent.
    AccountOverdue,
}

impl NotificationKind {
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(Value::String(text.to_owned())).ok()
    }
}

/// The title: the one stored for a single notification, or what a batch of `count` says.
pub fn title(kind: NotificationKind, count: i64, stored: &str) -> String {
    if count <= 1 {
        return stored.to_owned();
    }
    match kind {
        NotificationKind::AccountAssigned => format!("{count} accounts assigned to you"),
        NotificationKind::PaymentReceived => format!("{count} payments received"),
        NotificationKind::PaymentOverdue => format!("{count} promises to pay were not kept"),
        NotificationKind::PlanBroken => format!("{count} payment plans broke"),
        NotificationKind::PlanInstalmentMissed => format!("{count} plan instalments were missed"),
        NotificationKind::JobFinished => format!("{count} jobs finished"),
        NotificationKind::RegistrationAttempt => format!("{count} attempts to register with your email address"),
        NotificationKind::MessageFailed => format!("{count} messages could not be sent or delivered"),
        NotificationKind::MessageReceived => format!("{count} messages from debtors"),
        NotificationKind::AccountOverdue => format!("{count} accounts are past due"),
    }
}

/// Where a batch about accounts leads: the reader's accounts, latest changed first, so
/// the accounts just assigned (or just paid, or whose plans just broke) lead the list.
const BATCH_SEARCH: &str = "#/search?assigned_agent_id=me&sort=-updated_at";

/// Where a batch of accounts past due leads: the reader's delinquent accounts, latest
/// changed first.
const OVERDUE_SEARCH: &str = "#/search?assigned_agent_id=me&status=delinquent&sort=-updated_at";

/// The console route a notification leads to: the account it is about, or for a batch
/// [`BATCH_SEARCH`]; the jobs list for a finished job; nothing for a registration
/// attempt.
pub fn link(kind: NotificationKind, count: i64, data: &Value) -> Option<String> {
    let text = |key: &str| data.get(key).and_then(Value::as_str).filter(|id| uuid::Uuid::parse_str(id).is_ok());
    let account = |key: &str| text(key).map(|id| format!("#/account/{id}"));
    match kind {
        NotificationKind::JobFinished => text("id").map(|_| "#/imports".to_owned()),
        NotificationKind::RegistrationAttempt => None,
        NotificationKind::AccountOverdue if count > 1 => Some(OVERDUE_SEARCH.to_owned()),
        _ if count > 1 => Some(BATCH_SEARCH.to_owned()),
        NotificationKind::AccountAssigned => account("id"),
        NotificationKind::PaymentReceived
        | NotificationKind::PaymentOverdue
        | NotificationKind::PlanBroken
        | NotificationKind::PlanInstalmentMissed
        | NotificationKind::MessageFailed
        | NotificationKind::MessageReceived
        | NotificationKind::AccountOverdue => account("account_id"),
    }
}

/// A notification as a live event carries it (`notification.created`, `.updated`),
/// given the title and link its API view has.
pub fn complete_event_data(notification: &mut Value) {
    let Some(kind) = notification.get("kind").and_then(Value::as_str).and_then(NotificationKind::parse) else {
        return;
    };
    let count = notification.get("count").and_then(Value::as_i64).unwrap_or(1);
    let stored = notification.get("title").and_then(Value::as_str).unwrap_or_default().to_owned();
    let data = notification.get("data").cloned().unwrap_or(Value::Null);
    if let Some(object) = notification.as_object_mut() {
        object.insert("title".into(), Value::String(title(kind, count, &stored)));
        object.insert("link".into(), link(kind, count, &data).map_or(Value::Null, Value::String));
        object.insert("count".into(), Value::from(count));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_batch_says_how_many_and_leads_to_the_search() {
        let id = "0190f5e4-6f3c-7d7a-9a1b-2c3d4e5f6a7b";
        let data = json!({"id": id, "account_number": "A-1"});
        assert_eq!(
            title(NotificationKind::AccountAssigned, 1, "Account A-1 assigned"),
            "Account A-1 assigned"
        );
        assert_eq!(
            title(NotificationKind::AccountAssigned, 102, "Account A-1 assigned"),
            "102 accounts assigned to you"
        );
        assert_eq!(
            link(NotificationKind::AccountAssigned, 1, &data).unwrap(),
            format!("#/account/{id}")
        );
        assert_eq!(
            link(NotificationKind::AccountAssigned, 102, &data).unwrap(),
            "#/search?assigned_agent_id=me&sort=-updated_at"
        );
        let payment = json!({"account_id": id, "payment_id": id});
        assert_eq!(
            link(NotificationKind::PaymentReceived, 1, &payment).unwrap(),
            format!("#/account/{id}")
        );
        assert_eq!(link(NotificationKind::JobFinished, 1, &json!({"id": id})).unwrap(), "#/imports");
        assert_eq!(link(NotificationKind::RegistrationAttempt, 1, &json!({})), None);
        assert_eq!(
            link(NotificationKind::AccountAssigned, 1, &json!({"id": "javascript:x"})),
            None,
            "only ids make links"
        );
    }

    #[test]
    fn live_events_carry_the_views_title_and_link() {
        let mut event = json!({"kind": "account_assigned", "title": "Account A-1 assigned", "count": 3, "data": {}});
        complete_event_data(&mut event);
        assert_eq!(event["title"], "3 accounts assigned to you");
        assert_eq!(event["link"], "#/search?assigned_agent_id=me&sort=-updated_at");
    }
}
