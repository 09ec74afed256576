//! A small SASL client (PLAIN, SCRAM-SHA-1/-256[-PLUS]) for the project's
//! test client and load tools. SCRAM runs PBKDF2 once per (salt, iterations);
//! a tool logging in often can keep the [`SaltedPassword`] of a first login
//! and hand it to later clients with [`ScramClient::with_salted_password`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;

use super::crypto::{ct_eq, xor, Hash};
use super::scram::CB_TLS_EXPORTER;
use super::Mechanism;

/// Highest iteration count the client accepts from a server (a hostile
/// server could otherwise make it spin).
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// The PLAIN message (RFC 4616 §2): `authzid NUL authcid NUL passwd`.
pub fn plain_message(authzid: &str, username: &str, password: &str) -> Vec<u8> {
    // RFC 4616 §2: the client prepares the password (OpaqueString, RFC 8265 §4.2).
    let password = super::password::prepared(password);
    format!("{authzid}\0{username}\0{password}").into_bytes()
}

/// SaltedPassword := Hi(password, salt, i) (RFC 5802 §3), to precompute.
pub fn salted_password(hash: Hash, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    // RFC 5802 §3: Hi(Normalize(password), ...), OpaqueString (RFC 8265 §4.2).
    hash.salted_password(super::password::prepared(password).as_bytes(), salt, iterations)
}

/// A cached SaltedPassword with the parameters it was computed for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaltedPassword {
    pub hash: Hash,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub salted_password: Vec<u8>,
}

/// Encode a username or authzid as a `saslname` (RFC 5802 §5.1).
fn encode_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

enum State {
    Initial,
    FirstSent { gs2_header: String, client_first_bare: String },
    FinalSent { server_signature: Vec<u8> },
    Done,
}

/// The client side of one SCRAM exchange.
pub struct ScramClient {
    hash: Hash,
    username: String,
    password: String,
    cb: Option<Vec<u8>>,
    cb_type: &'static str,
    y_flag: bool,
    authzid: Option<String>,
    nonce: String,
    cache: Option<SaltedPassword>,
    state: State,
}

