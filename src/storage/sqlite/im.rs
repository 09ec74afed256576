//! Rosters (RFC 6121 §2), offline messages (XEP-0160) and per-user
//! documents in SQLite (tables of schema migration 2).
//!
//! Writes go through the writer connection, each in one `BEGIN IMMEDIATE`
//! transaction (so a read-then-write such as the offline limit check cannot
//! race another writer, in this process or in `xmppd ctl`), and are durable
//! when they return (`synchronous=FULL`). Reads use the reader pool; a read
//! made of several statements (the roster and its version) runs in one read
//! transaction so it sees a single snapshot.
//!
//! Semantics shared by the three aggregates:
//! - A write for an account that does not exist fails with
//!   [`StoreError::NotFound`]`("user@host")`: inserts are refused by the
//!   foreign key (`SQLITE_CONSTRAINT_FOREIGNKEY`), and deletes that matched
//!   nothing check that the account exists.
//! - Reads for an account that does not exist return the empty answer
//!   (version 0 and no items, no messages, no value).
//! - Removing an account removes its roster, roster version, offline
//!   messages and documents (`ON DELETE CASCADE`; `foreign_keys=ON` is set
//!   on every connection by `connect`).
//! - The roster version changes exactly when the roster does: removing an
//!   absent item is a no-op that returns the current version.
//!
//! Groups are stored in one `TEXT` column as the concatenation of
//! `<byte length>:<name>` for each group, in the item's order (e.g.
//! `["a,b", "x:y"]` is `3:a,b3:x:y`, and no groups is the empty string).
//! Length prefixes make every name round-trip (commas, colons, newlines,
//! control characters, the empty name) without escaping; a value that does
//! not parse exactly is reported as corruption, never silently truncated.

use rusqlite::types::Type;
use rusqlite::{ffi, params, OptionalExtension, Row, Transaction, TransactionBehavior};

use super::{backend, jid as user_jid, now_unix, SqliteStore};
use crate::storage::{OfflineMessage, OfflineStore, RosterItem, RosterStore, StoreError, Subscription, UserDataStore};

/// Columns read into a [`RosterItem`] by [`item`], in this order.
macro_rules! item_columns {
    () => {
        "jid, name, subscription, ask_out, pending_in, pending_in_stanza, approved, groups, visible"
    };
}

const ACCOUNT_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM accounts WHERE host = ?1 AND username = ?2)";

const SELECT_VERSION: &str = "SELECT version FROM roster_versions WHERE host = ?1 AND username = ?2";
/// Insert-or-increment, in one statement.
const BUMP_VERSION: &str = "INSERT INTO roster_versions (host, username, version) VALUES (?1, ?2, 1) \
     ON CONFLICT (host, username) DO UPDATE SET version = version + 1 RETURNING version";
const SELECT_ROSTER: &str =
    concat!("SELECT ", item_columns!(), " FROM roster_items WHERE host = ?1 AND username = ?2 ORDER BY jid");
const SELECT_ITEM: &str =
    concat!("SELECT ", item_columns!(), " FROM roster_items WHERE host = ?1 AND username = ?2 AND jid = ?3");
const UPSERT_ITEM: &str = "INSERT INTO roster_items (host, username, jid, name, subscription, ask_out, \
     pending_in, pending_in_stanza, approved, groups, visible) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
     ON CONFLICT (host, username, jid) DO UPDATE SET name = excluded.name, \
     subscription = excluded.subscription, ask_out = excluded.ask_out, pending_in = excluded.pending_in, \
     pending_in_stanza = excluded.pending_in_stanza, approved = excluded.approved, groups = excluded.groups, \
     visible = excluded.visible";
const DELETE_ITEM: &str = "DELETE FROM roster_items WHERE host = ?1 AND username = ?2 AND jid = ?3";

const COUNT_OFFLINE: &str = "SELECT COUNT(*) FROM offline_messages WHERE host = ?1 AND username = ?2";
pub(super) const INSERT_OFFLINE: &str =
    "INSERT INTO offline_messages (host, username, stamp, stanza) VALUES (?1, ?2, ?3, ?4)";
const SELECT_OFFLINE: &str =
    "SELECT id, stamp, stanza FROM offline_messages WHERE host = ?1 AND username = ?2 ORDER BY id";
const DELETE_OFFLINE: &str = "DELETE FROM offline_messages WHERE host = ?1 AND username = ?2 AND id <= ?3";

const SELECT_DATA: &str = "SELECT value FROM user_data WHERE host = ?1 AND username = ?2 AND key = ?3";
pub(super) const UPSERT_DATA: &str = "INSERT INTO user_data (host, username, key, value) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (host, username, key) DO UPDATE SET value = excluded.value";
const DELETE_DATA: &str = "DELETE FROM user_data WHERE host = ?1 AND username = ?2 AND key = ?3";

