//! What a caller may read of an account: all of it, or the summary an agent reads of an
//! account that is not theirs, enough to take an inbound call and a payment and no more of
//! the debtor's personal data (docs/security.md#what-an-agent-reads).

use serde::Serialize;
use uuid::Uuid;

use crate::domain::account::Address;
use crate::domain::document::AccountDoc;
use crate::domain::principal::Principal;
use crate::domain::role::{Action, works_account};

/// How much of an account an answer shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Every field.
    Full,
    /// An agent's read of an account assigned to someone else or to no one: the email and
    /// phone masked, the address, external reference, tags and custom fields left out.
    Summary,
}

impl Access {
    /// What `caller` reads of an account assigned to `assigned_agent_id`.
    pub fn of(caller: &Principal, assigned_agent_id: Option<Uuid>) -> Access {
        if caller.can(Action::ReadAnyAccount) || works_account(caller.role, caller.user_id, assigned_agent_id) {
            Access::Full
        } else {
            Access::Summary
        }
    }

    /// `doc` as this access shows it.
    pub fn apply(self, mut doc: AccountDoc) -> AccountDoc {
        if self == Access::Summary {
            doc.email = doc.email.as_deref().map(mask_email);
            doc.phone = doc.phone.as_deref().map(mask_phone);
            doc.address = Address::default();
            doc.external_ref = None;
            doc.tags.clear();
            doc.custom_fields.clear();
            doc.zone = None;
        }
        doc
    }
}

/// The mark that stands for hidden characters.
const HIDDEN: &str = "•••";

/// The first character of the local part and the whole domain: `j•••@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}{HIDDEN}@{domain}")
        }
        None => HIDDEN.to_owned(),
    }
}

/// The last four digits only: `••• 0187`.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let last: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("{HIDDEN} {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_what_confirms_a_caller_and_nothing_more() {
        assert_eq!(mask_email("jose.alvarez@mail.example.com"), "j•••@mail.example.com");
        assert_eq!(mask_email("not an email"), "•••");
        assert_eq!(mask_phone("+1 (201) 555-0187"), "••• 0187");
        assert_eq!(mask_phone("12"), "••• 12");
    }
}
