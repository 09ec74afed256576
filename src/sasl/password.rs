//! Passwords: prepared with the PRECIS OpaqueString profile (RFC 8265 §4.2)
//! before they become SCRAM keys or are checked, the same way everywhere.
//!
//! RFC 5802 §2.2 / §5.1 has SCRAM hash `Normalize(password)` with SASLprep
//! (RFC 4013); RFC 8265 §7.3 replaces SASLprep with OpaqueString, which
//! RFC 7677 §4 and RFC 6120 §6.3.8 point to for SCRAM-SHA-256 and PLAIN
//! (RFC 4616 §2). So "e\u{301}" and "\u{e9}" (NFC, §4.2.1) are one
//! password, and so are a no-break or ideographic space and U+0020
//! (§4.2.1 additional mapping). Width is kept: full-width "Ｐ" and "P"
//! stay different passwords (§4.2.1: no width mapping).
//!
//! Entry points (in-band registration, ad-hoc commands, `xmppd ctl`, PIEFXIS
//! import) refuse what [`prepare_password`] rejects — controls, unassigned
//! code points, the empty string (§4.2.2) — with its error; SASL answers a
//! presented password the profile rejects like a wrong one.

use std::borrow::Cow;

use precis_profiles::precis_core::Error as PrecisError;
use precis_profiles::OpaqueString;
use rand::RngCore;

use super::crypto::{derive_keys, Hash};
use crate::storage::{Credentials, ScramKeys};

/// A password the OpaqueString profile rejects (RFC 8265 §4.2.2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadPassword(String);

/// Enforce OpaqueString (RFC 8265 §4.2.2) on a password; printable ASCII,
/// which the profile leaves alone, skips the Unicode work.
pub fn prepare_password(password: &str) -> Result<Cow<'_, str>, BadPassword> {
    if !password.is_empty() && password.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Ok(Cow::Borrowed(password));
    }
    // RFC 8264 §7: until the output is stable (see `jid::enforce_stable`).
    crate::jid::enforce_stable::<OpaqueString>(password).map(Cow::Owned).map_err(|e| {
        BadPassword(match e {
            _ if password.is_empty() => "Empty password".to_string(),
            PrecisError::BadCodepoint(c) => match char::from_u32(c.cp) {
                Some(ch) if ch.is_control() => format!("Invalid password: control character U+{:04X}", c.cp),
                _ => format!("Invalid password: character U+{:04X} is not allowed (RFC 8265 §4.2)", c.cp),
            },
            _ => "Invalid password: not a PRECIS OpaqueString (RFC 8265 §4.2)".to_string(),
        })
    })
}

/// The bytes SCRAM and PLAIN hash: the prepared password. One the profile
/// rejects is used as it is: entry points refuse it first, and a client
/// could not log in with it anyway (PLAIN refuses it, SCRAM clients prepare).
pub(crate) fn prepared(password: &str) -> Cow<'_, str> {
    prepare_password(password).unwrap_or(Cow::Borrowed(password))
}

/// Which SCRAM key families new passwords get, and PBKDF2's rounds
/// (`[auth] scram_iterations`, `scram_hashes`; see `Auth::key_policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPolicy {
    /// PBKDF2 iterations (RFC 5802 §5.1, RFC 7677 §4: at least 4096).
    pub iterations: u32,
    /// Store SCRAM-SHA-1 keys.
    pub sha1: bool,
    /// Store SCRAM-SHA-256 keys.
    pub sha256: bool,
}

/// Stored credentials for the families `policy` names (PBKDF2 with a fresh
/// random salt per family). An omitted family is stored absent, as for an
/// account imported with the other family only ([`ScramKeys::absent`]):
/// its mechanism then fails like a wrong password. Each family is one
/// PBKDF2 run, so one family halves the cost (`register_bulk`). The
/// password is prepared first (OpaqueString); check it with
/// [`prepare_password`] before.
pub fn derive_credentials_with(password: &str, policy: KeyPolicy) -> Credentials {
    let password = prepared(password);
    let family = |on: bool, hash: Hash| {
        if !on {
            return ScramKeys::absent();
        }
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        derive_keys(hash, &password, &salt, policy.iterations)
    };
    Credentials { sha1: family(policy.sha1, Hash::Sha1), sha256: family(policy.sha256, Hash::Sha256) }
}