impl ScramClient {
    /// A client for `hash`; with `cb` (channel-binding data, tls-exporter
    /// unless [`ScramClient::with_cb_type`] says otherwise) it runs the -PLUS
    /// mechanism with `p=<type>`, otherwise `n`.
    pub fn new(hash: Hash, username: &str, password: &str, cb: Option<Vec<u8>>) -> ScramClient {
        let mut bytes = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut bytes);
        ScramClient {
            hash,
            username: username.to_owned(),
            password: password.to_owned(),
            cb,
            cb_type: CB_TLS_EXPORTER,
            y_flag: false,
            authzid: None,
            nonce: STANDARD.encode(bytes),
            cache: None,
            state: State::Initial,
        }
    }

    /// Name `cb` as this channel-binding type (default `tls-exporter`;
    /// `tls-server-end-point` for RFC 5929 §4 data).
    pub fn with_cb_type(mut self, name: &'static str) -> ScramClient {
        self.cb_type = name;
        self
    }

    /// Send this authorization identity (`a=`).
    pub fn with_authzid(mut self, authzid: &str) -> ScramClient {
        self.authzid = Some(authzid.to_owned());
        self
    }

    /// Use this client nonce (printable ASCII without ','), e.g. for test vectors.
    pub fn with_nonce(mut self, nonce: &str) -> ScramClient {
        self.nonce = nonce.to_owned();
        self
    }

    /// Without `cb`, send the `y` flag (RFC 5802 §6: "I support channel
    /// binding but think the server does not") instead of `n`.
    pub fn with_y_flag(mut self) -> ScramClient {
        self.y_flag = true;
        self
    }

    /// Reuse a SaltedPassword when the server offers the same hash, salt and
    /// iteration count; otherwise it is computed from the password.
    pub fn with_salted_password(mut self, cached: SaltedPassword) -> ScramClient {
        self.cache = Some(cached);
        self
    }

    /// The SaltedPassword used by this exchange, once the challenge was handled.
    pub fn salted_password_cache(&self) -> Option<&SaltedPassword> {
        self.cache.as_ref()
    }

    /// The mechanism to name in `<auth mechanism='...'>`.
    pub fn mechanism(&self) -> Mechanism {
        match (self.hash, self.cb.is_some()) {
            (Hash::Sha1, false) => Mechanism::ScramSha1,
            (Hash::Sha1, true) => Mechanism::ScramSha1Plus,
            (Hash::Sha256, false) => Mechanism::ScramSha256,
            (Hash::Sha256, true) => Mechanism::ScramSha256Plus,
        }
    }

    /// client-first-message (RFC 5802 §5.1), the initial response.
    pub fn first_message(&mut self) -> Vec<u8> {
        // RFC 5802 §7: gs2-header = gs2-cbind-flag "," [ authzid ] ",".
        let flag = match (&self.cb, self.y_flag) {
            (Some(_), _) => format!("p={}", self.cb_type),
            (None, true) => "y".to_owned(),
            (None, false) => "n".to_owned(),
        };
        let authzid = self.authzid.as_deref().map(|a| format!("a={}", encode_saslname(a))).unwrap_or_default();
        let gs2_header = format!("{flag},{authzid},");
        let client_first_bare = format!("n={},r={}", encode_saslname(&self.username), self.nonce);
        let message = format!("{gs2_header}{client_first_bare}").into_bytes();
        self.state = State::FirstSent { gs2_header, client_first_bare };
        message
    }

    /// Take server-first-message, return client-final-message (RFC 5802 §5.1).
    pub fn handle_challenge(&mut self, challenge: &[u8]) -> Result<Vec<u8>, String> {
        let State::FirstSent { gs2_header, client_first_bare } = std::mem::replace(&mut self.state, State::Done) else {
            return Err("challenge out of order".into());
        };
        let server_first = std::str::from_utf8(challenge).map_err(|_| "server-first is not UTF-8")?;
        // RFC 5802 §5.1: a mandatory extension the client does not know fails.
        if server_first.starts_with("m=") {
            return Err("server requires an unsupported extension".into());
        }
        // RFC 5802 §7: server-first-message = nonce "," salt "," iteration-count ["," extensions].
        let mut attrs = server_first.split(',');
        let mut next = |name: &str| attrs.next().and_then(|a| a.strip_prefix(name)).map(str::to_owned);
        let nonce = next("r=").ok_or("server-first: missing nonce")?;
        let salt = next("s=").ok_or("server-first: missing salt")?;
        let iterations = next("i=").ok_or("server-first: missing iteration count")?;
        // RFC 5802 §5.1: the server's nonce starts with the client's and adds to it.
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("server-first: nonce does not extend the client nonce".into());
        }
        let salt = STANDARD.decode(salt).map_err(|_| "server-first: bad salt")?;
        let iterations: u32 = iterations.parse().map_err(|_| "server-first: bad iteration count")?;
        if salt.is_empty() || iterations == 0 || iterations > MAX_ITERATIONS {
            return Err("server-first: unacceptable salt or iteration count".into());
        }
        let salted = match self.cache.take() {
            Some(c) if c.hash == self.hash && c.salt == salt && c.iterations == iterations => c,
            _ => SaltedPassword {
                hash: self.hash,
                salted_password: salted_password(self.hash, &self.password, &salt, iterations),
                salt,
                iterations,
            },
        };
        // RFC 5802 §7: channel-binding = "c=" base64(gs2-header [cbind-data]).
        let mut cbind_input = gs2_header.into_bytes();
        cbind_input.extend_from_slice(self.cb.as_deref().unwrap_or_default());
        let without_proof = format!("c={},r={nonce}", STANDARD.encode(cbind_input));
        // RFC 5802 §3: AuthMessage, ClientProof := ClientKey XOR ClientSignature,
        // ServerSignature := HMAC(ServerKey, AuthMessage).
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let h = self.hash;
        let client_key = h.client_key(&salted.salted_password);
        let client_signature = h.hmac(&h.stored_key(&client_key), auth_message.as_bytes());
        let proof = xor(&client_key, &client_signature);
        let server_signature = h.hmac(&h.server_key(&salted.salted_password), auth_message.as_bytes());
        self.cache = Some(salted);
        self.state = State::FinalSent { server_signature };
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Check server-final-message (the `<success>` data): `v=` must be the
    /// ServerSignature (RFC 5802 §5.1, mutual authentication).
    pub fn verify_success(&mut self, data: &[u8]) -> Result<(), String> {
        let State::FinalSent { server_signature } = std::mem::replace(&mut self.state, State::Done) else {
            return Err("success out of order".into());
        };
        let text = std::str::from_utf8(data).map_err(|_| "server-final is not UTF-8")?;
        // RFC 5802 §7: server-final-message = (server-error / verifier) ["," extensions].
        let first = text.split(',').next().unwrap_or_default();
        if let Some(e) = first.strip_prefix("e=") {
            return Err(format!("server error: {e}"));
        }
        let v = first.strip_prefix("v=").ok_or("server-final: missing verifier")?;
        let v = STANDARD.decode(v).map_err(|_| "server-final: bad verifier")?;
        if !ct_eq(&v, &server_signature) {
            return Err("server signature mismatch".into());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
