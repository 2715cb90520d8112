//! Roles and the one permission table.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Manager,
    Agent,
    Viewer,
    /// A self-registered user waiting for an admin to give them a role: may sign in and
    /// read their own profile, nothing else. Also what an unknown stored role reads as.
    Pending,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Admin, Role::Manager, Role::Agent, Role::Viewer, Role::Pending];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Agent => "agent",
            Role::Viewer => "viewer",
            Role::Pending => "pending",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// A stored role; one this build does not know grants nothing.
    pub fn stored(text: &str) -> Role {
        Role::parse(text).unwrap_or(Role::Pending)
    }

    /// Whether accounts may be assigned to a user of this role.
    pub fn works_accounts(self) -> bool {
        allows(self, Action::WorkAccount)
    }
}

/// Everything a route may need permission for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    ReadAccounts,
    /// Read every account in full: the personal data (email, phone, address, custom
    /// fields), contact history and timeline of accounts assigned to others. Agents read
    /// a summary of those ([`crate::domain::privacy::Access`]).
    ReadAnyAccount,
    /// Change workflow fields of an account assigned to the caller.
    UpdateAssignedWorkflow,
    /// Change any field of any account.
    UpdateAnyAccount,
    CreateAccount,
    AssignAccount,
    DeleteAccount,
    RestoreAccount,
    /// Record or complete a payment, log contact, make or cancel a promise: work on an
    /// account, limited to assigned accounts unless the role has `UpdateAnyAccount`.
    WorkAccount,
    /// Refund or reverse a completed payment.
    ReversePayment,
    /// Delete (soft) a file kept with an account, a document.
    DeleteDocument,
    /// Lift a legal block on contacting the debtor: clear `do_not_call`, `do_not_email`
    /// or `cease_communication`, or move an account out of `disputed`. Anyone who works
    /// an account may set them.
    LiftContactBlocks,
    /// Move an account into a status where nothing is owed (`paid`, `settled`,
    /// `closed`) while its balance is above zero: writing a debt off is a manager's
    /// decision, and a closed account's documents start towards their retention.
    ResolveOwingAccount,
    /// Let one contact attempt through the compliance guard, verify a dispute, and read
    /// the overrides.
    OverrideContact,
    /// See any agent's work queue and the team queue of unassigned accounts.
    SuperviseQueues,
    ManageUsers,
    /// Create, disable and enable the agents of one's own team and move their accounts
    /// (admins do all of it for every user through `ManageUsers`).
    ManageTeamAgents,
    /// Read the names, roles and teams of the people who work accounts.
    ReadAgents,
    /// Read the manager KPIs of every agent and team.
    ReadKpis,
    /// Read any account's history in the audit trail (agents read only their own
    /// accounts' history).
    ReadAccountHistory,
    /// Read and export the whole audit trail.
    ReadAudit,
    /// Read the portfolios and who is granted them.
    ReadPortfolios,
    /// Create, change, delete and grant portfolios.
    ManagePortfolios,
    /// See and work the accounts of every portfolio, granted or not.
    WorkEveryPortfolio,
    /// Create, change, delete and restore custom field definitions, and read deleted
    /// ones (every role that reads accounts reads the live ones).
    ManageFields,
    /// Create, change and delete message templates (everyone who works accounts reads
    /// the live ones).
    ManageTemplates,
    /// Read the messages debtors sent in from numbers no account has.
    ReadUnmatchedMessages,
    /// Read the operator's view of the process: memory, CPU, pool, statement timings,
    /// sync, jobs.
    ReadSystem,
}

