//! Fuzz harness for the server side of SASL (`xmppd::sasl::SaslSession`):
//! PLAIN (RFC 4616) and SCRAM-SHA-1/-256[-PLUS] (RFC 5802, RFC 7677,
//! RFC 9266) against real stored keys of the account `user` / `pencil`.
//!
//! Input: byte 0 picks the mechanism (low bits), whether the stream offers
//! tls-exporter channel binding (0x80) and is encrypted (0x40); the rest is
//! up to four client messages separated by 0xFF (never valid UTF-8). In a
//! client-final message the harness replaces `$N` with the nonce from
//! server-first, `$C` with the right base64 channel-binding input and `$P`
//! with the correct proof for password `pencil`, so the fuzzer reaches the
//! success path and every check before it.
//!
//! Oracles: no panic; success only for `user`, only with the right password
//! (PLAIN) or the harness-computed proof (SCRAM), and its server signature
//! is the correct one (RFC 5802 §3); a -PLUS success needs channel-binding
//! data; an authzid on success names `user` (RFC 6120 §6.4.6).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::sync::OnceLock;
use xmppd::sasl::{derive_credentials_with_salt, Context, Hash, Mechanism, SaslSession, Step};
use xmppd::storage::Credentials;

const PASSWORD: &str = "pencil";
const EXPORTER: [u8; 32] = [7; 32];

fn creds() -> &'static Credentials {
    static C: OnceLock<Credentials> = OnceLock::new();
    C.get_or_init(|| derive_credentials_with_salt(PASSWORD, b"fuzz-salt-sha1", b"fuzz-salt-sha256", 16))
}

fn replace(hay: &[u8], pat: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(pat) {
            out.extend_from_slice(with);
            i += pat.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// What the harness learnt from client-first and server-first.
struct Exchange {
    hash: Hash,
    gs2_header: Vec<u8>,
    client_first_bare: Vec<u8>,
    server_first: String,
}

impl Exchange {
    fn attr(&self, k: &str) -> Option<&str> {
        self.server_first.split(',').find_map(|a| a.strip_prefix(k))
    }

    /// Fill `$N`, `$C` and `$P` into a client-final template; also return
    /// the ServerSignature a correct server must send (when `$P` was used).
    fn fill(&self, template: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
        let nonce = self.attr("r=").unwrap_or_default().as_bytes().to_vec();
        let mut cbind = self.gs2_header.clone();
        if self.gs2_header.starts_with(b"p=") {
            cbind.extend_from_slice(&EXPORTER);
        }
        let msg = replace(template, b"$N", &nonce);
        let msg = replace(&msg, b"$C", STANDARD.encode(cbind).as_bytes());
        let Some(at) = msg.windows(2).position(|w| w == b"$P") else { return (msg, None) };
        let Some(without_proof) = msg[..at].strip_suffix(b",p=") else { return (msg, None) };
        let salt = STANDARD.decode(self.attr("s=").unwrap_or_default()).unwrap_or_default();
        let iterations: u32 = self.attr("i=").and_then(|i| i.parse().ok()).unwrap_or(0);
        if iterations == 0 || iterations > 100_000 {
            return (msg, None);
        }
        let h = self.hash;
        let salted = h.salted_password(PASSWORD.as_bytes(), &salt, iterations);
        let client_key = h.client_key(&salted);
        let mut auth = self.client_first_bare.clone();
        auth.push(b',');
        auth.extend_from_slice(self.server_first.as_bytes());
        auth.push(b',');
        auth.extend_from_slice(without_proof);
        let sig = h.hmac(&h.stored_key(&client_key), &auth);
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let server_sig = h.hmac(&h.server_key(&salted), &auth);
        let mut filled = msg[..at].to_vec();
        filled.extend_from_slice(STANDARD.encode(proof).as_bytes());
        filled.extend_from_slice(&msg[at + 2..]);
        (filled, Some(server_sig))
    }
}

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mech = Mechanism::ALL[usize::from(mode & 0x07) % Mechanism::ALL.len()];
    let exporter = (mode & 0x80 != 0).then(|| EXPORTER.to_vec());
    let ctx = Context { tls_exporter: exporter.clone(), tls_server_end_point: None, secure: mode & 0x40 == 0 };
    let mut session = SaslSession::new(mech, ctx);
    let mut lookup = |u: &str| (u == "user").then(|| creds().clone());
    let mut exchange: Option<Exchange> = None;
    let mut first: Option<Vec<u8>> = None;
    for msg in rest.split(|&b| b == 0xff).take(4) {
        let (input, expected_sig) = match &exchange {
            Some(x) => x.fill(msg),
            None => (msg.to_vec(), None),
        };
        if first.is_none() && !input.is_empty() {
            first = Some(input.clone());
        }
        match session.step(&input, &mut lookup) {
            Step::Challenge(c) => {
                if let (Some(hash), None, Some(cf)) = (mech.hash(), &exchange, &first) {
                    let server_first = String::from_utf8(c).expect("server-first is UTF-8");
                    assert!(server_first.starts_with("r="), "server-first {server_first:?}");
                    // RFC 5802 §7: client-first = gs2-header client-first-bare.
                    let mut commas = cf.iter().enumerate().filter(|(_, &b)| b == b',').map(|(i, _)| i);
                    let (_, second) = (commas.next(), commas.next().expect("client-first was accepted"));
                    exchange = Some(Exchange {
                        hash,
                        gs2_header: cf[..=second].to_vec(),
                        client_first_bare: cf[second + 1..].to_vec(),
                        server_first,
                    });
                }
            }
            Step::Success { username, additional } => {
                assert_eq!(username, "user");
                match mech.hash() {
                    None => {
                        let parts: Vec<&[u8]> = input.split(|&b| b == 0).collect();
                        assert_eq!(parts.last().copied(), Some(PASSWORD.as_bytes()), "PLAIN success, wrong password");
                        assert!(additional.is_none());
                    }
                    Some(_) => {
                        let sig = expected_sig.expect("SCRAM success without the real proof");
                        let v = format!("v={}", STANDARD.encode(sig));
                        assert_eq!(additional.as_deref(), Some(v.as_bytes()), "wrong server signature");
                        if mech.is_plus() {
                            assert!(exporter.is_some(), "-PLUS success without channel binding");
                        }
                    }
                }
                if let Some(a) = session.authzid() {
                    let a = a.to_lowercase();
                    assert!(a == "user" || a.starts_with("user@"), "authzid {a:?} accepted for user");
                    assert!(!a.contains('/'), "authzid with a resource accepted");
                }
                // RFC 6120 §6.4.5: the exchange is over; more data is refused.
                assert!(matches!(session.step(b"x", &mut lookup), Step::Failure(_)));
                return;
            }
            Step::Failure(_) => return,
        }
    }
}
