//! SASL (RFC 6120 §6) without I/O: a [`SaslSession`] takes the client's
//! decoded bytes and returns the next [`Step`]. Mechanisms: PLAIN (RFC 4616),
//! SCRAM-SHA-1/-256 and their -PLUS variants (RFC 5802, RFC 7677) with
//! tls-exporter channel binding (RFC 9266).
//!
//! INTERFACE CONTRACT (filled in by the SASL work): signatures are fixed.

use crate::storage::Credentials;

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
    /// Parse the IANA name from `<auth mechanism='...'>`.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        let _ = name;
        unimplemented!()
    }
    /// The IANA name.
    pub fn name(self) -> &'static str {
        unimplemented!()
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
        unimplemented!()
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
pub struct Context {
    /// tls-exporter channel-binding data (RFC 9266), when the stream is TLS 1.3.
    pub tls_exporter: Option<Vec<u8>>,
    /// Whether the stream is encrypted (PLAIN needs it unless configured otherwise).
    pub secure: bool,
}

/// One SASL exchange.
pub struct SaslSession {
    _private: (),
}

impl SaslSession {
    /// Start an exchange for `mech`.
    pub fn new(mech: Mechanism, ctx: Context) -> SaslSession {
        let _ = (mech, ctx);
        unimplemented!()
    }
    /// Feed the client's (already base64-decoded) message. `lookup` returns
    /// the stored credentials of a (SASLprep'd, lowercased) local part.
    pub fn step(&mut self, input: &[u8], lookup: &mut dyn FnMut(&str) -> Option<Credentials>) -> Step {
        let _ = (input, lookup);
        unimplemented!()
    }
}

/// Derive stored credentials from a password (PBKDF2 with a fresh random
/// salt, `iterations` rounds), for both SHA-1 and SHA-256.
pub fn derive_credentials(password: &str, iterations: u32) -> Credentials {
    let _ = (password, iterations);
    unimplemented!()
}

/// Check a plaintext password against stored credentials (PLAIN, ctl check_password).
pub fn verify_password(password: &str, creds: &Credentials) -> bool {
    let _ = (password, creds);
    unimplemented!()
}
