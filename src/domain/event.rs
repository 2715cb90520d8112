//! Events: what happened, as the outbox stores it and the WebSocket sends it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::money::Currency;
use crate::domain::principal::Principal;
use crate::domain::role::Action;

/// The kind of the events of a user signing in, refreshing tokens and signing out:
/// addressed to that user, and seen by everyone who manages users too.
pub const USER_ACTIVITY: &str = "user_activity";

/// Formats an object's `amount` with the minor digits of its `currency`, when it has
/// both (triggers write amounts as SQL text, "100.0000").
pub fn format_money(data: &mut Value) {
    let Some(object) = data.as_object_mut() else { return };
    let currency = object.get("currency").and_then(Value::as_str).and_then(|c| Currency::parse(c).ok());
    if let (Some(currency), Some(Value::String(amount))) = (currency, object.get("amount"))
        && let Ok(value) = amount.parse::<rust_decimal::Decimal>()
    {
        object.insert("amount".into(), Value::String(currency.format(value)));
    }
}

/// An event as the wire carries it: `{"event", "data", "id", "at"}`, plus routing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The row id; `None` for events made by the instance itself (`stats.updated`).
    pub id: Option<i64>,
    pub kind: String,
    /// Set when only this user may receive it.
    pub user_id: Option<Uuid>,
    pub topics: Vec<String>,
    pub data: Value,
    pub at: DateTime<Utc>,
    /// The account the event is about was soft-deleted when the event was published or
    /// replayed: only those who may read deleted accounts receive it. Never on the wire.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub account_deleted: bool,
    /// The portfolio of the account the event is about, when published or replayed: a
    /// shared event reaches only those whose portfolios include it. Never on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portfolio_id: Option<Uuid>,
    /// The agent the event's account was assigned to when the event was published or
    /// replayed: they, and those who read every account, receive it in full; another
    /// agent its summary (docs/features/live-events.md). Never on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_owner: Option<Uuid>,
}

impl Event {
    /// Money in event data is formatted with its currency's minor digits, as
    /// everywhere else in the API ("100.0000" from SQL becomes "100.00"), and so is the
    /// money in a notification the event carries (`notification.created`).
    pub fn normalized(mut self) -> Self {
        format_money(&mut self.data);
        if let Some(notification) = self.data.get_mut("data") {
            format_money(notification);
        }
        if self.kind.starts_with("notification.") {
            super::notification::complete_event_data(&mut self.data);
        }
        self
    }

    /// The account the event is about: its `account:{id}` topic, or the `account_id` of
    /// its data or of the notification it carries.
    pub fn account_id(&self) -> Option<Uuid> {
        let topic = self.topics.iter().find_map(|t| t.strip_prefix("account:"));
        let data = || self.data.get("account_id").or_else(|| self.data.get("data")?.get("account_id"));
        topic.or_else(|| data()?.as_str()).and_then(|id| Uuid::parse_str(id).ok())
    }

    /// Whether `who`, subscribed to `topics` and working the portfolios `scope` (`None`:
    /// every one), receives this event. An event of a deleted account reaches only those
    /// who may read deleted accounts (as `include_deleted`); a shared event about an
    /// account in a portfolio only those who work it (an account in none is everyone's,
    /// as in searches).
    pub fn visible_to(&self, who: &Principal, topics: &HashSet<String>, scope: Option<&[Uuid]>) -> bool {
        if self.account_deleted && !who.can(Action::RestoreAccount) {
            return false;
        }
        match self.user_id {
            Some(user) => user == who.user_id || (self.kind == USER_ACTIVITY && who.can(Action::ManageUsers)),
            None => {
                let in_scope = match (self.portfolio_id, scope) {
                    (Some(portfolio), Some(scope)) => scope.contains(&portfolio),
                    _ => true,
                };
                in_scope && who.can(Action::ReadAccounts) && self.topics.iter().any(|t| topics.contains(t))
            }
        }
    }

    /// The message a client receives.
    pub fn wire(&self) -> String {
        serde_json::json!({"event": self.kind, "data": self.data, "id": self.id, "at": self.at}).to_string()
    }
}

