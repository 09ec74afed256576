//! Storage behind traits (one per aggregate), combined in [`Store`].
//!
//! The embedded backend is SQLite ([`sqlite::SqliteStore`]). The trait is
//! synchronous: SQLite calls take microseconds, and a future network backend
//! (PostgreSQL) implements the same trait over its own blocking pool.

pub mod sqlite;

use thiserror::Error;

/// SCRAM credentials for one hash function (RFC 5802 §3): the password itself
/// is never stored, only what a SCRAM server needs to verify a proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramKeys {
    /// Random salt used with PBKDF2.
    pub salt: Vec<u8>,
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// StoredKey = H(ClientKey).
    pub stored_key: Vec<u8>,
    /// ServerKey = HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

/// Everything stored to authenticate one account: SCRAM keys per hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Keys for SCRAM-SHA-1 (and -PLUS).
    pub sha1: ScramKeys,
    /// Keys for SCRAM-SHA-256 (and -PLUS); also used to check PLAIN.
    pub sha256: ScramKeys,
}

/// Errors any backend may return.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The account already exists.
    #[error("conflict: user {0} already registered")]
    Conflict(String),
    /// The account does not exist.
    #[error("not found: user {0} does not exist")]
    NotFound(String),
    /// The backend failed (I/O, corruption, ...).
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// Accounts: one row per `user@host`, holding SCRAM credentials.
pub trait AccountStore: Send + Sync {
    /// Create an account; `Conflict` if it exists. Durable when it returns.
    fn create_account(&self, user: &str, host: &str, creds: &Credentials) -> Result<(), StoreError>;
    /// The account's credentials, or `None` if there is no such account.
    fn get_credentials(&self, user: &str, host: &str) -> Result<Option<Credentials>, StoreError>;
    /// Replace the credentials; `NotFound` if there is no such account.
    fn set_credentials(&self, user: &str, host: &str, creds: &Credentials) -> Result<(), StoreError>;
    /// Delete the account and everything it owns; `NotFound` if absent.
    fn remove_account(&self, user: &str, host: &str) -> Result<(), StoreError>;
    /// Sorted local parts of the accounts of `host`.
    fn list_users(&self, host: &str) -> Result<Vec<String>, StoreError>;
    /// Number of accounts on `host`.
    fn count_users(&self, host: &str) -> Result<u64, StoreError>;
}

/// The whole store: every aggregate trait. Rosters, offline messages and
/// vCards join here as their traits land.
pub trait Store: AccountStore {
    /// Flush anything buffered to disk (called at shutdown).
    fn flush(&self) -> Result<(), StoreError>;
}
