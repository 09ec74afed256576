//! The tool's TLS client configuration. With `--ca`, the server's
//! certificate chain is verified once per distinct chain and name, and the
//! verdict is remembered for the rest of the run ([`Verifier`]): every
//! login of a run sees the same certificate, and re-verifying its chain
//! (an ECDSA verification plus X.509 parsing, about a tenth of the tool's
//! CPU per login) would make the tool, not the server, the limit. The
//! handshake signature (TLS 1.3 CertificateVerify, RFC 8446 §4.4.3), which
//! proves the server holds the certificate's key, is checked on every
//! handshake.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use super::Args;

/// rustls client configuration for `--ca` or `--insecure`.
pub fn connector(args: &Args) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use rustls_pki_types::pem::PemObject;
    // Offer TLS_AES_128_GCM_SHA256 first, as common clients do (rustls
    // would otherwise negotiate AES-256/SHA-384, slower in software).
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let provider = Arc::new(provider);
    let builder =
        rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let webpki = match &args.ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))? {
                roots.add(c.map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?)?;
            }
            Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()?,
            )
        }
        None => None,
    };
    let verifier = Arc::new(Verifier { webpki, provider, verified: RwLock::default() });
    let mut cfg = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
    if !args.tls_resume {
        cfg.resumption = rustls::client::Resumption::disabled();
    }
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

/// The chain: WebPKI (`--ca`), remembered per (name, chain) for the run, or
/// not checked at all (`--insecure`). Handshake signatures: checked every
/// time, with the provider's algorithms (as `WebPkiServerVerifier` does).
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    /// Keys of chains that verified: the name, then each certificate's DER.
    verified: RwLock<HashSet<Vec<u8>>>,
}

fn chain_key(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>], name: &ServerName<'_>) -> Vec<u8> {
    let name = name.to_str();
    let mut key = Vec::with_capacity(name.len() + end_entity.len() + 8);
    for part in std::iter::once(name.as_bytes())
        .chain(std::iter::once(&end_entity[..]))
        .chain(intermediates.iter().map(|c| &c[..]))
    {
        key.extend_from_slice(&(part.len() as u32).to_be_bytes());
        key.extend_from_slice(part);
    }
    key
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else { return Ok(ServerCertVerified::assertion()) };
        let key = chain_key(end_entity, intermediates, server_name);
        if self.verified.read().unwrap().contains(&key) {
            return Ok(ServerCertVerified::assertion());
        }
        let ok = webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        self.verified.write().unwrap().insert(key);
        Ok(ok)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ServerName<'static> {
        ServerName::try_from(s.to_owned()).unwrap()
    }

    #[test]
    fn chain_keys_differ_by_name_and_by_each_certificate() {
        let (a, b) = (CertificateDer::from(vec![1, 2, 3]), CertificateDer::from(vec![1, 2]));
        let c = CertificateDer::from(vec![3]);
        let k = chain_key(&a, &[], &name("localhost"));
        assert_eq!(k, chain_key(&a, &[], &name("localhost")));
        assert_ne!(k, chain_key(&a, &[], &name("example.com")));
        assert_ne!(k, chain_key(&b, &[], &name("localhost")));
        // Lengths are part of the key: [1,2]+[3] is not [1,2,3].
        assert_ne!(k, chain_key(&b, std::slice::from_ref(&c), &name("localhost")));
    }

    /// A CA and a leaf for `localhost` it signed, as DER.
    fn ca_and_leaf() -> (CertificateDer<'static>, CertificateDer<'static>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        (ca.der().clone(), leaf.der().clone())
    }

    #[test]
    fn a_remembered_chain_does_not_vouch_for_another() {
        let (ca, leaf) = ca_and_leaf();
        let (_, stranger) = ca_and_leaf();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
        let v = Verifier { webpki: Some(webpki), provider, verified: RwLock::default() };
        let now = UnixTime::now();
        for _ in 0..2 {
            v.verify_server_cert(&leaf, &[], &name("localhost"), &[], now).unwrap();
        }
        assert_eq!(v.verified.read().unwrap().len(), 1);
        // Another CA's leaf, and the right leaf under another name, still fail.
        assert!(v.verify_server_cert(&stranger, &[], &name("localhost"), &[], now).is_err());
        assert!(v.verify_server_cert(&leaf, &[], &name("example.com"), &[], now).is_err());
        assert_eq!(v.verified.read().unwrap().len(), 1);
    }
}
