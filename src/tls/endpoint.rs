//! RFC 5929 §4 `tls-server-end-point` channel-binding data: the hash of the
//! server's certificate, which XEP-0440 §5 makes mandatory for servers.
//!
//! §4.1: the hash is the one in the certificate's signatureAlgorithm, except
//! that MD5 and SHA-1 become SHA-256. A signature with no single such hash
//! (Ed25519, RSASSA-PSS, anything unknown) has no defined binding, so none
//! is offered for that certificate. The DER is read with `yasna` (already
//! in the tree through rcgen).

use sha2::{Digest, Sha256, Sha384, Sha512};

/// The hash of the certificate's signature algorithm (RFC 5929 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndPointHash {
    Sha256,
    Sha384,
    Sha512,
}

/// signatureAlgorithm OID → hash (RFC 5929 §4.1). RSA PKCS#1 v1.5 from
/// RFC 8017 appendix C, ECDSA from RFC 5758 §3.2, DSA from RFC 5758 §3.1.
fn hash_of(oid: &[u64]) -> Option<EndPointHash> {
    use EndPointHash::*;
    Some(match oid {
        // md5WithRSAEncryption, sha1WithRSAEncryption → SHA-256 (§4.1).
        [1, 2, 840, 113549, 1, 1, 4] | [1, 2, 840, 113549, 1, 1, 5] => Sha256,
        [1, 2, 840, 113549, 1, 1, 11] => Sha256,
        [1, 2, 840, 113549, 1, 1, 12] => Sha384,
        [1, 2, 840, 113549, 1, 1, 13] => Sha512,
        // ecdsa-with-SHA1 → SHA-256 (§4.1); ecdsa-with-SHA256/384/512.
        [1, 2, 840, 10045, 4, 1] | [1, 2, 840, 10045, 4, 3, 2] => Sha256,
        [1, 2, 840, 10045, 4, 3, 3] => Sha384,
        [1, 2, 840, 10045, 4, 3, 4] => Sha512,
        // dsa-with-sha1 → SHA-256 (§4.1); dsa-with-sha256.
        [1, 2, 840, 10040, 4, 3] | [2, 16, 840, 1, 101, 3, 4, 3, 2] => Sha256,
        _ => return None,
    })
}

/// The signatureAlgorithm OID of a DER certificate (RFC 5280 §4.1:
/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }).
fn signature_oid(der: &[u8]) -> Option<Vec<u64>> {
    yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            r.next().read_der()?; // tbsCertificate
            let oid = r.next().read_sequence(|r| {
                let oid = r.next().read_oid()?;
                r.read_optional(|r| r.read_der())?; // parameters
                Ok(oid)
            })?;
            r.next().read_bitvec_bytes()?; // signatureValue
            Ok(oid)
        })
    })
    .ok()
    .map(|oid| oid.components().clone())
}

/// `tls-server-end-point` data for the end-entity certificate `der`, or
/// `None` when RFC 5929 defines none for its signature algorithm.
pub fn server_end_point(der: &[u8]) -> Option<Vec<u8>> {
    Some(match hash_of(&signature_oid(der)?)? {
        EndPointHash::Sha256 => Sha256::digest(der).to_vec(),
        EndPointHash::Sha384 => Sha384::digest(der).to_vec(),
        EndPointHash::Sha512 => Sha512::digest(der).to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec!["example.org".to_string()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn hash_follows_the_signature_algorithm() {
        let p256 = cert(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(signature_oid(&p256).unwrap(), vec![1, 2, 840, 10045, 4, 3, 2]);
        assert_eq!(server_end_point(&p256).unwrap(), Sha256::digest(&p256).to_vec());
        let p384 = cert(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert_eq!(server_end_point(&p384).unwrap(), Sha384::digest(&p384).to_vec());
        // Ed25519 signs without a separate hash: no binding defined (§4.1).
        assert_eq!(server_end_point(&cert(&rcgen::PKCS_ED25519)), None);
        assert_eq!(server_end_point(b"not DER"), None);
    }

    #[test]
    fn md5_and_sha1_become_sha256() {
        assert_eq!(hash_of(&[1, 2, 840, 113549, 1, 1, 5]), Some(EndPointHash::Sha256));
        assert_eq!(hash_of(&[1, 2, 840, 10045, 4, 1]), Some(EndPointHash::Sha256));
        assert_eq!(hash_of(&[1, 2, 840, 113549, 1, 1, 13]), Some(EndPointHash::Sha512));
        assert_eq!(hash_of(&[1, 2, 840, 113549, 1, 1, 10]), None, "RSASSA-PSS: hash in parameters");
    }
}
