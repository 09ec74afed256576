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

impl ScramKeys {
    /// No keys for this family (an account without it: its mechanism fails
    /// like a wrong password).
    pub fn absent() -> ScramKeys {
        ScramKeys { salt: Vec::new(), iterations: 0, stored_key: Vec::new(), server_key: Vec::new() }
    }
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
    /// Create many accounts `(user, host, credentials)`, skipping existing
    /// ones; returns how many were created. Backends override this to write
    /// them in one transaction (bulk registration through the daemon).
    fn create_accounts(&self, rows: &[(String, String, Credentials)]) -> Result<usize, StoreError> {
        let mut created = 0;
        for (u, h, c) in rows {
            match self.create_account(u, h, c) {
                Ok(()) => created += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(created)
    }
}

/// RFC 6121 §2.1.2.5 subscription states (the `subscription` attribute).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Subscription {
    /// Neither side is subscribed.
    #[default]
    None,
    /// The user receives the contact's presence.
    To,
    /// The contact receives the user's presence.
    From,
    /// Both.
    Both,
}

impl Subscription {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }
    /// Parse the attribute value.
    pub fn parse(s: &str) -> Option<Subscription> {
        match s {
            "none" => Some(Subscription::None),
            "to" => Some(Subscription::To),
            "from" => Some(Subscription::From),
            "both" => Some(Subscription::Both),
            _ => None,
        }
    }
    /// The user receives the contact's presence (to or both).
    pub fn has_to(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }
    /// The contact receives the user's presence (from or both).
    pub fn has_from(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }
}

/// One roster item (RFC 6121 §2.1.2) with the server-side subscription
/// state of RFC 6121 Appendix A (pending-in, pending-out, pre-approval).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RosterItem {
    /// The contact's bare JID (normalised).
    pub jid: String,
    /// Handle the user gave the contact.
    pub name: Option<String>,
    /// Subscription state.
    pub subscription: Subscription,
    /// Pending-out: the user asked to subscribe (`ask='subscribe'`).
    pub ask_out: bool,
    /// Pending-in: the contact asked to subscribe and awaits approval; the
    /// request stanza is kept in `pending_in_stanza` for redelivery (§3.1.3).
    pub pending_in: bool,
    /// The stored inbound subscription request (serialised stanza).
    pub pending_in_stanza: Option<String>,
    /// Pre-approved (RFC 6121 §3.4): a future request is approved at once.
    pub approved: bool,
    /// Groups, sorted, no duplicates.
    pub groups: Vec<String>,
    /// Whether the item is visible in the roster: an item created only by a
    /// pending inbound request is not shown (RFC 6121 §3.1.3) until the user
    /// acts on it.
    pub visible: bool,
}

/// Rosters (RFC 6121 §2) with a per-user version counter (§2.6, XEP-0237).
pub trait RosterStore: Send + Sync {
    /// Every item (visible or not) and the roster version.
    fn roster(&self, user: &str, host: &str) -> Result<(u64, Vec<RosterItem>), StoreError>;
    /// One item.
    fn roster_item(&self, user: &str, host: &str, jid: &str) -> Result<Option<RosterItem>, StoreError>;
    /// Insert or replace an item; returns the new roster version. Durable.
    fn put_roster_item(&self, user: &str, host: &str, item: &RosterItem) -> Result<u64, StoreError>;
    /// Remove an item (no-op if absent); returns the new roster version.
    fn remove_roster_item(&self, user: &str, host: &str, jid: &str) -> Result<u64, StoreError>;
}

/// One stored offline message (XEP-0160).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflineMessage {
    /// Store-assigned increasing id (delivery order).
    pub id: i64,
    /// When it was stored, seconds since the Unix epoch (for XEP-0203).
    pub stamp: i64,
    /// The serialised stanza as it was routed (with `from` stamped).
    pub stanza: String,
}

/// Offline messages (XEP-0160), in arrival order.
pub trait OfflineStore: Send + Sync {
    /// Store a message unless the user already has `limit` of them;
    /// `Ok(false)` when full. Durable when it returns.
    fn push_offline(&self, user: &str, host: &str, stanza: &str, limit: usize) -> Result<bool, StoreError>;
    /// The stored messages, oldest first (not removed).
    fn offline(&self, user: &str, host: &str) -> Result<Vec<OfflineMessage>, StoreError>;
    /// Remove the messages with id <= `upto` (after they were delivered).
    fn remove_offline(&self, user: &str, host: &str, upto: i64) -> Result<(), StoreError>;
    /// How many are stored.
    fn count_offline(&self, user: &str, host: &str) -> Result<u64, StoreError>;
}

/// Small per-user documents keyed by name: vCard (`vcard`), private XML
/// (`private:<namespace>`), the block list (`blocklist`), last activity
/// (`last`). Values are opaque strings (serialised XML or text).
pub trait UserDataStore: Send + Sync {
    /// A value.
    fn get_data(&self, user: &str, host: &str, key: &str) -> Result<Option<String>, StoreError>;
    /// Set a value (`None` deletes it). Durable when it returns.
    fn set_data(&self, user: &str, host: &str, key: &str, value: Option<&str>) -> Result<(), StoreError>;
    /// Set a value that need not be durable when this returns (XEP-0012's
    /// last-logout time): a backend may queue it and write it later in a
    /// batch, off the caller's thread. `get_data` sees it at once; `flush`
    /// writes it; a crash may lose it. A value for an account that is gone
    /// by then is dropped.
    fn set_data_deferred(&self, user: &str, host: &str, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        self.set_data(user, host, key, value)
    }
}

/// The whole store: every aggregate trait. Removing an account removes its
/// roster, offline messages and user data.
pub trait Store: AccountStore + RosterStore + OfflineStore + UserDataStore {
    /// Flush anything buffered to disk (called at shutdown).
    fn flush(&self) -> Result<(), StoreError>;

    /// Operation latency, for `/metrics`, where the backend measures it.
    fn latency(&self) -> Option<&crate::metrics::StoreLatency> {
        None
    }
}
