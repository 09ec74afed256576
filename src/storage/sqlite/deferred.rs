//! Deferred user-data writes: values that need not be on disk when the
//! caller goes on (XEP-0012's last-logout time), queued and written by one
//! background thread in a single transaction per batch, so that a burst of
//! session ends costs one fsync instead of one per session and never blocks
//! a tokio worker on the writer mutex.
//!
//! Consistency: reads see a queued value at once ([`Deferred::get`] is
//! consulted before the database). A durable write of the same key, or the
//! removal of the account, first drops what is queued for it while holding
//! the writer connection, so an older queued value can never overwrite a
//! newer durable one. Lock order everywhere: writer connection, then queue.
//! A value for an account that no longer exists is skipped at write time.
//! [`Deferred::write_batch`] runs at `flush` (shutdown) and on drop; a crash
//! loses at most the last batch window of these values.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};

use crate::storage::StoreError;

/// How long the writer thread gathers values before writing a batch.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// Upsert a value only while its account exists (no foreign-key failure
/// that would abort the whole batch).
const UPSERT_IF_ACCOUNT: &str = "INSERT INTO user_data (host, username, key, value) \
     SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM accounts WHERE host = ?1 AND username = ?2) \
     ON CONFLICT (host, username, key) DO UPDATE SET value = excluded.value";
const DELETE_DATA: &str = "DELETE FROM user_data WHERE host = ?1 AND username = ?2 AND key = ?3";

/// (host, user, key).
type Key = (String, String, String);

/// The queue of deferred values and its writer thread.
pub(super) struct Deferred {
    /// Queued values, the latest per key (`None` deletes).
    pending: Mutex<HashMap<Key, Option<String>>>,
    /// Wakes the writer thread when the queue becomes non-empty or on stop.
    wake: Condvar,
    /// Set on drop: write what is queued and end the thread.
    stop: AtomicBool,
    /// The writer thread, joined on drop.
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn key(host: &str, user: &str, k: &str) -> Key {
    (host.to_owned(), user.to_owned(), k.to_owned())
}

impl Deferred {
    /// Start the writer thread over `writer` (the store's write connection).
    pub(super) fn start(writer: Arc<Mutex<Connection>>, name: String) -> Arc<Deferred> {
        let d = Arc::new(Deferred {
            pending: Mutex::new(HashMap::new()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let d2 = d.clone();
        let spawned = std::thread::Builder::new().name("xmppd-store-writer".into()).spawn(move || loop {
            {
                let mut p = d2.pending.lock().unwrap_or_else(PoisonError::into_inner);
                while p.is_empty() && !d2.stop.load(Ordering::Acquire) {
                    p = d2.wake.wait(p).unwrap_or_else(PoisonError::into_inner);
                }
                if p.is_empty() {
                    return; // stopped, nothing left
                }
            }
            if !d2.stop.load(Ordering::Acquire) {
                std::thread::sleep(BATCH_WINDOW);
            }
            if let Err(e) = d2.write_batch(&writer) {
                tracing::warn!(path = %name, error = %e, "writing deferred user data");
            }
        });
        match spawned {
            Ok(h) => *d.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(h),
            // No thread: values are still written by `flush` and on drop.
            Err(e) => tracing::warn!(error = %e, "cannot start the store writer thread"),
        }
        d
    }

    /// Queue a value.
    pub(super) fn put(&self, host: &str, user: &str, k: &str, value: Option<&str>) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let was_empty = p.is_empty();
        p.insert(key(host, user, k), value.map(str::to_owned));
        drop(p);
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// A queued value: `Some(v)` when one is queued (`v` = `None` for a
    /// queued delete), `None` when the database has the answer.
    pub(super) fn get(&self, host: &str, user: &str, k: &str) -> Option<Option<String>> {
        let p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if p.is_empty() {
            return None;
        }
        p.get(&key(host, user, k)).cloned()
    }

    /// Drop what is queued for one key (before a durable write of it).
    /// Call with the writer connection held.
    pub(super) fn forget_key(&self, host: &str, user: &str, k: &str) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if !p.is_empty() {
            p.remove(&key(host, user, k));
        }
    }

    /// Drop everything queued for an account (it is being removed). Call
    /// with the writer connection held.
    pub(super) fn forget_account(&self, host: &str, user: &str) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.retain(|(h, u, _), _| !(h == host && u == user));
    }

    /// Write what is queued in one transaction; returns how many values.
    pub(super) fn write_batch(&self, writer: &Mutex<Connection>) -> Result<usize, StoreError> {
        let mut conn = writer.lock().unwrap_or_else(PoisonError::into_inner);
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let batch: HashMap<Key, Option<String>> = self.pending.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if batch.is_empty() {
            return Ok(0);
        }
        let fail = |e: rusqlite::Error| StoreError::Backend(format!("deferred user data: {e}"));
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(fail)?;
            for ((host, user, k), v) in &batch {
                match v {
                    Some(v) => {
                        tx.prepare_cached(UPSERT_IF_ACCOUNT).and_then(|mut s| s.execute(params![host, user, k, v]))
                    }
                    None => tx.prepare_cached(DELETE_DATA).and_then(|mut s| s.execute(params![host, user, k])),
                }
                .map_err(fail)?;
            }
            tx.commit().map_err(fail)
        })();
        // Written (or failed: not retried forever); keep what changed meanwhile.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).retain(|k, v| batch.get(k) != Some(v));
        result.map(|()| batch.len())
    }

    /// Stop the thread after it has written what is queued.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify_all();
        if let Some(h) = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::storage::sqlite::im::tests::{store, H};
    use crate::storage::sqlite::SqliteStore;
    use crate::storage::{AccountStore, Store, UserDataStore};

    #[test]
    fn visible_at_once_and_written_in_a_batch() {
        let (dir, s) = store();
        s.set_data_deferred("alice", H, "last", Some("1\n")).unwrap();
        s.set_data_deferred("alice", H, "last", Some("2\nbye")).unwrap();
        s.set_data_deferred("bob", H, "last", Some("3\n")).unwrap();
        assert_eq!(s.get_data("alice", H, "last").unwrap().as_deref(), Some("2\nbye"));
        // A durable write wins over what is queued for the same key.
        s.set_data("bob", H, "last", Some("4\n")).unwrap();
        // A removed account's queued values are dropped, and one for an
        // account that does not exist is skipped (not a batch failure).
        s.set_data_deferred("ghost", H, "last", Some("5\n")).unwrap();
        s.flush().unwrap();
        drop(s);
        let s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(s.get_data("alice", H, "last").unwrap().as_deref(), Some("2\nbye"));
        assert_eq!(s.get_data("bob", H, "last").unwrap().as_deref(), Some("4\n"));
        assert_eq!(s.get_data("ghost", H, "last").unwrap(), None);
        s.set_data_deferred("alice", H, "last", Some("6\n")).unwrap();
        s.remove_account("alice", H).unwrap();
        assert_eq!(s.get_data("alice", H, "last").unwrap(), None);
        // Dropping the store writes what is queued.
        s.set_data_deferred("bob", H, "last", Some("7\n")).unwrap();
        drop(s);
        let s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(s.get_data("bob", H, "last").unwrap().as_deref(), Some("7\n"));
        // The background thread writes without a flush.
        s.set_data_deferred("bob", H, "last", Some("8\n")).unwrap();
        let reader = SqliteStore::open(dir.path()).unwrap();
        let t = std::time::Instant::now();
        while reader.get_data("bob", H, "last").unwrap().as_deref() != Some("8\n") {
            assert!(t.elapsed().as_secs() < 10, "not written by the background thread");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
