//! Rosters (RFC 6121 §2), offline messages (XEP-0160) and per-user
//! documents in SQLite. Writes go through the writer connection in one
//! transaction each and are durable when they return; reads use the pool.
//!
//! Groups are stored in one column as a list of length-prefixed names
//! (`<byte length>:<name>` concatenated), so any group name round-trips.

use super::{backend, SqliteStore};
use crate::storage::{OfflineMessage, OfflineStore, RosterItem, RosterStore, StoreError, Subscription, UserDataStore};
use rusqlite::{params, ErrorCode, OptionalExtension, Row};

const ITEM_COLUMNS: &str = "jid, name, subscription, ask_out, pending_in, pending_in_stanza, approved, groups, visible";

fn encode_groups(groups: &[String]) -> String {
    groups.iter().map(|g| format!("{}:{g}", g.len())).collect()
}

fn decode_groups(mut s: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some((len, rest)) = s.split_once(':') {
        let Ok(n) = len.parse::<usize>() else { break };
        let Some(g) = rest.get(..n) else { break };
        out.push(g.to_string());
        s = &rest[n..];
    }
    out
}

fn item(row: &Row<'_>) -> rusqlite::Result<RosterItem> {
    let sub: String = row.get(2)?;
    let groups: String = row.get(7)?;
    Ok(RosterItem {
        jid: row.get(0)?,
        name: row.get(1)?,
        subscription: Subscription::parse(&sub).unwrap_or_default(),
        ask_out: row.get(3)?,
        pending_in: row.get(4)?,
        pending_in_stanza: row.get(5)?,
        approved: row.get(6)?,
        groups: decode_groups(&groups),
        visible: row.get(8)?,
    })
}

/// A foreign-key failure means the account does not exist.
fn missing_account<'a>(user: &str, host: &str, ctx: &'a str) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
    let user = user.to_string();
    let host = host.to_string();
    move |e| match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::NotFound(format!("{user}@{host}")),
        _ => backend(ctx)(e),
    }
}

fn bump_version(tx: &rusqlite::Transaction<'_>, user: &str, host: &str) -> rusqlite::Result<u64> {
    tx.prepare_cached(
        "INSERT INTO roster_versions (host, username, version) VALUES (?1, ?2, 1) \
         ON CONFLICT (host, username) DO UPDATE SET version = version + 1",
    )?
    .execute(params![host, user])?;
    tx.prepare_cached("SELECT version FROM roster_versions WHERE host = ?1 AND username = ?2")?
        .query_row(params![host, user], |r| r.get::<_, i64>(0))
        .map(|v| v as u64)
}

impl RosterStore for SqliteStore {
    fn roster(&self, user: &str, host: &str) -> Result<(u64, Vec<RosterItem>), StoreError> {
        let ctx = self.ctx("reading roster", user, host);
        let conn = self.reader();
        let version: i64 = conn
            .prepare_cached("SELECT version FROM roster_versions WHERE host = ?1 AND username = ?2")
            .and_then(|mut s| s.query_row(params![host, user], |r| r.get(0)).optional())
            .map_err(backend(&ctx))?
            .unwrap_or(0);
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM roster_items WHERE host = ?1 AND username = ?2 ORDER BY jid"
            ))
            .map_err(backend(&ctx))?;
        let items = stmt.query_map(params![host, user], item).and_then(|r| r.collect()).map_err(backend(&ctx))?;
        Ok((version as u64, items))
    }

    fn roster_item(&self, user: &str, host: &str, jid: &str) -> Result<Option<RosterItem>, StoreError> {
        let ctx = self.ctx("reading roster item", user, host);
        let conn = self.reader();
        conn.prepare_cached(&format!(
            "SELECT {ITEM_COLUMNS} FROM roster_items WHERE host = ?1 AND username = ?2 AND jid = ?3"
        ))
        .and_then(|mut s| s.query_row(params![host, user, jid], item).optional())
        .map_err(backend(&ctx))
    }

    fn put_roster_item(&self, user: &str, host: &str, it: &RosterItem) -> Result<u64, StoreError> {
        let ctx = self.ctx("writing roster item", user, host);
        let mut conn = self.writer();
        let tx = conn.transaction().map_err(backend(&ctx))?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO roster_items (host, username, jid, name, subscription, ask_out, pending_in, \
             pending_in_stanza, approved, groups, visible) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .and_then(|mut s| {
            s.execute(params![
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
                it.visible
            ])
        })
        .map_err(missing_account(user, host, &ctx))?;
        let v = bump_version(&tx, user, host).map_err(missing_account(user, host, &ctx))?;
        tx.commit().map_err(backend(&ctx))?;
        Ok(v)
    }

    fn remove_roster_item(&self, user: &str, host: &str, jid: &str) -> Result<u64, StoreError> {
        let ctx = self.ctx("removing roster item", user, host);
        let mut conn = self.writer();
        let tx = conn.transaction().map_err(backend(&ctx))?;
        tx.prepare_cached("DELETE FROM roster_items WHERE host = ?1 AND username = ?2 AND jid = ?3")
            .and_then(|mut s| s.execute(params![host, user, jid]))
            .map_err(backend(&ctx))?;
        let v = bump_version(&tx, user, host).map_err(missing_account(user, host, &ctx))?;
        tx.commit().map_err(backend(&ctx))?;
        Ok(v)
    }
}

