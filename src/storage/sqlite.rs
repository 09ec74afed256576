//! Embedded SQLite backend: one file, `<data_dir>/xmppd.sqlite`, in WAL mode.
//!
//! Durability: `synchronous=FULL`, so a write that has returned `Ok` survives
//! `kill -9` and power loss. Concurrency: one write connection behind a
//! mutex plus a small pool of read connections, so that logins reading
//! credentials never queue behind writes. Other processes (`xmppd ctl`) may
//! open the same file at the same time; `busy_timeout` absorbs lock waits.

mod deferred;
mod im;
mod import;
mod schema;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::metrics::{Histogram, StoreLatency};

use rusqlite::{params, Connection, DatabaseName, ErrorCode, OptionalExtension, Row, TransactionBehavior};

use super::{AccountStore, Credentials, ScramKeys, Store, StoreError};

pub use schema::SCHEMA_VERSION;

/// Name of the database file inside the data directory.
pub const DB_FILE_NAME: &str = "xmppd.sqlite";

/// Number of read connections in the pool.
const READERS: usize = 4;
/// How long a statement waits for a lock held by another connection/process.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);
/// Capacity of each connection's prepared-statement cache.
const STATEMENT_CACHE: usize = 32;

const INSERT_ACCOUNT: &str = "INSERT INTO accounts (host, username, \
     sha1_salt, sha1_iter, sha1_stored, sha1_server, \
     sha256_salt, sha256_iter, sha256_stored, sha256_server, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
     ON CONFLICT (host, username) DO NOTHING";
const SELECT_CREDENTIALS: &str = "SELECT sha1_salt, sha1_iter, sha1_stored, sha1_server, \
     sha256_salt, sha256_iter, sha256_stored, sha256_server \
     FROM accounts WHERE host = ?1 AND username = ?2";
const UPDATE_CREDENTIALS: &str = "UPDATE accounts SET \
     sha1_salt = ?3, sha1_iter = ?4, sha1_stored = ?5, sha1_server = ?6, \
     sha256_salt = ?7, sha256_iter = ?8, sha256_stored = ?9, sha256_server = ?10 \
     WHERE host = ?1 AND username = ?2";
const DELETE_ACCOUNT: &str = "DELETE FROM accounts WHERE host = ?1 AND username = ?2";
const LIST_USERS: &str = "SELECT username FROM accounts WHERE host = ?1 ORDER BY username ASC";
const COUNT_USERS: &str = "SELECT COUNT(*) FROM accounts WHERE host = ?1";

/// The SQLite implementation of [`Store`]. Cheap to share: wrap it in an
/// `Arc` and hand it to every task; all methods take `&self`.
pub struct SqliteStore {
    path: PathBuf,
    /// Time from asking for a connection to giving it back, per kind.
    latency: StoreLatency,
    /// The write connection (shared with the deferred writer thread).
    writer: Arc<Mutex<Connection>>,
    /// Deferred user-data writes and their thread (`deferred.rs`).
    deferred: Arc<deferred::Deferred>,
    readers: Box<[Mutex<Connection>]>,
    next_reader: AtomicUsize,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// A connection in use; its time in use (lock wait included) is recorded
/// in the store latency histogram when it is given back.
struct Timed<'a> {
    conn: MutexGuard<'a, Connection>,
    start: Instant,
    hist: &'a Histogram,
}

impl std::ops::Deref for Timed<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Timed<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl Drop for Timed<'_> {
    fn drop(&mut self) {
        self.hist.observe(self.start.elapsed());
    }
}

/// Map a rusqlite error to [`StoreError::Backend`], prefixed with `ctx`.
fn backend(ctx: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("{ctx}: {e}"))
}

/// Lock a mutex, recovering from poisoning: a panicking holder cannot leave
/// a half-done transaction behind (see [`SqliteStore::writer`]).
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn jid(user: &str, host: &str) -> String {
    format!("{user}@{host}")
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Describe an error met while opening `name`, with a hint for the usual causes.
fn open_error(name: &str, step: &str, e: rusqlite::Error) -> StoreError {
    let hint = match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => " (the file is not an SQLite database, or is encrypted)",
        Some(ErrorCode::CannotOpen) => " (check that the directory exists and is writable)",
        Some(ErrorCode::ReadOnly) => " (the file or its directory is not writable)",
        Some(ErrorCode::DatabaseCorrupt) => " (the database is corrupt; restore a backup)",
        _ => "",
    };
    StoreError::Backend(format!("{name}: {step}: {e}{hint}"))
}

