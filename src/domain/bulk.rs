//! Bulk updates of accounts: the request, and the patch every row receives.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::account::{AccountStatus, MAX_CUSTOM_FIELDS_BYTES, tags};
use super::dates;
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

/// Absent fields stay as they are; `null` clears `assigned_agent_id`, `next_action_at`,
/// `due_date` and `portfolio_id` (serialised the same way, so an idempotency hash tells
/// the two apart).
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
    /// Managers and admins.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub due_date: Option<Option<NaiveDate>>,
    /// A live portfolio (managers and admins).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub portfolio_id: Option<Option<Uuid>>,
    /// Custom fields to set (`null` clears one); the account's other keys stay. Each
    /// account's result is checked against the definitions as a PATCH's would be.
    pub custom_fields: Option<Map<String, Value>>,
    /// Set a contact restriction (`true`), or lift it (`false`, managers and admins).
    pub do_not_call: Option<bool>,
    pub do_not_email: Option<bool>,
    pub cease_communication: Option<bool>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<Option<NaiveDate>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portfolio: Option<Option<Uuid>>,
    /// Keys to set; a `null` value removes the key.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub custom_fields: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Flags::is_empty")]
    pub flags: Flags,
}

/// Contact restrictions a bulk update sets or lifts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    pub do_not_call: Option<bool>,
    pub do_not_email: Option<bool>,
    pub cease_communication: Option<bool>,
}

impl Flags {
    pub fn is_empty(&self) -> bool {
        *self == Flags::default()
    }

    /// Whether the patch lifts a restriction (sets one to `false`).
    pub fn lifts(&self) -> bool {
        [self.do_not_call, self.do_not_email, self.cease_communication].contains(&Some(false))
    }
}

impl BulkPatch {
    /// Whether each account's result must be checked on its own (its custom fields
    /// against the definitions, for its currency and portfolio).
    pub fn checks_each_account(&self) -> bool {
        !self.custom_fields.is_empty() || self.portfolio.is_some()
    }

    /// Whether the patch changes fields only managers and admins change in bulk.
    pub fn manages(&self) -> bool {
        self.due_date.is_some() || self.portfolio.is_some()
    }

    /// `current` with this patch's custom fields set (a null removes its key).
    pub fn custom_fields_of(&self, current: &Map<String, Value>) -> Map<String, Value> {
        let mut map = current.clone();
        for (key, value) in &self.custom_fields {
            match value {
                Value::Null => map.remove(key),
                other => map.insert(key.clone(), other.clone()),
            };
        }
        map
    }
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
        if let Some(Some(day)) = self.due_date
            && !dates::YEARS.contains(&day.year())
        {
            errors.push(FieldError::new("due_date", dates::OUT_OF_RANGE));
        }
        let custom_fields = self.custom_fields.unwrap_or_default();
        if serde_json::to_vec(&custom_fields).map_or(usize::MAX, |v| v.len()) > MAX_CUSTOM_FIELDS_BYTES {
            errors.push(FieldError::new(
                "custom_fields",
                format!("must be at most {MAX_CUSTOM_FIELDS_BYTES} bytes of JSON"),
            ));
        }
        let patch = BulkPatch {
            status: self.status,
            assign: self.assigned_agent_id,
            tags_add,
            tags_remove,
            next_action: self.next_action_at,
            due_date: self.due_date,
            portfolio: self.portfolio_id,
            custom_fields,
            flags: Flags {
                do_not_call: self.do_not_call,
                do_not_email: self.do_not_email,
                cease_communication: self.cease_communication,
            },
        };
        if patch == BulkPatch::default() && errors.is_empty() {
            errors.push(FieldError::new(
                "patch",
                "name at least one of status, assigned_agent_id, tags_add, tags_remove, next_action_at, due_date, \
                 portfolio_id, custom_fields, do_not_call, do_not_email, cease_communication",
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

    #[test]
    fn custom_fields_are_set_key_by_key_and_lifting_is_told_from_setting() {
        let patch = body(serde_json::json!({"custom_fields": {"fee": "2.50", "product": null}, "do_not_call": true}))
            .validate()
            .unwrap();
        let current = serde_json::json!({"product": "Card", "branch": "North"});
        let merged = patch.custom_fields_of(current.as_object().unwrap());
        assert_eq!(Value::Object(merged), serde_json::json!({"fee": "2.50", "branch": "North"}));
        assert!(patch.checks_each_account() && !patch.manages() && !patch.flags.lifts());
        let lifting = body(serde_json::json!({"cease_communication": false, "due_date": null}))
            .validate()
            .unwrap();
        assert!(lifting.flags.lifts() && lifting.manages() && !lifting.checks_each_account());
        let errors = body(serde_json::json!({"due_date": "3001-01-01"})).validate().unwrap_err();
        assert_eq!(errors[0].field, "due_date");
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