/// Encode groups as length-prefixed names (see the module documentation).
fn encode_groups(groups: &[String]) -> String {
    groups.iter().map(|g| format!("{}:{g}", g.len())).collect()
}

/// Decode [`encode_groups`]; `None` if `s` is not exactly such a list.
fn decode_groups(mut s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let (len, rest) = s.split_once(':')?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: usize = len.parse().ok()?;
        out.push(rest.get(..n)?.to_owned());
        s = &rest[n..];
    }
    Some(out)
}

/// A column holding a value this code never writes.
fn corrupt(col: usize, what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, format!("invalid {what} {value:?}").into())
}

/// One row of [`item_columns!`].
fn item(row: &Row<'_>) -> rusqlite::Result<RosterItem> {
    let sub: String = row.get(2)?;
    let groups: String = row.get(7)?;
    Ok(RosterItem {
        jid: row.get(0)?,
        name: row.get(1)?,
        subscription: Subscription::parse(&sub).ok_or_else(|| corrupt(2, "subscription", &sub))?,
        ask_out: row.get(3)?,
        pending_in: row.get(4)?,
        pending_in_stanza: row.get(5)?,
        approved: row.get(6)?,
        groups: decode_groups(&groups).ok_or_else(|| corrupt(7, "group list", &groups))?,
        visible: row.get(8)?,
    })
}