/// The permission table: which roles may perform each action.
const PERMISSIONS: &[(Action, &[Role])] = &[
    (Action::ReadAccounts, &[Role::Admin, Role::Manager, Role::Agent, Role::Viewer]),
    (Action::ReadAnyAccount, &[Role::Admin, Role::Manager, Role::Viewer]),
    (Action::UpdateAssignedWorkflow, &[Role::Admin, Role::Manager, Role::Agent]),
    (Action::UpdateAnyAccount, &[Role::Admin, Role::Manager]),
    (Action::CreateAccount, &[Role::Admin, Role::Manager]),
    (Action::AssignAccount, &[Role::Admin, Role::Manager]),
    (Action::DeleteAccount, &[Role::Admin, Role::Manager]),
    (Action::RestoreAccount, &[Role::Admin, Role::Manager]),
    (Action::WorkAccount, &[Role::Admin, Role::Manager, Role::Agent]),
    (Action::ReversePayment, &[Role::Admin, Role::Manager]),
    (Action::DeleteDocument, &[Role::Admin, Role::Manager]),
    (Action::LiftContactBlocks, &[Role::Admin, Role::Manager]),
    (Action::ResolveOwingAccount, &[Role::Admin, Role::Manager]),
    (Action::OverrideContact, &[Role::Admin, Role::Manager]),
    (Action::SuperviseQueues, &[Role::Admin, Role::Manager]),
    (Action::ManageUsers, &[Role::Admin]),
    (Action::ManageTeamAgents, &[Role::Admin, Role::Manager]),
    (Action::ReadAgents, &[Role::Admin, Role::Manager]),
    (Action::ReadKpis, &[Role::Admin, Role::Manager]),
    (Action::ReadAccountHistory, &[Role::Admin, Role::Manager]),
    (Action::ReadAudit, &[Role::Admin]),
    (Action::ReadPortfolios, &[Role::Admin, Role::Manager]),
    (Action::ManagePortfolios, &[Role::Admin]),
    (Action::WorkEveryPortfolio, &[Role::Admin]),
    (Action::ManageFields, &[Role::Admin]),
    (Action::ManageTemplates, &[Role::Admin, Role::Manager]),
    (Action::ReadUnmatchedMessages, &[Role::Admin, Role::Manager]),
    (Action::ReadSystem, &[Role::Admin]),
];

pub fn allows(role: Role, action: Action) -> bool {
    PERMISSIONS.iter().any(|(a, roles)| *a == action && roles.contains(&role))
}

/// The longest team name, in characters.
pub const MAX_TEAM_CHARS: usize = 100;

/// A team name, trimmed: 1 to [`MAX_TEAM_CHARS`] characters.
pub fn team_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > MAX_TEAM_CHARS {
        return Err(format!("must be 1 to {MAX_TEAM_CHARS} characters"));
    }
    Ok(name.to_owned())
}

/// Why a caller may not touch an account that the rule below keeps from them.
pub const NOT_ASSIGNED: &str = "this account is not assigned to you";

/// Why an agent may not read more than the summary of an account that is not theirs.
pub const NOT_YOURS_TO_READ: &str = "this account is not assigned to you: agents read the summary of other accounts (GET /api/v1/accounts/{id}) and may log an inbound contact or take a payment on them";

/// Why a user cannot be made an account's assignee.
pub const NOT_ASSIGNABLE: &str = "this user is disabled or does not work accounts, and cannot be assigned any";

/// Why a manager without a team may not manage users.
pub const NO_TEAM: &str = "you have no team, so you manage no one; an admin can set your team";

/// Whose accounts `user` (of `role`) works: every account for roles that may update any,
/// only the accounts assigned to them for the others. The one statement of the rule;
/// handlers and jobs ask it.
pub fn works_account(role: Role, user: Uuid, assigned_agent_id: Option<Uuid>) -> bool {
    allows(role, Action::UpdateAnyAccount) || assigned_agent_id == Some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_never_writes_and_only_admin_manages_users() {
        for action in [
            Action::UpdateAssignedWorkflow,
            Action::UpdateAnyAccount,
            Action::CreateAccount,
            Action::DeleteAccount,
            Action::WorkAccount,
            Action::ReversePayment,
        ] {
            assert!(!allows(Role::Viewer, action), "{action:?}");
        }
        assert!(allows(Role::Admin, Action::ManageUsers));
        let (agent, other) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(works_account(Role::Agent, agent, Some(agent)));
        assert!(!works_account(Role::Agent, agent, Some(other)));
        assert!(!works_account(Role::Agent, agent, None));
        assert!(works_account(Role::Manager, agent, Some(other)));
        assert!(!allows(Role::Manager, Action::ManageUsers));
        assert!(allows(Role::Manager, Action::ManageTeamAgents));
        assert!(!allows(Role::Agent, Action::ManageTeamAgents) && !allows(Role::Viewer, Action::ManageTeamAgents));
        assert!(allows(Role::Agent, Action::UpdateAssignedWorkflow));
        assert!(!allows(Role::Agent, Action::UpdateAnyAccount));
        assert!(!allows(Role::Agent, Action::LiftContactBlocks));
    }
}
