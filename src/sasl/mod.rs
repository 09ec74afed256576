//! SASL (RFC 6120 §6) without I/O: a [`SaslSession`] takes the client's
//! decoded bytes and returns the next [`Step`]. Mechanisms: PLAIN (RFC 4616),
//! SCRAM-SHA-1/-256 and their -PLUS variants (RFC 5802, RFC 7677) with
//! tls-exporter channel binding (RFC 9266).
//!
//! INTERFACE CONTRACT (filled in by the SASL work): signatures are fixed.
//!
//! Layout: [`crypto`] holds the SCRAM key schedule, `plain` and `scram` the
//! server side of each mechanism, [`client`] a client for tests and tools.
//!
//! Authorization identities: the session does not know the domain, so an
//! authzid is accepted when it is the authcid itself or a bare JID whose
//! localpart is the authcid (`authcid@<any domain>`, no resource), both
//! compared after normalisation. [`SaslSession::authzid`] exposes what the
//! client sent so the caller can check the domain part.
//!
//! Passwords are prepared with the PRECIS OpaqueString profile (RFC 8265
//! §4.2, the successor of SASLprep that RFC 5802 §2.2 names), the same way by
//! [`derive_credentials`], PLAIN and [`client`]: see `password`.

pub mod client;
pub mod crypto;
mod password;
mod plain;
mod scram;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;

pub use crypto::{derive_keys, Hash};
pub use password::{
    derive_credentials, derive_credentials_with, derive_credentials_with_salt, prepare_password, verify_password,
    BadPassword, KeyPolicy,
};
pub(crate) use scram::{CB_TLS_EXPORTER, CB_TLS_SERVER_END_POINT};

use crate::storage::{Credentials, ScramKeys};

/// A mechanism this server implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha1,
    ScramSha1Plus,
    ScramSha256,
    ScramSha256Plus,
}

impl Mechanism {
    /// Every mechanism, strongest first (the order to advertise them in).
    pub const ALL: [Mechanism; 5] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    /// Parse the IANA name from `<auth mechanism='...'>`.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }
    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
        }
    }
    /// The SCRAM hash, `None` for PLAIN.
    pub fn hash(self) -> Option<Hash> {
        match self {
            Mechanism::Plain => None,
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => Some(Hash::Sha1),
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Some(Hash::Sha256),
        }
    }
    /// True for the channel-binding (-PLUS) variants, which need
    /// tls-exporter or tls-server-end-point data.
    pub fn is_plus(self) -> bool {
        matches!(self, Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus)
    }
}

/// RFC 6120 §6.5 failure conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Aborted,
    AccountDisabled,
    CredentialsExpired,
    EncryptionRequired,
    IncorrectEncoding,
    InvalidAuthzid,
    InvalidMechanism,
    MalformedRequest,
    MechanismTooWeak,
    NotAuthorized,
    TemporaryAuthFailure,
}

impl Failure {
    /// The element name, e.g. `not-authorized`.
    pub fn condition(self) -> &'static str {
        match self {
            Failure::Aborted => "aborted",
            Failure::AccountDisabled => "account-disabled",
            Failure::CredentialsExpired => "credentials-expired",
            Failure::EncryptionRequired => "encryption-required",
            Failure::IncorrectEncoding => "incorrect-encoding",
            Failure::InvalidAuthzid => "invalid-authzid",
            Failure::InvalidMechanism => "invalid-mechanism",
            Failure::MalformedRequest => "malformed-request",
            Failure::MechanismTooWeak => "mechanism-too-weak",
            Failure::NotAuthorized => "not-authorized",
            Failure::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}

/// What the server answers after a client message.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send `<challenge>` with these bytes (base64-encoded by the caller).
    Challenge(Vec<u8>),
    /// Authentication succeeded for local part `username`; send `<success>`
    /// with `additional` data if any (SCRAM server-final-message).
    Success { username: String, additional: Option<Vec<u8>> },
    /// Send `<failure>` with this condition.
    Failure(Failure),
}

