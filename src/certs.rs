//! Certificates per virtual host, chosen by SNI (RFC 6066 §3) and swapped
//! atomically on reload.
//!
//! A host with `[host."DOMAIN"] cert`/`key` is served that chain when the
//! ClientHello names it; any other name, or none, gets the default: `[tls]`
//! or the generated certificate (which covers every host). Reload builds a
//! new set first and swaps it in only when every file loaded, so a bad file
//! leaves the running certificates in place; connections already up keep
//! their session, new handshakes see the new set.

use crate::config::Config;
use crate::tls::TlsError;
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// A chain with its `tls-server-end-point` data (RFC 5929 §4), computed once.
#[derive(Debug)]
struct Served {
    key: Arc<CertifiedKey>,
    end_point: Option<Vec<u8>>,
}

impl Served {
    fn new(key: CertifiedKey) -> Served {
        let end_point = key.end_entity_cert().ok().and_then(|c| crate::tls::endpoint::server_end_point(c.as_ref()));
        Served { key: Arc::new(key), end_point }
    }
}

/// The certificates in force.
#[derive(Debug)]
struct CertSet {
    /// Lowercased host name → its own chain.
    by_name: HashMap<String, Served>,
    /// For every other name and for clients that send no SNI.
    default: Served,
}

impl CertSet {
    /// What a ClientHello naming `sni` is served (rustls hands the SNI name
    /// over already validated as a DNS name).
    fn for_name(&self, sni: Option<&str>) -> &Served {
        sni.and_then(|n| self.by_name.get(&n.to_ascii_lowercase())).unwrap_or(&self.default)
    }
}

impl CertSet {
    fn load(cfg: &Config) -> Result<CertSet, TlsError> {
        let default = Served::new(crate::tls::default_certified(cfg)?);
        let mut by_name = HashMap::new();
        for (host, h) in &cfg.host {
            if let (Some(cert), Some(key)) = (&h.cert, &h.key) {
                let ck = crate::tls::load_pair(cert, key, ("cert", "key")).map_err(|e| match e {
                    TlsError::File { key, path, problem } => {
                        TlsError::HostFile { host: host.clone(), key, path, problem }
                    }
                    e => e,
                })?;
                by_name.insert(host.to_ascii_lowercase(), Served::new(ck));
            }
        }
        Ok(CertSet { by_name, default })
    }
}

/// rustls' certificate resolver over the swappable set.
#[derive(Debug)]
pub struct CertResolver {
    set: ArcSwap<CertSet>,
}

impl CertResolver {
    /// Load every certificate the configuration names.
    pub fn new(cfg: &Config) -> Result<CertResolver, TlsError> {
        Ok(CertResolver { set: ArcSwap::from_pointee(CertSet::load(cfg)?) })
    }

    /// Load the certificates of `cfg` and, if all load, put them in force.
    pub fn reload(&self, cfg: &Config) -> Result<(), TlsError> {
        self.set.store(Arc::new(CertSet::load(cfg)?));
        Ok(())
    }

    /// `tls-server-end-point` data (RFC 5929 §4) for the certificate a
    /// handshake naming `sni` is served now, if its signature algorithm
    /// defines one. A resumed session (no certificate sent) binds to the
    /// certificate in force, which is the one it began with unless a reload
    /// replaced it since.
    pub fn server_end_point(&self, sni: Option<&str>) -> Option<Vec<u8>> {
        self.set.load().for_name(sni).end_point.clone()
    }

    /// Hosts with their own certificate, sorted.
    pub fn hosts_with_own_cert(&self) -> Vec<String> {
        let mut v: Vec<String> = self.set.load().by_name.keys().cloned().collect();
        v.sort();
        v
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.set.load().for_name(hello.server_name()).key.clone())
    }
}
