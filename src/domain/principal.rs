//! Who is asking: the caller every operation is authorised against.

use uuid::Uuid;

use crate::domain::refusal::Denied;
use crate::domain::role::{Action, NOT_ASSIGNED, Role, allows, works_account};

/// The authenticated caller of a request, with the role currently stored for them.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
}

impl Principal {
    pub fn can(&self, action: Action) -> bool {
        allows(self.role, action)
    }

    /// 403 unless the permission table allows `action` for this caller's role.
    pub fn require(&self, action: Action) -> Result<(), Denied> {
        if self.can(action) {
            Ok(())
        } else {
            Err(Denied(format!("role {} may not do this", self.role.as_str())))
        }
    }

    /// Work on an account (payments, activities, promises): any account for roles that
    /// may update any account, only assigned ones for agents, never for viewers.
    pub fn require_work_on(&self, assigned_agent_id: Option<Uuid>) -> Result<(), Denied> {
        self.require(Action::WorkAccount)?;
        self.require_assigned(assigned_agent_id)
    }

    /// 403 unless this caller works the account assigned to `assigned_agent_id`.
    pub fn require_assigned(&self, assigned_agent_id: Option<Uuid>) -> Result<(), Denied> {
        if works_account(self.role, self.user_id, assigned_agent_id) {
            Ok(())
        } else {
            Err(Denied(NOT_ASSIGNED.to_owned()))
        }
    }
}
