//! Bulk updates of accounts: the request, and the patch every row receives.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::account::{AccountStatus, tags};
use super::patch::nullable;
use crate::domain::refusal::FieldError;

/// Most rows one bulk update may touch.
pub const MAX_BULK_ROWS: usize = 200_000;

/// Body of `POST /accounts/bulk-update`: exactly one of `ids` and `filter`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkUpdateRequest {
    pub ids: Option<Vec<Uuid>>,
    /// The list endpoint's parameters as JSON, resolved at submission.
    pub filter: Option<Map<String, Value>>,
    pub patch: PatchBody,
}

/// Absent fields stay as they are; `null` clears `assigned_agent_id` and `next_action_at`
/// (serialised the same way, so an idempotency hash tells the two apart).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    pub status: Option<AccountStatus>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub assigned_agent_id: Option<Option<Uuid>>,
    pub tags_add: Option<Vec<String>>,
    pub tags_remove: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub next_action_at: Option<Option<DateTime<Utc>>>,
}

/// A validated patch, as stored with the job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BulkPatch {
    pub status: Option<AccountStatus>,
    /// `Some(agent)` reassigns (`Some(None)` unassigns).
    pub assign: Option<Option<Uuid>>,
    pub tags_add: Vec<String>,
    pub tags_remove: Vec<String>,
    /// `Some(time)` sets the next action (`Some(None)` clears it).
    pub next_action: Option<Option<DateTime<Utc>>>,
}

impl PatchBody {
    pub fn validate(self) -> Result<BulkPatch, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut list = |field: &str, value: Option<Vec<String>>| match tags(value.unwrap_or_default()) {
            Ok(tags) => tags,
            Err(message) => {
                errors.push(FieldError::new(field, message));
                Vec::new()
            }
        };
        let (tags_add, tags_remove) = (list("tags_add", self.tags_add), list("tags_remove", self.tags_remove));
        if tags_add.iter().any(|t| tags_remove.contains(t)) {
            errors.push(FieldError::new("tags_remove", "a tag cannot be added and removed at once"));
        }
        let patch = BulkPatch {
            status: self.status,
            assign: self.assigned_agent_id,
            tags_add,
            tags_remove,
            next_action: self.next_action_at,
        };
        if patch == BulkPatch::default() && errors.is_empty() {
            errors.push(FieldError::new(
                "patch",
                "name at least one of status, assigned_agent_id, tags_add, tags_remove, next_action_at",
            ));
        }
        if errors.is_empty() { Ok(patch) } else { Err(errors) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: Value) -> PatchBody {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn patches_name_what_changes_and_refuse_nonsense() {
        let patch = body(serde_json::json!({"tags_add": [" VIP "], "assigned_agent_id": null}))
            .validate()
            .unwrap();
        assert_eq!(patch.tags_add, ["vip"]);
        assert_eq!(patch.assign, Some(None), "null unassigns");
        assert!(body(serde_json::json!({})).validate().is_err(), "an empty patch does nothing");
        let errors = body(serde_json::json!({"tags_add": ["x"], "tags_remove": ["X"]}))
            .validate()
            .unwrap_err();
        assert_eq!(errors[0].field, "tags_remove");
    }
}

/// What a bulk update job stores: the patch, and who submitted it with which role. Each
/// chunk checks the submitter as they are when it runs, not as they were when they
/// submitted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BulkParams {
    pub patch: BulkPatch,
    pub actor: Uuid,
    pub role: crate::domain::role::Role,
    /// Moving one agent's accounts: each account is changed only while still assigned to
    /// this agent, so one reassigned since the job was queued stays where it went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_agent: Option<Uuid>,
}
