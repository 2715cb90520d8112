//! How much of an event its reader receives: what they may read of its account over
//! REST (docs/security.md#what-an-agent-reads). A shared event about an account reaches
//! whoever reads that account in full as it is; an agent who reads only the account's
//! summary receives the event's summary (the fields the account's summary shows, marked
//! `access: summary`), or nothing for a kind that has none. Live and replayed alike.

use serde_json::{Map, Value};

use crate::domain::event::Event;
use crate::domain::principal::Principal;
use crate::domain::privacy::Access;

/// A payment moves the balance, the total paid and the last payment, which the summary
/// shows; its method, reference, failure reason and recorder it does not.
const PAYMENT: &[&str] = &["id", "account_id", "amount", "currency", "status", "previous_status", "received_at"];
/// The summary shows the plan's id and status, not its total.
const PLAN: &[&str] = &["plan_id", "account_id", "status", "account_number"];

/// The fields of each kind of shared event about an account that the account's summary
/// shows. Every kind the triggers write to a topic is here (migrations `0004`, `0017`,
/// `0028`, `0044`, `0054`, `0067`); a kind that is not reaches only those who read its
/// account in full.
const SUMMARIES: &[(&str, &[&str])] = &[
    // The debtor's name, the account number, its status and owner: all on the summary.
    (
        "account.created",
        &["id", "account_number", "debtor_name", "status", "assigned_agent_id"],
    ),
    // The last contact, its kind and outcome; not the notes (a message's text is its
    // activity's notes), the direction or who logged it.
    ("activity.logged", &["id", "account_id", "type", "outcome", "occurred_at"]),
    // That a message is on its way or went; not its tries, errors or delivery.
    ("message.updated", &["id", "account_id", "channel", "status"]),
    // An edit: the summary's own fields, not which fields changed.
    (
        "account.updated",
        &["id", "account_id", "account_number", "debtor_name", "status", "assigned_agent_id"],
    ),
    // The open promise the summary showed is gone.
    ("promise.cancelled", &["promise_id", "account_id", "status"]),
    ("payment.created", PAYMENT),
    ("payment.updated", PAYMENT),
    // A broken promise was the open promise the summary shows: its id, amount and date.
    (
        "payment.overdue",
        &["promise_id", "account_id", "amount", "currency", "due_date", "account_number"],
    ),
    ("plan.broken", PLAN),
    ("plan.completed", PLAN),
    ("plan.cancelled", PLAN),
    // The summary shows the date of the latest missed instalment, not its amount.
    ("plan.instalment_missed", &["plan_id", "account_id", "due_date", "account_number"]),
];

/// Whether what `event` carries depends on who reads it: a shared event about an
/// account. An event addressed to one user (their notification, their assignment, their
/// job) is theirs to read in full, as over REST.
fn about_an_account(event: &Event) -> bool {
    event.user_id.is_none() && event.account_id().is_some()
}

/// How much of `event`, about the account assigned to `owner` when it is sent, `who`
/// reads: as they read that account ([`Access::of`]: every role that reads any account
/// in full, and the agent it is assigned to, in full; another agent its summary).
pub fn access(who: &Principal, event: &Event) -> Access {
    if about_an_account(event) {
        Access::of(who, event.account_owner)
    } else {
        Access::Full
    }
}