/// Open one connection to `path` and apply the per-connection settings.
fn connect(path: &Path, name: &str) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| open_error(name, "cannot open", e))?;
    if conn.is_readonly(DatabaseName::Main).unwrap_or(false) {
        return Err(StoreError::Backend(format!(
            "{name}: opened read-only; the file or its directory is not writable"
        )));
    }
    conn.busy_timeout(BUSY_TIMEOUT)
        .and_then(|()| conn.pragma_update(None, "foreign_keys", true))
        .and_then(|()| conn.pragma_update(None, "synchronous", "FULL"))
        .map_err(|e| open_error(name, "configuring connection", e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// `PRAGMA quick_check`: fail with the problems found, naming the file.
fn quick_check(conn: &Connection, name: &str) -> Result<(), StoreError> {
    let step = "integrity check (PRAGMA quick_check)";
    let mut stmt = conn.prepare("PRAGMA quick_check(10)").map_err(|e| open_error(name, step, e))?;
    let problems = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| open_error(name, step, e))?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Backend(format!("{name}: {step} failed: {}; restore a backup", problems.join("; "))))
}

fn scram(row: &Row<'_>, first: usize) -> rusqlite::Result<ScramKeys> {
    Ok(ScramKeys {
        salt: row.get(first)?,
        iterations: row.get(first + 1)?,
        stored_key: row.get(first + 2)?,
        server_key: row.get(first + 3)?,
    })
}

/// Insert one account unless it exists; returns the number of rows inserted.
fn insert_account(
    conn: &Connection,
    user: &str,
    host: &str,
    c: &Credentials,
    created_at: i64,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(INSERT_ACCOUNT)?.execute(params![
        host,
        user,
        c.sha1.salt,
        c.sha1.iterations,
        c.sha1.stored_key,
        c.sha1.server_key,
        c.sha256.salt,
        c.sha256.iterations,
        c.sha256.stored_key,
        c.sha256.server_key,
        created_at,
    ])
}

impl SqliteStore {
    /// Open (creating if needed) `data_dir/xmppd.sqlite`: creates `data_dir`,
    /// enables WAL, `synchronous=FULL`, `busy_timeout`, foreign keys, runs
    /// `PRAGMA quick_check` and migrates the schema to [`SCHEMA_VERSION`].
    /// Every failure is a [`StoreError::Backend`] naming the path.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Backend(format!("cannot create data directory {}: {e}", data_dir.display())))?;
        let path = data_dir.join(DB_FILE_NAME);
        let name = path.display().to_string();

        let mut writer = connect(&path, &name)?;
        quick_check(&writer, &name)?;
        let mode: String = writer
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| open_error(&name, "enabling WAL journal", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %name, mode = %mode, "SQLite refused WAL mode; using {mode}");
        }
        schema::migrate(&mut writer, &name)?;

        let readers = (0..READERS)
            .map(|_| {
                let conn = connect(&path, &name)?;
                conn.pragma_update(None, "query_only", true).map_err(|e| open_error(&name, "configuring reader", e))?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<Vec<_>, StoreError>>()?
            .into_boxed_slice();

        let writer = Arc::new(Mutex::new(writer));
        let deferred = deferred::Deferred::start(writer.clone(), name);
        Ok(SqliteStore {
            path,
            latency: StoreLatency::default(),
            writer,
            deferred,
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Create many accounts in one transaction (bulk registration). Rows
    /// whose `(user, host)` already exists are skipped; returns how many
    /// accounts were created. Each row is `(user, host, credentials)`.
    /// All-or-nothing: on error nothing is created.
    pub fn create_accounts_bulk(&self, rows: &[(String, String, Credentials)]) -> Result<usize, StoreError> {
        let ctx = format!("bulk account creation in {}", self.path.display());
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend(&ctx))?;
        let now = now_unix();
        let mut created = 0;
        for (user, host, creds) in rows {
            created += insert_account(&tx, user, host, creds, now)
                .map_err(|e| StoreError::Backend(format!("{ctx}: creating {}: {e}", jid(user, host))))?;
        }
        tx.commit().map_err(backend(&ctx))?;
        Ok(created)
    }

    /// The write connection. If a previous holder panicked mid-transaction,
    /// roll it back so the next writer starts clean.
    fn writer(&self) -> Timed<'_> {
        let start = Instant::now();
        let conn = lock(&self.writer);
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        Timed { conn, start, hist: &self.latency.write }
    }

    /// A read connection: the first free one starting round-robin, else
    /// wait for the one at the round-robin position.
    fn reader(&self) -> Timed<'_> {
        let start = Instant::now();
        Timed { conn: self.reader_conn(), start, hist: &self.latency.read }
    }

    fn reader_conn(&self) -> MutexGuard<'_, Connection> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            match self.readers[(start + i) % n].try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        lock(&self.readers[start])
    }

    /// Context for an error on account `user@host`.
    fn ctx(&self, op: &str, user: &str, host: &str) -> String {
        format!("{op} {} in {}", jid(user, host), self.path.display())
    }
}

