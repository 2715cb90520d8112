//! Notifications: what a user is told about. The database's triggers write them
//! (`notify_user` and the payment trigger in migrations/); `store::notifications` writes
//! the registration attempt.

use serde::{Deserialize, Serialize};

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
}