/// [`derive_credentials_with`] both families, `iterations` rounds.
pub fn derive_credentials(password: &str, iterations: u32) -> Credentials {
    derive_credentials_with(password, KeyPolicy { iterations, sha1: true, sha256: true })
}

/// [`derive_credentials`] with given salts (tests, imports of existing keys).
pub fn derive_credentials_with_salt(
    password: &str,
    sha1_salt: &[u8],
    sha256_salt: &[u8],
    iterations: u32,
) -> Credentials {
    let password = prepared(password);
    Credentials {
        sha1: derive_keys(Hash::Sha1, &password, sha1_salt, iterations),
        sha256: derive_keys(Hash::Sha256, &password, sha256_salt, iterations),
    }
}

/// Check a plaintext password against stored credentials (PLAIN, ctl
/// check_password): the SHA-256 keys, or the SHA-1 keys for an account
/// imported with SHA-1 keys only (see [`crate::piefxis::creds`]). A password
/// the profile rejects matches nothing.
pub fn verify_password(password: &str, creds: &Credentials) -> bool {
    let Ok(password) = prepare_password(password) else { return false };
    if creds.sha256.stored_key.is_empty() {
        return !creds.sha1.stored_key.is_empty() && verify_keys(Hash::Sha1, password.as_bytes(), &creds.sha1);
    }
    verify_keys(Hash::Sha256, password.as_bytes(), &creds.sha256)
}

/// Recompute StoredKey from the (prepared) password and compare in constant time.
pub(crate) fn verify_keys(hash: Hash, password: &[u8], keys: &ScramKeys) -> bool {
    let salted = hash.salted_password(password, &keys.salt, keys.iterations);
    super::crypto::ct_eq(&hash.stored_key(&hash.client_key(&salted)), &keys.stored_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_family_leaves_the_other_absent() {
        let only = |sha1, sha256| derive_credentials_with("pencil", KeyPolicy { iterations: 4096, sha1, sha256 });
        let c = only(false, true);
        assert_eq!(c.sha1, ScramKeys::absent());
        assert_eq!(c.sha256.stored_key.len(), 32);
        assert!(verify_password("pencil", &c) && !verify_password("pencil2", &c));
        let c = only(true, false);
        assert_eq!((c.sha256, c.sha1.stored_key.len()), (ScramKeys::absent(), 20));
    }

    #[test]
    fn derive_and_verify() {
        let c = derive_credentials("pencil", 4096);
        assert!(verify_password("pencil", &c));
        assert!(!verify_password("pencil2", &c));
        assert_eq!(c.sha1.salt.len(), 16);
        assert_ne!(c.sha1.salt, c.sha256.salt);
        assert_eq!(c.sha1.stored_key.len(), 20);
        assert_eq!(c.sha256.server_key.len(), 32);
        assert_ne!(derive_credentials("pencil", 4096), c, "salt is random");
    }

    #[test]
    fn opaque_string_preparation() {
        // §4.2.1: NFC, non-ASCII spaces to U+0020; width and case kept.
        assert_eq!(prepare_password("caf\u{65}\u{301}").unwrap(), "caf\u{e9}");
        assert_eq!(prepare_password("a\u{a0}b\u{3000}c").unwrap(), "a b c");
        assert_eq!(prepare_password("ＰassWord").unwrap(), "ＰassWord");
        assert!(matches!(prepare_password("pencil"), Ok(Cow::Borrowed("pencil"))));
        let e = prepare_password("bell\u{7}").unwrap_err();
        assert_eq!(e.to_string(), "Invalid password: control character U+0007");
        assert_eq!(prepare_password("").unwrap_err().to_string(), "Empty password");
        assert!(prepare_password("tab\there").is_err());
        assert!(prepare_password("unassigned\u{378}").is_err());
        // Equivalent forms are one password; a rejected one matches nothing.
        let c = derive_credentials_with_salt("\u{e9}t\u{e9}\u{a0}!", b"s1", b"s2", 4096);
        assert!(verify_password("e\u{301}te\u{301} !", &c));
        assert!(!verify_password("\u{c9}T\u{c9} !", &c));
        let c = derive_credentials_with_salt("x\u{7}", b"s1", b"s2", 4096);
        assert!(!verify_password("x\u{7}", &c));
    }
}