impl AccountStore for SqliteStore {
    fn create_account(&self, user: &str, host: &str, creds: &Credentials) -> Result<(), StoreError> {
        let inserted = insert_account(&self.writer(), user, host, creds, now_unix()).map_err(backend(&self.ctx(
            "creating account",
            user,
            host,
        )))?;
        if inserted == 0 {
            return Err(StoreError::Conflict(jid(user, host)));
        }
        Ok(())
    }

    fn get_credentials(&self, user: &str, host: &str) -> Result<Option<Credentials>, StoreError> {
        let conn = self.reader();
        conn.prepare_cached(SELECT_CREDENTIALS)
            .and_then(|mut stmt| {
                stmt.query_row(params![host, user], |r| Ok(Credentials { sha1: scram(r, 0)?, sha256: scram(r, 4)? }))
                    .optional()
            })
            .map_err(backend(&self.ctx("reading credentials of", user, host)))
    }

    fn set_credentials(&self, user: &str, host: &str, c: &Credentials) -> Result<(), StoreError> {
        let conn = self.writer();
        let changed = conn
            .prepare_cached(UPDATE_CREDENTIALS)
            .and_then(|mut stmt| {
                stmt.execute(params![
                    host,
                    user,
                    c.sha1.salt,
                    c.sha1.iterations,
                    c.sha1.stored_key,
                    c.sha1.server_key,
                    c.sha256.salt,
                    c.sha256.iterations,
                    c.sha256.stored_key,
                    c.sha256.server_key,
                ])
            })
            .map_err(backend(&self.ctx("setting credentials of", user, host)))?;
        if changed == 0 {
            return Err(StoreError::NotFound(jid(user, host)));
        }
        Ok(())
    }

    fn remove_account(&self, user: &str, host: &str) -> Result<(), StoreError> {
        let conn = self.writer();
        self.deferred.forget_account(host, user);
        let removed = conn
            .prepare_cached(DELETE_ACCOUNT)
            .and_then(|mut stmt| stmt.execute(params![host, user]))
            .map_err(backend(&self.ctx("removing account", user, host)))?;
        if removed == 0 {
            return Err(StoreError::NotFound(jid(user, host)));
        }
        Ok(())
    }

    fn list_users(&self, host: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.reader();
        conn.prepare_cached(LIST_USERS)
            .and_then(|mut stmt| stmt.query_map([host], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(backend(&format!("listing users of {host} in {}", self.path.display())))
    }

    fn create_accounts(&self, rows: &[(String, String, Credentials)]) -> Result<usize, StoreError> {
        self.create_accounts_bulk(rows)
    }

    fn count_users(&self, host: &str) -> Result<u64, StoreError> {
        let conn = self.reader();
        conn.prepare_cached(COUNT_USERS)
            .and_then(|mut stmt| stmt.query_row([host], |r| r.get(0)))
            .map_err(backend(&format!("counting users of {host} in {}", self.path.display())))
    }
}

impl Drop for SqliteStore {
    /// Write the deferred values and end their thread.
    fn drop(&mut self) {
        self.deferred.stop();
    }
}

impl Store for SqliteStore {
    /// Checkpoint the WAL into the main file and truncate it
    /// (`PRAGMA wal_checkpoint(TRUNCATE)`). Committed data is already durable;
    /// this only makes the main file self-contained (e.g. for backups).
    fn latency(&self) -> Option<&StoreLatency> {
        Some(&self.latency)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.deferred.write_batch(&self.writer)?;
        let conn = self.writer();
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .map_err(backend(&format!("checkpointing {}", self.path.display())))?;
        if busy != 0 {
            tracing::warn!(
                path = %self.path.display(),
                "WAL checkpoint incomplete: another connection is reading; data is safe in the WAL"
            );
        }
        Ok(())
    }
}
