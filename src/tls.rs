//! TLS: the rustls server configuration, PEM loading, self-signed generation
//! and the RFC 9266 `tls-exporter` channel binding.
//!
//! With `[tls]` configured the chain and key are read from those PEM files.
//! Without it a local CA and a leaf certificate signed by it are kept in
//! `data_dir/tls/` (generated on first start, leaf regenerated when it no
//! longer covers the configured hosts or is about to expire). Clients trust
//! `ca.pem` (e.g. `NODE_EXTRA_CA_CERTS`, Python's `cafile`).

use crate::config::Config;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::ServerSessionMemoryCache;
use rustls::sign::CertifiedKey;
use rustls::{ProtocolVersion, ServerConfig, ServerConnection};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// ALPN protocol name for direct-TLS client connections (XEP-0368).
pub const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";
/// RFC 9266 exporter label.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";
const DAY: Duration = Duration::from_secs(86_400);
/// Generated leaf lifetime (below Apple's 825-day limit for TLS server certificates).
const LEAF_DAYS: u32 = 800;
/// A generated leaf expiring within this many days is replaced.
const RENEW_DAYS: u32 = 30;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A configured PEM file is unusable.
    #[error("key `{key}`: {path}: {problem}")]
    File {
        /// The configuration key: `tls.cert` or `tls.key`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: FileProblem,
    },
    /// A `[host."DOMAIN"]` certificate or key is unusable.
    #[error("key `host.\"{host}\".{key}`: {path}: {problem}")]
    HostFile {
        /// The domain.
        host: String,
        /// `cert` or `key`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: FileProblem,
    },
    /// Generating or writing the self-signed setup failed.
    #[error("self-signed certificate {path}: {reason}")]
    Generate {
        /// The file being generated.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What is wrong with a configured PEM file.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    /// Cannot be read, or is not valid PEM.
    #[error("cannot read: {0}")]
    Unreadable(String),
    /// Holds no `CERTIFICATE` section.
    #[error("no certificate in file")]
    NoCertificate,
    /// Holds no private key section.
    #[error("no private key (PKCS#8, PKCS#1 or SEC1) in file")]
    NoKey,
    /// Malformed or of an unsupported type.
    #[error("unusable: {0}")]
    Invalid(String),
    /// The key is not the one of the first certificate in this file.
    #[error("private key does not match the certificate in {}", .0.display())]
    KeyMismatch(PathBuf),
}

/// Build the server configuration from `cfg.tls`, or from the generated
/// self-signed setup in `data_dir/tls/` (created or refreshed as needed).
///
/// TLS 1.2 and 1.3 (ring provider), no client authentication, no 0-RTT,
/// a 1024-entry session cache, ALPN `xmpp-client` selected when offered
/// (clients sending no ALPN are accepted; rustls refuses a client whose ALPN
/// list lacks `xmpp-client` with `no_application_protocol`, RFC 7301 §3.2).
pub fn server_config(cfg: &Config) -> Result<Arc<ServerConfig>, TlsError> {
    Ok(server_config_with(Arc::new(crate::certs::CertResolver::new(cfg)?))?)
}

/// The server configuration around a certificate resolver (SNI, reload).
pub fn server_config_with(resolver: Arc<crate::certs::CertResolver>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut sc = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    sc.alpn_protocols = vec![ALPN_XMPP_CLIENT.to_vec()];
    sc.max_early_data_size = 0;
    // Resumption (RFC 8446 §2.2) by stateless tickets: the server keeps no
    // per-session state, so any number of clients can resume (the old
    // 1024-entry session cache forgot them, and its eviction scanned the
    // cache linearly). Ticket keys rotate every 6 hours (ring's Ticketer).
    // Resumed handshakes still run ECDHE (psk_dhe_ke), so traffic keeps
    // forward secrecy; they skip the certificate and its signature.
    sc.ticketer = rustls::crypto::ring::Ticketer::new()?;
    // One ticket per handshake: an XMPP client resumes one connection at a
    // time, and every resumption brings a fresh ticket (RFC 8446 §C.4).
    sc.send_tls13_tickets = 1;
    // TLS 1.2 clients without ticket support resume by session ID.
    sc.session_storage = ServerSessionMemoryCache::new(1024);
    Ok(Arc::new(sc))
}

/// The certificate for `[tls]` (files) or, without it, the generated one.
pub(crate) fn default_certified(cfg: &Config) -> Result<CertifiedKey, TlsError> {
    match &cfg.tls {
        Some(files) => load_pair(&files.cert, &files.key, ("tls.cert", "tls.key")),
        None => generated(cfg),
    }
}