impl OfflineStore for SqliteStore {
    fn push_offline(&self, user: &str, host: &str, stanza: &str, limit: usize) -> Result<bool, StoreError> {
        let ctx = self.ctx("storing offline message", user, host);
        let mut conn = self.writer();
        let tx = conn.transaction().map_err(backend(&ctx))?;
        let n: i64 = tx
            .prepare_cached("SELECT COUNT(*) FROM offline_messages WHERE host = ?1 AND username = ?2")
            .and_then(|mut s| s.query_row(params![host, user], |r| r.get(0)))
            .map_err(backend(&ctx))?;
        if n as usize >= limit {
            return Ok(false);
        }
        tx.prepare_cached("INSERT INTO offline_messages (host, username, stamp, stanza) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| s.execute(params![host, user, super::now_unix(), stanza]))
            .map_err(missing_account(user, host, &ctx))?;
        tx.commit().map_err(backend(&ctx))?;
        Ok(true)
    }

    fn offline(&self, user: &str, host: &str) -> Result<Vec<OfflineMessage>, StoreError> {
        let ctx = self.ctx("reading offline messages", user, host);
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, stamp, stanza FROM offline_messages WHERE host = ?1 AND username = ?2 ORDER BY id",
            )
            .map_err(backend(&ctx))?;
        stmt.query_map(params![host, user], |r| {
            Ok(OfflineMessage { id: r.get(0)?, stamp: r.get(1)?, stanza: r.get(2)? })
        })
        .and_then(|r| r.collect())
        .map_err(backend(&ctx))
    }

    fn remove_offline(&self, user: &str, host: &str, upto: i64) -> Result<(), StoreError> {
        let ctx = self.ctx("removing offline messages", user, host);
        let conn = self.writer();
        conn.prepare_cached("DELETE FROM offline_messages WHERE host = ?1 AND username = ?2 AND id <= ?3")
            .and_then(|mut s| s.execute(params![host, user, upto]))
            .map_err(backend(&ctx))?;
        Ok(())
    }

