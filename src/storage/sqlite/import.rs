//! Bulk writes for `import_piefxis` and `register_bulk`: many accounts in
//! one transaction, so an import of thousands of users costs a few fsyncs
//! instead of several per user.

use rusqlite::{params, TransactionBehavior};

use super::im::{bump_version, upsert_item, INSERT_OFFLINE, UPSERT_DATA};
use super::{backend, insert_account, jid, now_unix, SqliteStore};
use crate::piefxis::{ImportStats, UserRecord};
use crate::storage::{Credentials, ScramKeys, StoreError};

impl SqliteStore {
    /// Import accounts with everything they own, in one transaction.
    /// Records whose account already exists are skipped whole (counted in
    /// `existed`); records without credentials get an account that cannot
    /// log in until its password is set. All-or-nothing on error.
    pub fn import_users(&self, records: &[UserRecord]) -> Result<ImportStats, StoreError> {
        let ctx = format!("importing into {}", self.path.display());
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend(&ctx))?;
        let now = now_unix();
        let mut stats = ImportStats::default();
        let none = Credentials { sha1: ScramKeys::absent(), sha256: ScramKeys::absent() };
        for r in records {
            let (u, h) = (r.user.as_str(), r.host.as_str());
            let fail = |e: rusqlite::Error| StoreError::Backend(format!("{ctx}: {} ({}): {e}", jid(u, h), r.origin));
            if insert_account(&tx, u, h, r.creds.as_ref().unwrap_or(&none), now).map_err(fail)? == 0 {
                stats.existed += 1;
                continue;
            }
            stats.created += 1;
            for item in &r.roster {
                upsert_item(&tx, u, h, item).map_err(fail)?;
                stats.roster_items += 1;
            }
            if !r.roster.is_empty() {
                bump_version(&tx, u, h).map_err(fail)?;
            }
            for (stamp, stanza) in &r.offline {
                tx.prepare_cached(INSERT_OFFLINE)
                    .and_then(|mut s| s.execute(params![h, u, stamp, stanza]))
                    .map_err(fail)?;
                stats.offline += 1;
            }
            for (key, value) in &r.data {
                tx.prepare_cached(UPSERT_DATA).and_then(|mut s| s.execute(params![h, u, key, value])).map_err(fail)?;
                match key.as_str() {
                    crate::modules::vcard::KEY => stats.vcards += 1,
                    k if k.starts_with("private:") => stats.private += 1,
                    _ => {}
                }
            }
        }
        tx.commit().map_err(backend(&ctx))?;
        Ok(stats)
    }

    /// Every user-data key of an account and its value, sorted by key (for
    /// export).
    pub fn user_data(&self, user: &str, host: &str) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.reader();
        conn.prepare_cached("SELECT key, value FROM user_data WHERE host = ?1 AND username = ?2 ORDER BY key")
            .and_then(|mut s| {
                s.query_map(params![host, user], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(backend(&self.ctx("reading the data of", user, host)))
    }
}