/// Load a PEM chain and key, naming `keys` (config keys) in errors.
pub(crate) fn load_pair(cert: &Path, key: &Path, keys: (&'static str, &'static str)) -> Result<CertifiedKey, TlsError> {
    let chain = load_chain(keys.0, cert)?;
    let k = load_key(keys.1, key)?;
    certified_key(chain, k, cert, key, keys)
}

/// RFC 9266 `tls-exporter` channel-binding data: 32 bytes exported with the
/// label `EXPORTER-Channel-Binding` and no context. `None` before the
/// handshake completes and for TLS 1.2 (where it is unsafe without EMS).
pub fn tls_exporter(conn: &ServerConnection) -> Option<Vec<u8>> {
    if !has_tls_exporter(conn) {
        return None;
    }
    conn.export_keying_material(vec![0u8; 32], EXPORTER_LABEL, None).ok()
}

/// Whether [`tls_exporter`] has a value, without computing it (an HKDF
/// run that stream features, offered once per stage, do not need).
pub fn has_tls_exporter(conn: &ServerConnection) -> bool {
    !conn.is_handshaking() && conn.protocol_version() == Some(ProtocolVersion::TLSv1_3)
}

/// Directory holding the generated setup: `data_dir/tls`.
pub fn generated_dir(cfg: &Config) -> PathBuf {
    cfg.data_dir.join("tls")
}

/// Path of the generated local CA certificate (`data_dir/tls/ca.pem`), the
/// file clients should trust when no `[tls]` files are configured.
pub fn generated_ca_path(cfg: &Config) -> PathBuf {
    generated_dir(cfg).join("ca.pem")
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_reason(e: pem::Error) -> String {
    match e {
        pem::Error::Io(e) => e.to_string(),
        e => format!("invalid PEM: {e}"),
    }
}

fn file_err(key: &'static str, path: &Path, problem: FileProblem) -> TlsError {
    TlsError::File { key, path: path.to_path_buf(), problem }
}

fn load_chain(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let unreadable = |e| file_err(key, path, FileProblem::Unreadable(pem_reason(e)));
    let chain =
        CertificateDer::pem_file_iter(path).map_err(unreadable)?.collect::<Result<Vec<_>, _>>().map_err(unreadable)?;
    if chain.is_empty() {
        return Err(file_err(key, path, FileProblem::NoCertificate));
    }
    Ok(chain)
}

fn load_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => file_err(key, path, FileProblem::NoKey),
        e => file_err(key, path, FileProblem::Unreadable(pem_reason(e))),
    })
}

/// Pair a chain with its key, checking the key is supported and belongs to
/// the first certificate.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
    keys: (&'static str, &'static str),
) -> Result<CertifiedKey, TlsError> {
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| file_err(keys.1, key_path, FileProblem::Invalid(e.to_string())))?;
    let ck = CertifiedKey::new(chain, signer);
    match ck.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err(file_err(keys.1, key_path, FileProblem::KeyMismatch(cert_path.to_path_buf())))
        }
        Err(e) => Err(file_err(keys.0, cert_path, FileProblem::Invalid(e.to_string()))),
    }
}

