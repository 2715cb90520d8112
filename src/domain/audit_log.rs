//! The audit trail's rules that need no database: a row's digest and how a block of
//! sealed rows is chained to the block before it (the same computation for the sealer and
//! for `audit verify`), which partitions retention may drop, and the filters an audit
//! list takes.

use chrono::{DateTime, Months, NaiveDate, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The columns of an audit row, every one of which its digest covers.
/// `details` is PostgreSQL's text of the JSON (one text per value), `xid` the writing
/// transaction's id as text.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Entry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub xid: String,
    pub actor: Option<Uuid>,
    pub job: Option<String>,
    pub db_user: String,
    pub address: Option<String>,
    pub request_id: Option<String>,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub account_id: Option<Uuid>,
    pub by_rule: bool,
    pub details: String,
}

/// Where a partition's chain starts: a hash of its name, so a partition's rows cannot be
/// passed off as another's.
pub fn genesis(partition: &str) -> Hash {
    Sha256::digest(format!("arrears audit chain {partition}")).into()
}

/// The digest of one row: each field length-prefixed (absent ones marked apart from
/// empty ones), so no two different rows give the same bytes.
pub fn digest(entry: &Entry) -> Hash {
    fn field(hasher: &mut Sha256, value: Option<&[u8]>) {
        match value {
            Some(bytes) => {
                hasher.update(u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
                hasher.update(bytes);
            }
            None => hasher.update(u32::MAX.to_be_bytes()),
        }
    }
    let mut h = Sha256::new();
    h.update(entry.id.to_be_bytes());
    h.update(entry.at.timestamp_micros().to_be_bytes());
    field(&mut h, Some(entry.xid.as_bytes()));
    field(&mut h, entry.actor.as_ref().map(|u| u.as_bytes().as_slice()));
    field(&mut h, entry.job.as_deref().map(str::as_bytes));
    field(&mut h, Some(entry.db_user.as_bytes()));
    field(&mut h, entry.address.as_deref().map(str::as_bytes));
    field(&mut h, entry.request_id.as_deref().map(str::as_bytes));
    field(&mut h, Some(entry.action.as_bytes()));
    field(&mut h, Some(entry.entity.as_bytes()));
    field(&mut h, entry.entity_id.as_deref().map(str::as_bytes));
    field(&mut h, entry.account_id.as_ref().map(|u| u.as_bytes().as_slice()));
    h.update([u8::from(entry.by_rule)]);
    field(&mut h, Some(entry.details.as_bytes()));
    h.finalize().into()
}

/// A block of rows sealed together: the transactions it covers (`xid_from <= xid <
/// xid_below`), where its first row stands in the partition's chain, and each row's id
/// and digest in chain order.
#[derive(Clone, Debug)]
pub struct Block {
    pub position: i64,
    pub xid_from: u64,
    pub xid_below: u64,
    pub ids: Vec<i64>,
    pub digests: Vec<u8>,
}

impl Block {
    /// The stored digest of the row at `index`.
    pub fn digest(&self, index: usize) -> Option<&[u8]> {
        self.digests.get(index * 32..index * 32 + 32)
    }

    /// The position of the block's last row.
    pub fn last_position(&self) -> i64 {
        self.position + self.ids.len() as i64 - 1
    }

    /// The block's hash after the block whose hash is `previous`: every id and digest,
    /// the positions and the transactions covered, so no row, order or range can change
    /// without changing it.
    pub fn hash(&self, previous: &Hash) -> Hash {
        let mut h = Sha256::new();
        h.update(previous);
        h.update(self.position.to_be_bytes());
        h.update(self.xid_from.to_be_bytes());
        h.update(self.xid_below.to_be_bytes());
        h.update((self.ids.len() as u64).to_be_bytes());
        for id in &self.ids {
            h.update(id.to_be_bytes());
        }
        h.update(&self.digests);
        h.finalize().into()
    }
}

/// The month a partition named `audit_log_pYYYYMM` holds (UTC); `None` for the default
/// partition and anything else.
pub fn partition_month(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("audit_log_p")?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::from_ymd_opt(digits[..4].parse().ok()?, digits[4..].parse().ok()?, 1)
}

/// Whether retention may drop the partition of `month`: only when its newest possible row
/// (the month's last instant) is older than `retention_days` before `now`. A partition
/// that is not a month (the default one) is never dropped.
pub fn expired(month: Option<NaiveDate>, now: DateTime<Utc>, retention_days: u32) -> bool {
    let Some(end) = month.and_then(|m| m.checked_add_months(Months::new(1))) else {
        return false;
    };
    let end = end.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    end.is_some_and(|end| end <= now - chrono::Duration::days(i64::from(retention_days)))
}

/// The entities whose entries belong to an account (`account_id` set): they are found
/// through the account's index, and the entity index holds only the others.
pub const ACCOUNT_ENTITIES: [&str; 7] = ["account", "payment", "promise", "plan", "override", "document", "activity"];

/// What an audit list is narrowed to; every field optional.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub actor: Option<Uuid>,
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    /// An action (`account.update`) or every action of an entity (`account.*` is written
    /// `account.`, a prefix).
    pub action: Option<String>,
    pub account: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            id: 7,
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            xid: "1234".to_owned(),
            actor: Some(Uuid::nil()),
            job: None,
            db_user: "arrears".to_owned(),
            address: Some("10.0.0.1".to_owned()),
            request_id: Some("req".to_owned()),
            action: "account.update".to_owned(),
            entity: "account".to_owned(),
            entity_id: Some("a".to_owned()),
            account_id: None,
            by_rule: false,
            details: r#"{"changes": {}}"#.to_owned(),
        }
    }

    fn block(entries: &[Entry]) -> Block {
        Block {
            position: 1,
            xid_from: 10,
            xid_below: 20,
            ids: entries.iter().map(|e| e.id).collect(),
            digests: entries.iter().flat_map(digest).collect(),
        }
    }

    #[test]
    fn every_field_changes_a_rows_digest() {
        let base = digest(&entry());
        assert_eq!(base, digest(&entry()), "the same row gives the same digest");
        let edits: [fn(&mut Entry); 8] = [
            |e| e.details = r#"{"changes": {"a": 1}}"#.to_owned(),
            |e| e.actor = None,
            |e| e.job = Some(String::new()),
            |e| e.address = None,
            |e| e.at += chrono::Duration::microseconds(1),
            |e| e.by_rule = true,
            |e| e.action = "account.delete".to_owned(),
            |e| e.xid = "1235".to_owned(),
        ];
        for edit in edits {
            let mut changed = entry();
            edit(&mut changed);
            assert_ne!(base, digest(&changed));
        }
    }

    #[test]
    fn an_absent_field_is_not_an_empty_one() {
        let mut absent = entry();
        absent.job = None;
        let mut empty = entry();
        empty.job = Some(String::new());
        assert_ne!(digest(&absent), digest(&empty));
    }

    #[test]
    fn a_blocks_hash_follows_the_block_before_and_everything_it_lists() {
        let mut second = entry();
        second.id = 8;
        let sealed = block(&[entry(), second.clone()]);
        let start = genesis("audit_log_p202611");
        let base = sealed.hash(&start);
        assert_eq!(base, block(&[entry(), second.clone()]).hash(&start));
        assert_ne!(base, sealed.hash(&genesis("audit_log_p202612")), "another partition's chain");
        assert_ne!(base, block(&[second.clone(), entry()]).hash(&start), "another order");
        assert_ne!(base, block(&[entry()]).hash(&start), "a row left out");
        let edits: [fn(&mut Block); 4] = [
            |b| b.position = 2,
            |b| b.xid_from = 11,
            |b| b.xid_below = 19,
            |b| b.digests[40] ^= 1,
        ];
        for edit in edits {
            let mut changed = sealed.clone();
            edit(&mut changed);
            assert_ne!(base, changed.hash(&start));
        }
        assert_eq!(sealed.digest(1), Some(digest(&second).as_slice()));
        assert_eq!(sealed.digest(2), None);
        assert_eq!(sealed.last_position(), 2);
    }

    #[test]
    fn retention_drops_only_months_wholly_older_than_the_period() {
        let now = "2029-11-26T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let month = |name: &str| partition_month(name);
        assert_eq!(month("audit_log_p202611"), NaiveDate::from_ymd_opt(2026, 11, 1));
        assert_eq!(month("audit_log_default"), None);
        assert_eq!(month("audit_log_p2026113"), None);
        // Three years of 1,096 days before 2029-11-26 12:00 is 2026-11-26 12:00: November
        // 2026 still holds younger rows, October 2026 does not.
        assert!(!expired(month("audit_log_p202611"), now, 1096));
        assert!(expired(month("audit_log_p202610"), now, 1096));
        assert!(!expired(month("audit_log_default"), now, 1));
        assert!(!expired(month("audit_log_p202910"), now, 30));
        assert!(expired(month("audit_log_p202909"), now, 30));
    }
}
