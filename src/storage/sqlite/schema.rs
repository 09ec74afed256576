//! Schema and migrations of the SQLite store.
//!
//! The schema version lives in `PRAGMA user_version`. Migration `i` of
//! [`MIGRATIONS`] takes the database from version `i` to version `i + 1`.
//! To add an aggregate (rosters, offline messages, vCards, private storage),
//! append a new entry: never edit or reorder an entry that has shipped.
//! Tables owned by an account should reference `accounts(host, username)`
//! with `ON DELETE CASCADE`, so that removing an account removes its data.

use rusqlite::{Connection, TransactionBehavior};

use super::backend;
use crate::storage::StoreError;

/// Ordered migrations; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: accounts. SCRAM keys only: no plaintext password column, ever.
    "CREATE TABLE accounts (
        host          TEXT    NOT NULL,
        username      TEXT    NOT NULL,
        sha1_salt     BLOB    NOT NULL,
        sha1_iter     INTEGER NOT NULL,
        sha1_stored   BLOB    NOT NULL,
        sha1_server   BLOB    NOT NULL,
        sha256_salt   BLOB    NOT NULL,
        sha256_iter   INTEGER NOT NULL,
        sha256_stored BLOB    NOT NULL,
        sha256_server BLOB    NOT NULL,
        created_at    INTEGER NOT NULL,
        PRIMARY KEY (host, username)
    ) WITHOUT ROWID;",
    // 2: rosters (RFC 6121 §2) with a version per user (§2.6), offline
    // messages (XEP-0160) and small per-user documents (vCard, private XML,
    // block list, last activity). Everything cascades with the account.
    "CREATE TABLE roster_items (
        host              TEXT    NOT NULL,
        username          TEXT    NOT NULL,
        jid               TEXT    NOT NULL,
        name              TEXT,
        subscription      TEXT    NOT NULL,
        ask_out           INTEGER NOT NULL,
        pending_in        INTEGER NOT NULL,
        pending_in_stanza TEXT,
        approved          INTEGER NOT NULL,
        groups            TEXT    NOT NULL,
        visible           INTEGER NOT NULL,
        PRIMARY KEY (host, username, jid),
        FOREIGN KEY (host, username) REFERENCES accounts(host, username) ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE TABLE roster_versions (
        host     TEXT    NOT NULL,
        username TEXT    NOT NULL,
        version  INTEGER NOT NULL,
        PRIMARY KEY (host, username),
        FOREIGN KEY (host, username) REFERENCES accounts(host, username) ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE TABLE offline_messages (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        host     TEXT    NOT NULL,
        username TEXT    NOT NULL,
        stamp    INTEGER NOT NULL,
        stanza   TEXT    NOT NULL,
        FOREIGN KEY (host, username) REFERENCES accounts(host, username) ON DELETE CASCADE
    );
    CREATE INDEX offline_by_user ON offline_messages (host, username, id);
    CREATE TABLE user_data (
        host     TEXT NOT NULL,
        username TEXT NOT NULL,
        key      TEXT NOT NULL,
        value    TEXT NOT NULL,
        PRIMARY KEY (host, username, key),
        FOREIGN KEY (host, username) REFERENCES accounts(host, username) ON DELETE CASCADE
    ) WITHOUT ROWID;",
];

/// Schema version this binary creates and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Current `user_version` of the database behind `conn`.
pub(super) fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Bring the database up to [`SCHEMA_VERSION`] in one immediate transaction
/// (so that a daemon and `xmppd ctl` opening the file at once cannot both
/// migrate). Refuses a database written by a newer binary.
pub(super) fn migrate(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
    let ctx = |what: &str| format!("{what} of {path}");
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend(&ctx("migration lock")))?;
    let current = version(&tx).map_err(backend(&ctx("reading schema version")))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "{path} has schema version {current}, newer than the {SCHEMA_VERSION} \
             this xmppd supports; upgrade xmppd"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let to = i + 1;
        tx.execute_batch(sql)
            .and_then(|()| tx.execute_batch(&format!("PRAGMA user_version = {to}")))
            .map_err(backend(&ctx(&format!("migration to schema version {to}"))))?;
    }
    tx.commit().map_err(backend(&ctx("committing migrations")))
}