fn is_foreign_key_failure(e: &rusqlite::Error) -> bool {
    e.sqlite_error().is_some_and(|f| f.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

fn account_exists(tx: &Transaction<'_>, user: &str, host: &str) -> rusqlite::Result<bool> {
    tx.prepare_cached(ACCOUNT_EXISTS)?.query_row(params![host, user], |r| r.get(0))
}

/// Insert or replace one roster item (no version change).
pub(super) fn upsert_item(tx: &Transaction<'_>, user: &str, host: &str, it: &RosterItem) -> rusqlite::Result<usize> {
    tx.prepare_cached(UPSERT_ITEM)?.execute(params![
        host,
        user,
        it.jid,
        it.name,
        it.subscription.as_str(),
        it.ask_out,
        it.pending_in,
        it.pending_in_stanza,
        it.approved,
        encode_groups(&it.groups),
        it.visible,
    ])
}

/// Increment (or create at 1) the roster version; returns the new version.
pub(super) fn bump_version(tx: &Transaction<'_>, user: &str, host: &str) -> rusqlite::Result<u64> {
    tx.prepare_cached(BUMP_VERSION)?.query_row(params![host, user], |r| r.get(0))
}

impl SqliteStore {
    /// Run `f` in one immediate transaction on the writer and commit it.
    /// `f` returns `Ok(None)` when the account does not exist (nothing is
    /// committed), which becomes `NotFound`, as does a foreign-key failure.
    fn write<T>(
        &self,
        op: &str,
        user: &str,
        host: &str,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<Option<T>>,
    ) -> Result<T, StoreError> {
        let fail = |e: rusqlite::Error| {
            if is_foreign_key_failure(&e) {
                StoreError::NotFound(user_jid(user, host))
            } else {
                StoreError::Backend(format!("{}: {e}", self.ctx(op, user, host)))
            }
        };
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(fail)?;
        match f(&tx).map_err(fail)? {
            Some(v) => {
                tx.commit().map_err(fail)?;
                Ok(v)
            }
            None => Err(StoreError::NotFound(user_jid(user, host))),
        }
    }
}

impl RosterStore for SqliteStore {
    fn roster(&self, user: &str, host: &str) -> Result<(u64, Vec<RosterItem>), StoreError> {
        let ctx = self.ctx("reading roster of", user, host);
        let mut conn = self.reader();
        // One snapshot for both statements: a version newer than the items
        // would let a client cache a stale roster under that version.
        let tx = conn.transaction().map_err(backend(&ctx))?;
        let version = tx
            .prepare_cached(SELECT_VERSION)
            .and_then(|mut s| s.query_row(params![host, user], |r| r.get::<_, u64>(0)).optional())
            .map_err(backend(&ctx))?
            .unwrap_or(0);
        let items = tx
            .prepare_cached(SELECT_ROSTER)
            .and_then(|mut s| s.query_map(params![host, user], item)?.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(backend(&ctx))?;
        // Read-only: dropping the transaction just ends it.
        drop(tx);
        Ok((version, items))
    }

    fn roster_item(&self, user: &str, host: &str, jid: &str) -> Result<Option<RosterItem>, StoreError> {
        let conn = self.reader();
        conn.prepare_cached(SELECT_ITEM)
            .and_then(|mut s| s.query_row(params![host, user, jid], item).optional())
            .map_err(backend(&self.ctx("reading a roster item of", user, host)))
    }

    fn put_roster_item(&self, user: &str, host: &str, it: &RosterItem) -> Result<u64, StoreError> {
        self.write("writing a roster item of", user, host, |tx| {
            upsert_item(tx, user, host, it)?;
            bump_version(tx, user, host).map(Some)
        })
    }

    /// Removing an absent item changes nothing and returns the current
    /// version (0 if the roster was never written).
    fn remove_roster_item(&self, user: &str, host: &str, jid: &str) -> Result<u64, StoreError> {
        self.write("removing a roster item of", user, host, |tx| {
            if tx.prepare_cached(DELETE_ITEM)?.execute(params![host, user, jid])? > 0 {
                return bump_version(tx, user, host).map(Some);
            }
            // A version row implies the account (it cascades with it).
            match tx.prepare_cached(SELECT_VERSION)?.query_row(params![host, user], |r| r.get(0)).optional()? {
                Some(v) => Ok(Some(v)),
                None => Ok(account_exists(tx, user, host)?.then_some(0)),
            }
        })
    }
}

impl OfflineStore for SqliteStore {
    /// The count and the insert share one immediate transaction, so
    /// concurrent pushes never exceed `limit`.
    fn push_offline(&self, user: &str, host: &str, stanza: &str, limit: usize) -> Result<bool, StoreError> {
        self.write("storing an offline message for", user, host, |tx| {
            let stored: u64 = tx.prepare_cached(COUNT_OFFLINE)?.query_row(params![host, user], |r| r.get(0))?;
            if stored >= u64::try_from(limit).unwrap_or(u64::MAX) {
                // Only `limit == 0` can get here with no messages: the
                // insert would not have checked the account, so do it here.
                return Ok((stored > 0 || account_exists(tx, user, host)?).then_some(false));
            }
            tx.prepare_cached(INSERT_OFFLINE)?.execute(params![host, user, now_unix(), stanza])?;
            Ok(Some(true))
        })
    }

    fn offline(&self, user: &str, host: &str) -> Result<Vec<OfflineMessage>, StoreError> {
        let conn = self.reader();
        conn.prepare_cached(SELECT_OFFLINE)
            .and_then(|mut s| {
                s.query_map(params![host, user], |r| {
                    Ok(OfflineMessage { id: r.get(0)?, stamp: r.get(1)?, stanza: r.get(2)? })
                })?
                .collect()
            })
            .map_err(backend(&self.ctx("reading offline messages of", user, host)))
    }

    fn remove_offline(&self, user: &str, host: &str, upto: i64) -> Result<(), StoreError> {
        self.write("removing offline messages of", user, host, |tx| {
            let removed = tx.prepare_cached(DELETE_OFFLINE)?.execute(params![host, user, upto])?;
            Ok((removed > 0 || account_exists(tx, user, host)?).then_some(()))
        })
    }

    fn count_offline(&self, user: &str, host: &str) -> Result<u64, StoreError> {
        let conn = self.reader();
        conn.prepare_cached(COUNT_OFFLINE)
            .and_then(|mut s| s.query_row(params![host, user], |r| r.get(0)))
            .map_err(backend(&self.ctx("counting offline messages of", user, host)))
    }
}

impl UserDataStore for SqliteStore {
    fn get_data(&self, user: &str, host: &str, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(queued) = self.deferred.get(host, user, key) {
            return Ok(queued);
        }
        let conn = self.reader();
        conn.prepare_cached(SELECT_DATA)
            .and_then(|mut s| s.query_row(params![host, user, key], |r| r.get(0)).optional())
            .map_err(backend(&self.ctx("reading user data of", user, host)))
    }

    fn set_data(&self, user: &str, host: &str, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        self.write("writing user data of", user, host, |tx| {
            // Under the writer connection: a queued older value must not
            // overwrite this one later (deferred.rs).
            self.deferred.forget_key(host, user, key);
            set_data_in(tx, user, host, key, value)
        })
    }

    fn set_data_deferred(&self, user: &str, host: &str, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        self.deferred.put(host, user, key, value);
        Ok(())
    }
}

fn set_data_in(
    tx: &Transaction<'_>,
    user: &str,
    host: &str,
    key: &str,
    value: Option<&str>,
) -> rusqlite::Result<Option<()>> {
    match value {
        Some(v) => {
            tx.prepare_cached(UPSERT_DATA)?.execute(params![host, user, key, v])?;
            Ok(Some(()))
        }
        None => {
            let removed = tx.prepare_cached(DELETE_DATA)?.execute(params![host, user, key])?;
            Ok((removed > 0 || account_exists(tx, user, host)?).then_some(()))
        }
    }
}

#[cfg(test)]
#[path = "im_tests.rs"]
pub(super) mod tests;
