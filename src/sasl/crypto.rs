//! The SCRAM key schedule (RFC 5802 §3) over the `hmac`, `sha1`, `sha2` and
//! `pbkdf2` crates, shared by the server mechanisms and [`super::client`].

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::storage::ScramKeys;

/// The hash function of a SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hash {
    /// SHA-1 (SCRAM-SHA-1, RFC 5802).
    Sha1,
    /// SHA-256 (SCRAM-SHA-256, RFC 7677).
    Sha256,
}

impl Hash {
    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }

    /// The mechanism name without `-PLUS`.
    pub fn mechanism_name(self) -> &'static str {
        match self {
            Hash::Sha1 => "SCRAM-SHA-1",
            Hash::Sha256 => "SCRAM-SHA-256",
        }
    }

    /// H(data).
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => Sha1::digest(data).to_vec(),
            Hash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// HMAC(key, data).
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
        match self {
            Hash::Sha1 => {
                let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Hash::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// SaltedPassword := Hi(Normalize(password), salt, i) — RFC 5802 §3:
    /// Hi is PBKDF2 with HMAC as the PRF and dkLen = output length.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_len()];
        match self {
            Hash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
            Hash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
        }
        out
    }

    /// ClientKey := HMAC(SaltedPassword, "Client Key") — RFC 5802 §3.
    pub fn client_key(self, salted_password: &[u8]) -> Vec<u8> {
        self.hmac(salted_password, b"Client Key")
    }

    /// ServerKey := HMAC(SaltedPassword, "Server Key") — RFC 5802 §3.
    pub fn server_key(self, salted_password: &[u8]) -> Vec<u8> {
        self.hmac(salted_password, b"Server Key")
    }

    /// StoredKey := H(ClientKey) — RFC 5802 §3.
    pub fn stored_key(self, client_key: &[u8]) -> Vec<u8> {
        self.digest(client_key)
    }

    /// The stored keys for a SaltedPassword computed elsewhere.
    pub fn keys_from_salted(self, salted_password: &[u8], salt: &[u8], iterations: u32) -> ScramKeys {
        ScramKeys {
            salt: salt.to_vec(),
            iterations,
            stored_key: self.stored_key(&self.client_key(salted_password)),
            server_key: self.server_key(salted_password),
        }
    }
}

/// `a XOR b` over the shorter length (callers check lengths first).
pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Constant-time equality (length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// Derive the stored keys for one hash from a password and a known salt.
/// `iterations` of 0 is raised to 1 (RFC 5802 §3: i is at least 1).
pub fn derive_keys(hash: Hash, password: &str, salt: &[u8], iterations: u32) -> ScramKeys {
    let iterations = iterations.max(1);
    let salted = hash.salted_password(password.as_bytes(), salt, iterations);
    hash.keys_from_salted(&salted, salt, iterations)
}