    fn count_offline(&self, user: &str, host: &str) -> Result<u64, StoreError> {
        let ctx = self.ctx("counting offline messages", user, host);
        let conn = self.reader();
        conn.prepare_cached("SELECT COUNT(*) FROM offline_messages WHERE host = ?1 AND username = ?2")
            .and_then(|mut s| s.query_row(params![host, user], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
            .map_err(backend(&ctx))
    }
}

impl UserDataStore for SqliteStore {
    fn get_data(&self, user: &str, host: &str, key: &str) -> Result<Option<String>, StoreError> {
        let ctx = self.ctx("reading user data", user, host);
        let conn = self.reader();
        conn.prepare_cached("SELECT value FROM user_data WHERE host = ?1 AND username = ?2 AND key = ?3")
            .and_then(|mut s| s.query_row(params![host, user, key], |r| r.get(0)).optional())
            .map_err(backend(&ctx))
    }

    fn set_data(&self, user: &str, host: &str, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        let ctx = self.ctx("writing user data", user, host);
        let conn = self.writer();
        match value {
            Some(v) => conn
                .prepare_cached("INSERT OR REPLACE INTO user_data (host, username, key, value) VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut s| s.execute(params![host, user, key, v]))
                .map_err(missing_account(user, host, &ctx))?,
            None => conn
                .prepare_cached("DELETE FROM user_data WHERE host = ?1 AND username = ?2 AND key = ?3")
                .and_then(|mut s| s.execute(params![host, user, key]))
                .map_err(backend(&ctx))?,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::AccountStore;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(d.path()).unwrap();
        s.create_account("u", "h", &crate::sasl::derive_credentials("p", 4096)).unwrap();
        (d, s)
    }

    #[test]
    fn groups_round_trip() {
        for g in [vec![], vec!["a".to_string()], vec!["x:y".into(), "3:zz".into(), "ünï".into(), "".into()]] {
            assert_eq!(decode_groups(&encode_groups(&g)), g);
        }
    }

    #[test]
    fn roster_versions_and_items() {
        let (_d, s) = store();
        assert_eq!(s.roster("u", "h").unwrap(), (0, vec![]));
        let mut it = RosterItem {
            jid: "b@h".into(),
            name: Some("B".into()),
            groups: vec!["g1".into()],
            visible: true,
            ..Default::default()
        };
        assert_eq!(s.put_roster_item("u", "h", &it).unwrap(), 1);
        it.subscription = Subscription::Both;
        it.pending_in_stanza = Some("<presence/>".into());
        assert_eq!(s.put_roster_item("u", "h", &it).unwrap(), 2);
        let a = RosterItem { jid: "a@h".into(), ..Default::default() };
        s.put_roster_item("u", "h", &a).unwrap();
        let (v, items) = s.roster("u", "h").unwrap();
        assert_eq!(v, 3);
        assert_eq!(items, vec![a, it.clone()]);
        assert_eq!(s.roster_item("u", "h", "b@h").unwrap(), Some(it));
        assert_eq!(s.remove_roster_item("u", "h", "a@h").unwrap(), 4);
        assert!(matches!(s.put_roster_item("nobody", "h", &RosterItem::default()), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn offline_order_limit_and_removal() {
        let (_d, s) = store();
        for i in 0..3 {
            assert!(s.push_offline("u", "h", &format!("<m{i}/>"), 3).unwrap());
        }
        assert!(!s.push_offline("u", "h", "<m3/>", 3).unwrap());
        let m = s.offline("u", "h").unwrap();
        assert_eq!(m.iter().map(|m| m.stanza.as_str()).collect::<Vec<_>>(), vec!["<m0/>", "<m1/>", "<m2/>"]);
        s.remove_offline("u", "h", m[1].id).unwrap();
        assert_eq!(s.count_offline("u", "h").unwrap(), 1);
        assert!(matches!(s.push_offline("nobody", "h", "<m/>", 3), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn user_data_and_cascade() {
        let (d, s) = store();
        s.set_data("u", "h", "vcard", Some("<vCard/>")).unwrap();
        assert_eq!(s.get_data("u", "h", "vcard").unwrap().as_deref(), Some("<vCard/>"));
        s.set_data("u", "h", "vcard", None).unwrap();
        assert_eq!(s.get_data("u", "h", "vcard").unwrap(), None);
        s.set_data("u", "h", "k", Some("v")).unwrap();
        s.push_offline("u", "h", "<m/>", 10).unwrap();
        s.put_roster_item("u", "h", &RosterItem { jid: "x@h".into(), ..Default::default() }).unwrap();
        drop(s);
        // Durable across reopen, and gone with the account.
        let s = SqliteStore::open(d.path()).unwrap();
        assert_eq!(s.get_data("u", "h", "k").unwrap().as_deref(), Some("v"));
        s.remove_account("u", "h").unwrap();
        s.create_account("u", "h", &crate::sasl::derive_credentials("p", 4096)).unwrap();
        assert_eq!(s.get_data("u", "h", "k").unwrap(), None);
        assert_eq!(s.count_offline("u", "h").unwrap(), 0);
        assert_eq!(s.roster("u", "h").unwrap(), (0, vec![]));
    }

    #[test]
    fn concurrent_offline_pushes_respect_limit() {
        let (_d, s) = store();
        let s = std::sync::Arc::new(s);
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || (0..10).filter(|_| s.push_offline("u", "h", "<m/>", 15).unwrap()).count())
            })
            .collect();
        let stored: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(stored, 15);
        assert_eq!(s.count_offline("u", "h").unwrap(), 15);
    }
}