/// Names the generated leaf must cover: the hosts (lowercased), `localhost`
/// and 127.0.0.1; names rustls cannot verify (e.g. non-ASCII) are skipped.
fn san_names(hosts: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in hosts.iter().map(|h| h.to_ascii_lowercase()).chain(["localhost".into(), "127.0.0.1".into()]) {
        if !n.is_ascii() || ServerName::try_from(n.as_str()).is_err() {
            tracing::warn!(host = %n, "host cannot be put in the generated certificate; configure [tls] files for it");
        } else if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// Parameters valid from a day ago for `days` (rcgen's `time` values are
/// built from the epoch, avoiding a direct dependency on `time`).
fn params_valid_for(days: u32) -> CertificateParams {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut p = CertificateParams::default();
    p.not_before = rcgen::date_time_ymd(1970, 1, 1) + now.saturating_sub(DAY);
    p.not_after = rcgen::date_time_ymd(1970, 1, 1) + now + DAY * days;
    p
}

/// The CA's parameters. Deterministic apart from validity, so the issuer can
/// be rebuilt from `ca-key.pem` to sign a new leaf that chains to `ca.pem`.
fn ca_params() -> CertificateParams {
    let mut p = params_valid_for(20 * 365);
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::OrganizationName, "xmppd");
    p.distinguished_name.push(DnType::CommonName, "xmppd local CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p
}

fn write_file(path: &Path, data: &[u8], private: bool) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn gen_err<E: std::fmt::Display>(path: &Path) -> impl FnOnce(E) -> TlsError + '_ {
    move |e| TlsError::Generate { path: path.to_path_buf(), reason: e.to_string() }
}

/// The existing CA, if both files load and match.
fn load_ca(dir: &Path) -> Option<(CertificateDer<'static>, KeyPair)> {
    let cert = load_chain("ca", &dir.join("ca.pem")).ok()?.into_iter().next()?;
    let kp = KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca-key.pem")).ok()?).ok()?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(kp.serialize_der()));
    let signer = rustls::crypto::ring::sign::any_supported_type(&der).ok()?;
    CertifiedKey::new(vec![cert.clone()], signer).keys_match().ok()?;
    Some((cert, kp))
}

/// Whether `chain` verifies against `ca` for every name, a little ahead of now.
fn leaf_valid(chain: &[CertificateDer<'static>], ca: &CertificateDer<'static>, names: &[String]) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    let (Some((leaf, rest)), Ok(())) = (chain.split_first(), roots.add(ca.clone())) else { return false };
    let Ok(verifier) = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build()
    else {
        return false;
    };
    let soon =
        UnixTime::since_unix_epoch(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + DAY * RENEW_DAYS);
    names.iter().all(|n| {
        ServerName::try_from(n.as_str()).is_ok_and(|sn| verifier.verify_server_cert(leaf, rest, &sn, &[], soon).is_ok())
    })
}

/// Load, create or refresh the generated CA and leaf in `data_dir/tls/`.
fn generated(cfg: &Config) -> Result<CertifiedKey, TlsError> {
    let dir = generated_dir(cfg);
    let (ca_path, ca_key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut db = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut db, 0o700);
    db.recursive(true).create(&dir).map_err(gen_err(&dir))?;
    let names = san_names(&cfg.hosts);

    let (ca_der, ca_key) = match load_ca(&dir) {
        Some(ca) => ca,
        None => {
            let key = KeyPair::generate().map_err(gen_err(&ca_key_path))?;
            let cert = ca_params().self_signed(&key).map_err(gen_err(&ca_path))?;
            write_file(&ca_key_path, key.serialize_pem().as_bytes(), true).map_err(gen_err(&ca_key_path))?;
            write_file(&ca_path, cert.pem().as_bytes(), false).map_err(gen_err(&ca_path))?;
            tracing::info!(
                ca = %ca_path.display(),
                "generated a local CA for the self-signed certificate; clients must trust it \
                 (e.g. NODE_EXTRA_CA_CERTS={}, Python ssl cafile)",
                ca_path.display()
            );
            (cert.der().clone(), key)
        }
    };

    let existing = load_chain("cert", &cert_path)
        .and_then(|chain| certified_key(chain, load_key("key", &key_path)?, &cert_path, &key_path, ("cert", "key")))
        .ok();
    if let Some(ck) = existing.filter(|ck| leaf_valid(&ck.cert, &ca_der, &names)) {
        return Ok(ck);
    }

    let issuer = ca_params().self_signed(&ca_key).map_err(gen_err(&ca_path))?;
    let mut p = params_valid_for(LEAF_DAYS);
    p.subject_alt_names = CertificateParams::new(names.clone()).map_err(gen_err(&cert_path))?.subject_alt_names;
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, names[0].clone());
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    let leaf_key = KeyPair::generate().map_err(gen_err(&key_path))?;
    let leaf = p.signed_by(&leaf_key, &issuer, &ca_key).map_err(gen_err(&cert_path))?;
    let ca_pem = pem_encode(&ca_der);
    write_file(&key_path, leaf_key.serialize_pem().as_bytes(), true).map_err(gen_err(&key_path))?;
    write_file(&cert_path, format!("{}{ca_pem}", leaf.pem()).as_bytes(), false).map_err(gen_err(&cert_path))?;
    tracing::info!(
        cert = %cert_path.display(),
        ca = %ca_path.display(),
        names = ?names,
        "generated a self-signed TLS certificate; trust {} in clients (e.g. NODE_EXTRA_CA_CERTS)",
        ca_path.display()
    );
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    certified_key(vec![leaf.der().clone(), ca_der], key, &cert_path, &key_path, ("cert", "key"))
}

/// PEM text of one certificate (64-column base64, LF line endings).
fn pem_encode(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap_or_default()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

pub mod endpoint;

#[cfg(test)]
mod tests;
