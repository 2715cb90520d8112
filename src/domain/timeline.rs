//! An account's timeline: everything that happened to it, newest first, one kind per
//! entry (docs/features/accounts.md#timeline).

use serde::{Deserialize, Serialize};

/// What a timeline entry records. Stored nowhere: `store::timeline` names each entry's
/// kind as it reads the tables behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum TimelineKind {
    /// The account was created.
    Created,
    /// A contact was logged: a call, message, letter, visit or note.
    Contact,
    /// A payment was recorded (its current status).
    Payment,
    /// A promise to pay was made.
    Promise,
    /// A promise was kept, broken or cancelled.
    PromiseResolved,
    /// A payment plan was set up.
    Plan,
    /// A plan was completed, broken or cancelled.
    PlanResolved,
    /// A plan instalment went unpaid past its grace period.
    InstalmentMissed,
    /// A manager let one contact attempt through the guard.
    OverrideGranted,
    /// A granted override let a contact through.
    OverrideUsed,
    /// The account was assigned to someone else (or to no one).
    Assignment,
    /// Fields of the account changed.
    Edit,
    /// An agent who does not own the account opened it.
    Access,
}

impl TimelineKind {
    pub const ALL: [TimelineKind; 13] = [
        TimelineKind::Created,
        TimelineKind::Contact,
        TimelineKind::Payment,
        TimelineKind::Promise,
        TimelineKind::PromiseResolved,
        TimelineKind::Plan,
        TimelineKind::PlanResolved,
        TimelineKind::InstalmentMissed,
        TimelineKind::OverrideGranted,
        TimelineKind::OverrideUsed,
        TimelineKind::Assignment,
        TimelineKind::Edit,
        TimelineKind::Access,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Created => "created",
            TimelineKind::Contact => "contact",
            TimelineKind::Payment => "payment",
            TimelineKind::Promise => "promise",
            TimelineKind::PromiseResolved => "promise_resolved",
            TimelineKind::Plan => "plan",
            TimelineKind::PlanResolved => "plan_resolved",
            TimelineKind::InstalmentMissed => "instalment_missed",
            TimelineKind::OverrideGranted => "override_granted",
            TimelineKind::OverrideUsed => "override_used",
            TimelineKind::Assignment => "assignment",
            TimelineKind::Edit => "edit",
            TimelineKind::Access => "access",
        }
    }

    pub fn parse(text: &str) -> Option<TimelineKind> {
        TimelineKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in TimelineKind::ALL {
            assert_eq!(TimelineKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(TimelineKind::parse("score"), None);
    }
}