/// Context of the connection the exchange runs on.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// tls-exporter channel-binding data (RFC 9266), when the stream is TLS 1.3.
    pub tls_exporter: Option<Vec<u8>>,
    /// tls-server-end-point channel-binding data (RFC 5929 §4), when the
    /// stream is TLS and the certificate's signature algorithm defines one.
    pub tls_server_end_point: Option<Vec<u8>>,
    /// Whether the stream is encrypted (PLAIN needs it unless configured otherwise).
    pub secure: bool,
}

enum State {
    /// Waiting for the initial response (PLAIN message or SCRAM client-first).
    Start,
    /// SCRAM: server-first sent, waiting for client-final.
    ScramFinal(Box<scram::ScramServer>),
    /// Success or failure was returned; any further step is malformed.
    Done,
}

/// One SASL exchange.
pub struct SaslSession {
    mech: Mechanism,
    ctx: Context,
    state: State,
    /// Whether the empty challenge for a missing initial response was sent.
    prompted: bool,
    /// Forced server nonce (tests); a fresh random one otherwise.
    server_nonce: Option<String>,
    authzid: Option<String>,
    /// The normalised username the client tried, once known.
    attempted: Option<String>,
}

impl SaslSession {
    /// Start an exchange for `mech`.
    pub fn new(mech: Mechanism, ctx: Context) -> SaslSession {
        SaslSession {
            mech,
            ctx,
            state: State::Start,
            prompted: false,
            server_nonce: None,
            authzid: None,
            attempted: None,
        }
    }

    /// Like [`SaslSession::new`] with a fixed SCRAM server nonce (RFC test vectors).
    #[cfg(test)]
    pub(crate) fn with_server_nonce(mech: Mechanism, ctx: Context, nonce: &str) -> SaslSession {
        SaslSession { server_nonce: Some(nonce.to_owned()), ..SaslSession::new(mech, ctx) }
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    /// The authorization identity the client sent, as sent, once the exchange
    /// succeeded (`None` if it sent none). Its localpart was checked against
    /// the authcid; the caller may check its domain.
    pub fn authzid(&self) -> Option<&str> {
        self.authzid.as_deref()
    }

    /// The (normalised) username the client tried to authenticate as, once
    /// the exchange got that far, whether or not the account exists; for
    /// counting failures per account.
    pub fn attempted_user(&self) -> Option<&str> {
        self.attempted.as_deref()
    }

    /// Feed the client's (already base64-decoded) message. `lookup` returns
    /// the stored credentials of a (SASLprep'd, lowercased) local part.
    pub fn step(&mut self, input: &[u8], lookup: &mut dyn FnMut(&str) -> Option<Credentials>) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Done => Step::Failure(Failure::MalformedRequest),
            State::Start if input.is_empty() && !self.prompted => {
                // RFC 6120 §6.4.2: no initial response, so send an empty
                // challenge and take the client's message as the response.
                self.prompted = true;
                self.state = State::Start;
                Step::Challenge(Vec::new())
            }
            State::Start => match self.mech.hash() {
                None => {
                    self.attempted = plain::authcid(input);
                    match plain::authenticate(input, lookup) {
                        Ok(ok) => self.succeed(ok.username, ok.authzid, None),
                        Err(f) => Step::Failure(f),
                    }
                }
                Some(hash) => {
                    let nonce = self.server_nonce.take().unwrap_or_else(new_nonce);
                    let cb = scram::Bindings {
                        exporter: self.ctx.tls_exporter.as_deref(),
                        server_end_point: self.ctx.tls_server_end_point.as_deref(),
                    };
                    match scram::ScramServer::start(hash, self.mech.is_plus(), cb, input, lookup, &nonce) {
                        Ok(server) => {
                            self.attempted = server.attempted.clone();
                            let first = server.server_first().as_bytes().to_vec();
                            self.state = State::ScramFinal(Box::new(server));
                            Step::Challenge(first)
                        }
                        Err(f) => Step::Failure(f),
                    }
                }
            },
            State::ScramFinal(server) => match server.finish(input) {
                Ok(ok) => self.succeed(ok.username, ok.authzid, Some(ok.server_final)),
                Err(f) => Step::Failure(f),
            },
        }
    }

    fn succeed(&mut self, username: String, authzid: Option<String>, additional: Option<Vec<u8>>) -> Step {
        self.authzid = authzid;
        Step::Success { username, additional }
    }
}

