//! Server side of SCRAM-SHA-1/-256 (RFC 5802, RFC 7677) and -PLUS with
//! tls-exporter (RFC 9266) and tls-server-end-point (RFC 5929 §4) channel
//! binding. All parsing works on `&str`
//! slices with `split`/`strip_prefix`, so hostile input cannot panic.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::crypto::{ct_eq, xor};
use super::{authzid_allowed, keys_for, Failure, Hash};
use crate::storage::{Credentials, ScramKeys};

/// Channel-binding type names: RFC 9266 §2 (§4.2 for XMPP) and RFC 5929 §4.
pub(crate) const CB_TLS_EXPORTER: &str = "tls-exporter";
pub(crate) const CB_TLS_SERVER_END_POINT: &str = "tls-server-end-point";

/// The channel-binding data this connection has (XEP-0440 §5: servers
/// offer tls-server-end-point, and tls-exporter where it is safe).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Bindings<'a> {
    pub exporter: Option<&'a [u8]>,
    pub server_end_point: Option<&'a [u8]>,
}

impl Bindings<'_> {
    fn any(&self) -> bool {
        self.exporter.is_some() || self.server_end_point.is_some()
    }

    fn data(&self, name: &str) -> Option<&[u8]> {
        match name {
            CB_TLS_EXPORTER => self.exporter,
            CB_TLS_SERVER_END_POINT => self.server_end_point,
            _ => None,
        }
    }
}

/// A successful SCRAM exchange.
pub(crate) struct Authenticated {
    pub(crate) username: String,
    pub(crate) authzid: Option<String>,
    /// server-final-message: `v=` ServerSignature.
    pub(crate) server_final: Vec<u8>,
}

/// State between server-first-message and client-final-message.
pub(crate) struct ScramServer {
    hash: Hash,
    /// What `c=` must decode to: gs2-header, plus cbind-data for `p=`.
    cbind_input: Vec<u8>,
    client_first_bare: String,
    server_first: String,
    /// Client nonce + server nonce.
    nonce: String,
    keys: ScramKeys,
    /// Normalised localpart; `None` when it is malformed or unknown.
    username: Option<String>,
    /// Normalised localpart as sent, known or not (failure accounting).
    pub(crate) attempted: Option<String>,
    authzid: Option<String>,
}

fn malformed<T>() -> Result<T, Failure> {
    Err(Failure::MalformedRequest)
}

/// Decode a `saslname` (RFC 5802 §7): `=2C` is ',', `=3D` is '=', any
/// other '=' is invalid (RFC 5802 §5.1), and it is not empty.
pub(crate) fn decode_saslname(s: &str) -> Result<String, Failure> {
    let mut out = String::with_capacity(s.len());
    let mut parts = s.split('=');
    out.push_str(parts.next().unwrap_or_default());
    for part in parts {
        if let Some(rest) = part.strip_prefix("2C") {
            out.push(',');
            out.push_str(rest);
        } else if let Some(rest) = part.strip_prefix("3D") {
            out.push('=');
            out.push_str(rest);
        } else {
            return malformed();
        }
    }
    // RFC 5802 §7: saslname = 1*(value-safe-char / "=2C" / "=3D"), and
    // value-safe-char excludes NUL.
    if out.is_empty() || out.contains('\0') {
        return malformed();
    }
    Ok(out)
}