/// The topics a client may subscribe to.
pub fn valid_topic(topic: &str) -> bool {
    match topic.strip_prefix("account:") {
        Some(id) => Uuid::parse_str(id).is_ok(),
        None => matches!(topic, "payments" | "accounts" | "jobs" | "stats"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::role::Role;

    fn principal(role: Role) -> Principal {
        Principal {
            user_id: Uuid::from_u128(1),
            session_id: Uuid::nil(),
            email: String::new(),
            name: String::new(),
            role,
        }
    }

    fn event(user: Option<Uuid>, topics: &[&str]) -> Event {
        Event {
            id: Some(1),
            kind: "payment.created".into(),
            user_id: user,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            data: serde_json::json!({"amount": "12.5000", "currency": "USD"}),
            at: Utc::now(),
            account_deleted: false,
            portfolio_id: None,
            account_owner: None,
        }
    }

    #[test]
    fn events_of_deleted_accounts_reach_only_who_may_read_deleted_accounts() {
        let account = Uuid::from_u128(7);
        let subscribed = ["payments".to_owned()].into_iter().collect();
        let mut deleted = event(None, &["payments", &format!("account:{account}")]);
        assert_eq!(deleted.account_id(), Some(account));
        deleted.account_deleted = true;
        assert!(!deleted.visible_to(&principal(Role::Viewer), &subscribed, None));
        assert!(!deleted.visible_to(&principal(Role::Agent), &subscribed, None));
        assert!(deleted.visible_to(&principal(Role::Manager), &subscribed, None));
        let mut note = event(Some(Uuid::from_u128(1)), &[]);
        note.data = serde_json::json!({"kind": "payment_received", "data": {"account_id": account}});
        assert_eq!(note.account_id(), Some(account));
        note.account_deleted = true;
        assert!(!note.visible_to(&principal(Role::Agent), &Default::default(), None));
        let wire: Value = serde_json::from_str(&deleted.wire()).unwrap();
        assert!(wire.get("account_deleted").is_none(), "{wire}");
    }

    #[test]
    fn shared_events_of_a_portfolio_reach_only_who_works_it() {
        let subscribed = ["payments".to_owned()].into_iter().collect();
        let (mine, other) = (Uuid::from_u128(5), Uuid::from_u128(6));
        let mut scoped = event(None, &["payments"]);
        scoped.portfolio_id = Some(mine);
        let agent = principal(Role::Agent);
        assert!(scoped.visible_to(&agent, &subscribed, Some(&[mine])));
        assert!(!scoped.visible_to(&agent, &subscribed, Some(&[other])));
        assert!(scoped.visible_to(&agent, &subscribed, None), "every portfolio");
        assert!(
            event(None, &["payments"]).visible_to(&agent, &subscribed, Some(&[])),
            "an account in none"
        );
        let mut addressed = event(Some(agent.user_id), &[]);
        addressed.portfolio_id = Some(other);
        assert!(
            addressed.visible_to(&agent, &Default::default(), Some(&[mine])),
            "addressed to them"
        );
        let wire: Value = serde_json::from_str(&scoped.wire()).unwrap();
        assert!(wire.get("portfolio_id").is_none(), "{wire}");
    }

    #[test]
    fn private_events_reach_only_their_user_and_topics_need_a_subscription() {
        let subscribed = ["payments".to_owned()].into_iter().collect();
        let viewer = principal(Role::Viewer);
        assert!(event(None, &["payments"]).visible_to(&viewer, &subscribed, None));
        assert!(!event(None, &["accounts"]).visible_to(&viewer, &subscribed, None));
        assert!(!event(Some(Uuid::from_u128(2)), &[]).visible_to(&viewer, &subscribed, None));
        assert!(event(Some(Uuid::from_u128(1)), &[]).visible_to(&viewer, &Default::default(), None));
    }

    #[test]
    fn user_activity_reaches_its_user_and_admins_only() {
        let mut activity = event(Some(Uuid::from_u128(2)), &[]);
        activity.kind = USER_ACTIVITY.into();
        let mut own = principal(Role::Viewer);
        own.user_id = Uuid::from_u128(2);
        assert!(activity.visible_to(&own, &Default::default(), None));
        assert!(activity.visible_to(&principal(Role::Admin), &Default::default(), None));
        assert!(!activity.visible_to(&principal(Role::Manager), &Default::default(), None));
    }

    #[test]
    fn money_is_formatted_and_topics_are_checked() {
        assert_eq!(event(None, &[]).normalized().data["amount"], "12.50");
        let mut notification = event(None, &[]);
        notification.data = serde_json::json!({"kind": "payment_received", "data": {"amount": "7.0000", "currency": "JPY"}});
        assert_eq!(notification.normalized().data["data"]["amount"], "7");
        assert!(valid_topic("account:00000000-0000-0000-0000-000000000001"));
        assert!(valid_topic("stats"));
        assert!(!valid_topic("account:nope"));
        assert!(!valid_topic("users"));
    }
}