/// A fresh server nonce: 24 random bytes, base64 (printable, no ',').
fn new_nonce() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

/// Authzid rule (RFC 6120 §6.4.6), see the module documentation: `authzid`
/// is `username` itself or `username@domain` without a resource.
fn authzid_allowed(authzid: &str, username: &str) -> bool {
    if crate::jid::normalize_node(authzid).is_ok_and(|n| n == username) {
        return true;
    }
    crate::jid::Jid::parse(authzid).is_ok_and(|j| j.is_bare() && j.node() == Some(username))
}

/// Iteration count offered for unknown users: the last one seen on a real
/// account, so the count does not tell accounts apart.
static LAST_ITERATIONS: AtomicU32 = AtomicU32::new(4096);

/// The keys of `user` (a normalised localpart, `None` if malformed), and
/// whether the account exists. For unknown users, deterministic fake keys:
/// salt = HMAC(per-process random key, mechanism + name), so repeated tries
/// see a stable salt and cannot tell the account is missing (RFC 5802 §9).
fn keys_for(
    hash: Hash,
    user: Option<&str>,
    raw_name: &str,
    lookup: &mut dyn FnMut(&str) -> Option<Credentials>,
) -> (ScramKeys, bool) {
    // An imported account may lack one hash family (empty keys, see
    // `piefxis::creds`): that mechanism fails like a wrong password.
    let found = user.and_then(&mut *lookup).map(|creds| match hash {
        Hash::Sha1 => creds.sha1,
        Hash::Sha256 => creds.sha256,
    });
    if let Some(keys) = found.filter(|k| !k.stored_key.is_empty()) {
        LAST_ITERATIONS.store(keys.iterations, Ordering::Relaxed);
        return (keys, true);
    }
    static FAKE_KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = FAKE_KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        k
    });
    let label = format!("{}\0{}", hash.mechanism_name(), user.unwrap_or(raw_name));
    let mut salt = Hash::Sha256.hmac(key, label.as_bytes());
    salt.truncate(16);
    let keys = ScramKeys {
        salt,
        iterations: LAST_ITERATIONS.load(Ordering::Relaxed),
        stored_key: hash.hmac(key, b"fake stored key"),
        server_key: hash.hmac(key, b"fake server key"),
    };
    (keys, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(Mechanism::from_name("scram-sha-1"), None);
        assert_eq!(Mechanism::from_name("DIGEST-MD5"), None);
        assert_eq!(Failure::NotAuthorized.condition(), "not-authorized");
        assert_eq!(Failure::InvalidAuthzid.condition(), "invalid-authzid");
    }

    #[test]
    fn authzid_rule() {
        assert!(authzid_allowed("user", "user"));
        assert!(authzid_allowed("User", "user"));
        assert!(authzid_allowed("user@example.com", "user"));
        assert!(authzid_allowed("USER@Example.com", "user"));
        assert!(!authzid_allowed("user@example.com/res", "user"));
        assert!(!authzid_allowed("admin@example.com", "user"));
        assert!(!authzid_allowed("admin", "user"));
        assert!(!authzid_allowed("example.com", "user"));
        assert!(!authzid_allowed("", "user"));
    }

    #[test]
    fn fake_keys_are_stable() {
        let mut none = |_: &str| None;
        let (a, known) = keys_for(Hash::Sha1, Some("ghost"), "ghost", &mut none);
        let (b, _) = keys_for(Hash::Sha1, Some("ghost"), "ghost", &mut none);
        let (c, _) = keys_for(Hash::Sha1, Some("other"), "other", &mut none);
        assert!(!known);
        assert_eq!(a.salt, b.salt);
        assert_ne!(a.salt, c.salt);
        assert_eq!(a.salt.len(), 16);
    }
}