/// `c-nonce`/`nonce` characters (RFC 5802 §7: printable, i.e. %x21-7E except ',').
fn valid_nonce(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// An optional extension `attr-val` (RFC 5802 §7: ALPHA "=" value). Unknown
/// optional extensions are ignored; they still count in AuthMessage.
fn valid_extension(s: &str) -> bool {
    let mut chars = s.chars();
    matches!((chars.next(), chars.next()), (Some(a), Some('=')) if a.is_ascii_alphabetic())
}

impl ScramServer {
    /// Parse client-first-message, look the user up and build server-first.
    pub(crate) fn start(
        hash: Hash,
        plus: bool,
        cb: Bindings<'_>,
        input: &[u8],
        lookup: &mut dyn FnMut(&str) -> Option<Credentials>,
        server_nonce: &str,
    ) -> Result<ScramServer, Failure> {
        let text = std::str::from_utf8(input).map_err(|_| Failure::MalformedRequest)?;
        // RFC 5802 §7: client-first-message = gs2-header client-first-message-bare,
        // gs2-header = gs2-cbind-flag "," [ authzid ] ",".
        let mut it = text.splitn(3, ',');
        let (Some(flag), Some(authz), Some(bare)) = (it.next(), it.next(), it.next()) else {
            return malformed();
        };
        let gs2_header = text.get(..text.len() - bare.len()).ok_or(Failure::MalformedRequest)?;
        let cb_data: Option<&[u8]> = match flag {
            // RFC 5802 §6: "n" = client does not support channel binding;
            // a -PLUS mechanism requires "p=" (RFC 5802 §4).
            "n" if !plus => None,
            // RFC 5802 §6: "y" = client supports channel binding but thinks
            // the server does not. If this server offers -PLUS here, the
            // mechanism list was tampered with: fail (downgrade attack).
            "y" if !plus => match cb.any() {
                true => return Err(Failure::NotAuthorized),
                false => None,
            },
            "n" | "y" => return malformed(),
            _ => {
                let name = flag.strip_prefix("p=").ok_or(Failure::MalformedRequest)?;
                // RFC 5802 §7: cb-name = 1*(ALPHA / DIGIT / "." / "-").
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
                    return malformed();
                }
                // RFC 5802 §6: "p" is only valid with a -PLUS mechanism.
                if !plus {
                    return malformed();
                }
                // RFC 5802 §7 e=unsupported-channel-binding-type → not-authorized.
                match cb.data(name) {
                    Some(data) => Some(data),
                    None => return Err(Failure::NotAuthorized),
                }
            }
        };
        // RFC 5802 §7: authzid = "a=" saslname.
        let authzid = match authz {
            "" => None,
            a => Some(decode_saslname(a.strip_prefix("a=").ok_or(Failure::MalformedRequest)?)?),
        };
        // RFC 5802 §5.1: "m" is reserved for mandatory extensions, which this
        // server does not support (e=extensions-not-supported).
        if bare.starts_with("m=") {
            return malformed();
        }
        // RFC 5802 §7: client-first-message-bare = username "," nonce ["," extensions].
        let mut attrs = bare.split(',');
        let name = attrs.next().and_then(|a| a.strip_prefix("n=")).ok_or(Failure::MalformedRequest)?;
        let c_nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or(Failure::MalformedRequest)?;
        if !valid_nonce(c_nonce) || !valid_nonce(server_nonce) || !attrs.all(valid_extension) {
            return malformed();
        }
        let name = decode_saslname(name)?;
        // RFC 5802 §5.1 prepares the name (here: JID localpart rules). A
        // malformed name is handled like an unknown user: fake salt, and
        // not-authorized only after client-final (RFC 5802 §9 user enumeration).
        let user = crate::jid::normalize_node(&name).ok();
        let (keys, known) = keys_for(hash, user.as_deref(), &name, lookup);
        // RFC 5802 §5.1: server-first-message = nonce "," salt "," iteration-count,
        // the nonce being the client's nonce with the server's appended.
        let nonce = format!("{c_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={}", STANDARD.encode(&keys.salt), keys.iterations);
        // RFC 5802 §7: cbind-input = gs2-header [ cbind-data ].
        let mut cbind_input = gs2_header.as_bytes().to_vec();
        cbind_input.extend_from_slice(cb_data.unwrap_or_default());
        Ok(ScramServer {
            hash,
            cbind_input,
            client_first_bare: bare.to_owned(),
            server_first,
            nonce,
            keys,
            attempted: user.clone(),
            username: user.filter(|_| known),
            authzid,
        })
    }

    /// The server-first-message to send as a challenge.
    pub(crate) fn server_first(&self) -> &str {
        &self.server_first
    }

    /// Check client-final-message and build server-final-message.
    pub(crate) fn finish(self, input: &[u8]) -> Result<Authenticated, Failure> {
        let text = std::str::from_utf8(input).map_err(|_| Failure::MalformedRequest)?;
        // RFC 5802 §7: client-final-message = client-final-message-without-proof "," proof,
        // proof = "p=" base64, last.
        let (without_proof, proof) = text.rsplit_once(',').ok_or(Failure::MalformedRequest)?;
        let proof = proof.strip_prefix("p=").ok_or(Failure::MalformedRequest)?;
        let proof = STANDARD.decode(proof).map_err(|_| Failure::MalformedRequest)?;
        if proof.len() != self.hash.output_len() {
            return malformed();
        }
        // RFC 5802 §7: client-final-message-without-proof = channel-binding "," nonce ["," extensions].
        let mut attrs = without_proof.split(',');
        let cbind = attrs.next().and_then(|a| a.strip_prefix("c=")).ok_or(Failure::MalformedRequest)?;
        let nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or(Failure::MalformedRequest)?;
        if !attrs.all(valid_extension) {
            return malformed();
        }
        let cbind = STANDARD.decode(cbind).map_err(|_| Failure::MalformedRequest)?;
        // RFC 5802 §5.1 / RFC 9266 §3: c= must be the gs2-header (and the
        // tls-exporter data for "p=") (e=channel-bindings-dont-match).
        if !ct_eq(&cbind, &self.cbind_input) {
            return Err(Failure::NotAuthorized);
        }
        // RFC 5802 §5.1: the nonce must be the one from server-first
        // (client nonce prefix plus server nonce), unchanged.
        if nonce != self.nonce {
            return Err(Failure::NotAuthorized);
        }
        // RFC 5802 §3: AuthMessage := client-first-message-bare + "," +
        // server-first-message + "," + client-final-message-without-proof.
        let auth_message = format!("{},{},{without_proof}", self.client_first_bare, self.server_first);
        // RFC 5802 §3: ClientSignature := HMAC(StoredKey, AuthMessage);
        // ClientKey = ClientProof XOR ClientSignature; check H(ClientKey) = StoredKey.
        let client_signature = self.hash.hmac(&self.keys.stored_key, auth_message.as_bytes());
        let client_key = xor(&proof, &client_signature);
        let verified = ct_eq(&self.hash.stored_key(&client_key), &self.keys.stored_key);
        let username = match self.username {
            Some(u) if verified => u,
            _ => return Err(Failure::NotAuthorized),
        };
        // RFC 6120 §6.4.6: authzid the authcid may not use.
        if let Some(a) = &self.authzid {
            if !authzid_allowed(a, &username) {
                return Err(Failure::InvalidAuthzid);
            }
        }
        // RFC 5802 §3: ServerSignature := HMAC(ServerKey, AuthMessage);
        // server-final-message = "v=" base64(ServerSignature).
        let server_signature = self.hash.hmac(&self.keys.server_key, auth_message.as_bytes());
        let server_final = format!("v={}", STANDARD.encode(server_signature)).into_bytes();
        Ok(Authenticated { username, authzid: self.authzid, server_final })
    }
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
