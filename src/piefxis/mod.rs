//! XEP-0227 Portable Import/Export Format for XMPP-IM Servers (PIEFXIS):
//! `xmppd ctl import_piefxis FILE` and `xmppd ctl export_piefxis DIR`.
//!
//! - [`import`]: reads a file (following XInclude `<xi:include href/>` as
//!   ejabberd's `export_piefxis` writes them: one main file including one
//!   file per host) into [`UserRecord`]s; every error names the file, the
//!   line and the element.
//! - [`creds`]: `password` attributes and `<scram-credentials/>` (§4.3),
//!   including ejabberd 23.01's doubly base64-encoded keys.
//! - [`export`]: the store to a main file and one file per host.
//!
//! What is carried (§4): accounts with their SCRAM credentials, rosters with
//! subscription states, `ask='subscribe'` (pending-out) and `approved`
//! (pre-approval, RFC 6121 §3.4), pending inbound requests as
//! `<presence type='subscribe'/>` (§4.8), vCards (§4.7), private XML (§4.6)
//! and offline messages (§4.5). Other elements are skipped and reported
//! (§3: "SHOULD ignore the unknown data, SHOULD notify the operator").
//!
//! Import never changes an existing account: a user that already exists is
//! skipped whole and counted, so running the same import twice is harmless
//! and it is safe next to a running daemon (the new accounts have no
//! sessions or caches yet; SQLite serialises the writers).

pub mod creds;
pub mod export;
pub mod import;

use crate::storage::{Credentials, RosterItem};

/// The XEP-0227 namespace.
pub const NS: &str = "urn:xmpp:pie:0";
/// The namespace of `<scram-credentials/>` (§4.3).
pub const NS_SCRAM: &str = "urn:xmpp:pie:0#scram";
/// XInclude (§5).
pub const NS_XINCLUDE: &str = "http://www.w3.org/2001/XInclude";

/// Everything imported or exported for one account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserRecord {
    /// Normalised local part.
    pub user: String,
    /// Normalised domain.
    pub host: String,
    /// Where the `<user/>` element starts (`file:line`), for messages.
    pub origin: String,
    /// SCRAM credentials (absent families have empty keys, see [`creds`]).
    pub creds: Option<Credentials>,
    /// A plaintext password to derive credentials from (ejabberd's default
    /// `auth_password_format: plain` exports it), used when `creds` is `None`.
    pub password: Option<String>,
    /// Roster items, including invisible ones that only carry a pending
    /// inbound request.
    pub roster: Vec<RosterItem>,
    /// Per-user documents as the modules store them: `vcard` and
    /// `avatar_hash` (XEP-0054/0153), `private:{namespace}` and the
    /// `private` index (XEP-0049).
    pub data: Vec<(String, String)>,
    /// Offline messages, oldest first: (unix stamp, serialised stanza
    /// without the server's delay element).
    pub offline: Vec<(i64, String)>,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Accounts created.
    pub created: usize,
    /// Accounts skipped because they already existed.
    pub existed: usize,
    /// Roster items written (including pending inbound requests).
    pub roster_items: usize,
    /// Offline messages written.
    pub offline: usize,
    /// vCards written.
    pub vcards: usize,
    /// Private XML namespaces written.
    pub private: usize,
}

/// Run `f` over `items` on every core, keeping the order (PBKDF2 for
/// plaintext passwords, bulk registration).
pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len()).max(1);
    let next = AtomicUsize::new(0);
    let mut parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut local = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        local.push((i, f(item)));
                    }
                    local
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker panicked")).collect()
    });
    let mut all: Vec<(usize, R)> = parts.iter_mut().flat_map(std::mem::take).collect();
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// Give every record without SCRAM credentials ones derived from its
/// password (all cores). Records with neither keep `creds: None`.
pub fn derive_missing(records: &mut [UserRecord], policy: crate::sasl::KeyPolicy) {
    let derived = par_map(records, |r| match (&r.creds, &r.password) {
        (None, Some(p)) => Some(crate::sasl::derive_credentials_with(p, policy)),
        _ => None,
    });
    for (r, d) in records.iter_mut().zip(derived) {
        if d.is_some() {
            r.creds = d;
        }
    }
}