/// `event` as a reader of its account's summary receives it, or `None` when its kind
/// shows nothing there (only readers in full receive it).
pub fn summary(event: &Event) -> Option<Event> {
    let (_, fields) = SUMMARIES.iter().find(|(kind, _)| *kind == event.kind)?;
    let mut data: Map<String, Value> = fields
        .iter()
        .filter_map(|field| Some(((*field).to_owned(), event.data.get(*field)?.clone())))
        .collect();
    data.insert("access".into(), Value::String("summary".into()));
    Some(Event {
        data: Value::Object(data),
        ..event.clone()
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::domain::role::Role;

    const ACCOUNT: Uuid = Uuid::from_u128(7);
    const OWNER: Uuid = Uuid::from_u128(1);

    fn reader(role: Role, id: Uuid) -> Principal {
        Principal {
            user_id: id,
            session_id: Uuid::nil(),
            email: String::new(),
            name: String::new(),
            role,
        }
    }

    /// An event about account `ACCOUNT`, assigned to `OWNER`.
    fn shared(kind: &str, data: Value) -> Event {
        Event {
            id: Some(1),
            kind: kind.into(),
            user_id: None,
            topics: vec!["accounts".into(), format!("account:{ACCOUNT}")],
            data,
            at: Utc::now(),
            account_deleted: false,
            portfolio_id: None,
            account_owner: Some(OWNER),
        }
    }

    #[test]
    fn the_owner_and_who_reads_every_account_read_an_account_event_in_full() {
        let event = shared("activity.logged", json!({"notes": "n"}));
        for (role, id) in [
            (Role::Agent, OWNER),
            (Role::Manager, Uuid::from_u128(2)),
            (Role::Admin, Uuid::from_u128(3)),
            (Role::Viewer, Uuid::from_u128(4)),
        ] {
            assert_eq!(access(&reader(role, id), &event), Access::Full, "{role:?}");
        }
        let other = reader(Role::Agent, Uuid::from_u128(5));
        assert_eq!(access(&other, &event), Access::Summary);
        let unassigned = Event {
            account_owner: None,
            ..event
        };
        assert_eq!(access(&other, &unassigned), Access::Summary, "an unassigned account");
    }

    #[test]
    fn events_about_no_account_or_addressed_to_their_reader_are_read_in_full() {
        let other = reader(Role::Agent, Uuid::from_u128(5));
        let mut stats = shared("stats.updated", json!({"payments": []}));
        stats.topics = vec!["stats".into()];
        stats.account_owner = None;
        assert_eq!(access(&other, &stats), Access::Full);
        let mut note = shared("notification.created", json!({"data": {"account_id": ACCOUNT}}));
        note.topics.clear();
        note.user_id = Some(other.user_id);
        assert_eq!(access(&other, &note), Access::Full);
    }

    #[test]
    fn a_summary_keeps_what_the_account_summary_shows_and_says_so() {
        let payment = shared(
            "payment.created",
            json!({"id": "p", "account_id": ACCOUNT, "amount": "25.00", "currency": "USD", "method": "card",
                   "status": "completed", "reference": "REF", "received_at": "2026-01-01T00:00:00Z",
                   "failure_reason": null, "created_by": OWNER, "previous_status": null}),
        );
        let summary = summary(&payment).unwrap();
        assert_eq!(
            summary.data,
            json!({"id": "p", "account_id": ACCOUNT, "amount": "25.00", "currency": "USD", "status": "completed",
                   "received_at": "2026-01-01T00:00:00Z", "previous_status": null, "access": "summary"})
        );
        assert_eq!(
            (summary.id, &summary.kind, &summary.topics),
            (payment.id, &payment.kind, &payment.topics)
        );

        let call = shared(
            "activity.logged",
            json!({"id": "a", "account_id": ACCOUNT, "type": "sms", "direction": "outbound", "outcome": null,
                   "notes": "the text", "occurred_at": "t", "next_action_at": null, "agent_id": OWNER}),
        );
        assert_eq!(
            summary_of(&call).data,
            json!({"id": "a", "account_id": ACCOUNT, "type": "sms", "outcome": null, "occurred_at": "t",
                   "access": "summary"})
        );
        let message = shared(
            "message.updated",
            json!({"id": "m", "account_id": ACCOUNT, "channel": "sms", "status": "failed", "attempts": 3,
                   "error": "+12015550134 unreachable", "delivery": null}),
        );
        assert_eq!(
            summary_of(&message).data,
            json!({"id": "m", "account_id": ACCOUNT, "channel": "sms", "status": "failed", "access": "summary"})
        );
        let plan = shared(
            "plan.broken",
            json!({"plan_id": "q", "account_id": ACCOUNT, "amount": "900.00", "currency": "USD", "status": "broken",
                   "account_number": "A-1"}),
        );
        assert_eq!(
            summary_of(&plan).data,
            json!({"plan_id": "q", "account_id": ACCOUNT, "status": "broken", "account_number": "A-1",
                   "access": "summary"})
        );
    }

    fn summary_of(event: &Event) -> Event {
        summary(event).unwrap_or_else(|| panic!("{} has a summary", event.kind))
    }

    #[test]
    fn the_owner_travels_with_the_event_between_instances_and_never_to_a_client() {
        let event = shared("activity.logged", json!({"account_id": ACCOUNT}));
        let published = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&published).unwrap(), event);
        assert!(!event.wire().contains(&OWNER.to_string()));
    }

    #[test]
    fn a_kind_without_a_summary_reaches_only_readers_in_full() {
        assert!(summary(&shared("document.created", json!({"account_id": ACCOUNT, "name": "x.pdf"}))).is_none());
    }
}
