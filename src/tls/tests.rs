//! Unit tests of the TLS setup: generation, reuse, explicit files and their errors.

use super::*;
use rustls::{ClientConfig, ClientConnection};

fn config(dir: &Path, hosts: &[&str]) -> Config {
    let text = format!(
        "hosts = {hosts:?}\ndata_dir = {:?}\n[[listen]]\nkind = 'c2s'\naddress = '127.0.0.1:5222'\n",
        dir.to_str().unwrap()
    );
    Config::parse(&text, "test").unwrap()
}

fn explicit(cfg: &mut Config, cert: PathBuf, key: PathBuf) {
    cfg.tls = Some(crate::config::TlsFiles { cert, key });
}

fn client(cfg: &Config, v: &'static rustls::SupportedProtocolVersion, alpn: bool) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(generated_ca_path(cfg)).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cc = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[v])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    if alpn {
        cc.alpn_protocols = vec![ALPN_XMPP_CLIENT.to_vec()];
    }
    Arc::new(cc)
}

fn transfer<A, B>(from: &mut rustls::ConnectionCommon<A>, to: &mut rustls::ConnectionCommon<B>) {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        to.process_new_packets().unwrap();
    }
}

/// Pump records between the two ends in memory until both finish the handshake.
fn handshake(cc: Arc<ClientConfig>, sc: Arc<ServerConfig>, name: &str) -> (ClientConnection, ServerConnection) {
    let mut c = ClientConnection::new(cc, ServerName::try_from(name.to_string()).unwrap()).unwrap();
    let mut s = ServerConnection::new(sc).unwrap();
    for _ in 0..20 {
        transfer(&mut c, &mut s);
        transfer(&mut s, &mut c);
        if !c.is_handshaking() && !s.is_handshaking() {
            return (c, s);
        }
    }
    panic!("handshake did not complete");
}

#[test]
fn generates_reuses_and_regenerates() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &["example.org"]);
    server_config(&cfg).unwrap();
    let tls = generated_dir(&cfg);
    let read = |f: &str| std::fs::read(tls.join(f)).unwrap();
    #[cfg(unix)]
    for f in ["ca-key.pem", "key.pem"] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(tls.join(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
    }
    let chain = load_chain("t", &tls.join("cert.pem")).unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], load_chain("t", &generated_ca_path(&cfg)).unwrap()[0]);
    let (ca, cert, key) = (read("ca.pem"), read("cert.pem"), read("key.pem"));
    server_config(&cfg).unwrap();
    assert_eq!((read("ca.pem"), read("cert.pem"), read("key.pem")), (ca.clone(), cert.clone(), key));

    // A new host: new leaf, same CA, and the leaf chains to it for every name.
    let cfg2 = config(d.path(), &["example.org", "chat.example.net"]);
    let sc = server_config(&cfg2).unwrap();
    assert_eq!(read("ca.pem"), ca);
    assert_ne!(read("cert.pem"), cert);
    for name in ["chat.example.net", "example.org", "localhost", "127.0.0.1"] {
        handshake(client(&cfg2, &rustls::version::TLS13, true), sc.clone(), name);
    }
}

#[test]
fn tls13_exporter_matches_client_and_alpn() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &["example.org"]);
    let sc = server_config(&cfg).unwrap();
    let (c, s) = handshake(client(&cfg, &rustls::version::TLS13, true), sc.clone(), "example.org");
    assert_eq!(s.alpn_protocol(), Some(ALPN_XMPP_CLIENT));
    let server_cb = tls_exporter(&s).unwrap();
    let client_cb = c.export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None).unwrap();
    assert_eq!(server_cb, client_cb);
    // RFC 8446 §7.5: no context and an empty context export the same value.
    assert_eq!(c.export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", Some(&[])).unwrap(), client_cb);
    // No ALPN offered: still accepted.
    let (_, s) = handshake(client(&cfg, &rustls::version::TLS13, false), sc, "localhost");
    assert_eq!(s.alpn_protocol(), None);
}

#[test]
fn tls12_has_no_exporter() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &["example.org"]);
    let sc = server_config(&cfg).unwrap();
    let (_, s) = handshake(client(&cfg, &rustls::version::TLS12, true), sc, "example.org");
    assert_eq!(s.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(tls_exporter(&s), None);
}

#[test]
fn loads_explicit_files() {
    let d = tempfile::tempdir().unwrap();
    let gen = config(d.path(), &["example.org"]);
    server_config(&gen).unwrap();
    let mut cfg = config(&d.path().join("other"), &["example.org"]);
    explicit(&mut cfg, generated_dir(&gen).join("cert.pem"), generated_dir(&gen).join("key.pem"));
    let sc = server_config(&cfg).unwrap();
    assert!(!generated_dir(&cfg).exists(), "explicit files must not trigger generation");
    handshake(client(&gen, &rustls::version::TLS13, true), sc, "example.org");
}

#[test]
fn explicit_file_errors() {
    let d = tempfile::tempdir().unwrap();
    let gen = config(d.path(), &["example.org"]);
    server_config(&gen).unwrap();
    let tls = generated_dir(&gen);
    let err = |cert: PathBuf, key: PathBuf| {
        let mut cfg = config(d.path(), &["example.org"]);
        explicit(&mut cfg, cert, key);
        server_config(&cfg).unwrap_err()
    };

    let missing = d.path().join("missing.pem");
    let e = err(missing.clone(), tls.join("key.pem"));
    assert!(matches!(e, TlsError::File { key: "tls.cert", problem: FileProblem::Unreadable(_), .. }), "{e}");
    assert!(e.to_string().contains("tls.cert") && e.to_string().contains("missing.pem"), "{e}");
    let e = err(tls.join("cert.pem"), missing).to_string();
    assert!(e.contains("tls.key") && e.contains("missing.pem"), "{e}");

    // A key file where the certificate should be, and vice versa.
    let e = err(tls.join("key.pem"), tls.join("key.pem"));
    assert!(matches!(e, TlsError::File { key: "tls.cert", problem: FileProblem::NoCertificate, .. }), "{e}");
    assert!(e.to_string().contains("key.pem"), "{e}");
    let e = err(tls.join("cert.pem"), tls.join("cert.pem"));
    assert!(matches!(e, TlsError::File { key: "tls.key", problem: FileProblem::NoKey, .. }), "{e}");

    // The CA's key does not belong to the leaf.
    let e = err(tls.join("cert.pem"), tls.join("ca-key.pem"));
    assert!(matches!(e, TlsError::File { key: "tls.key", problem: FileProblem::KeyMismatch(_), .. }), "{e}");
    assert!(e.to_string().contains("does not match") && e.to_string().contains("ca-key.pem"), "{e}");
}

#[test]
fn tls13_resumes_by_stateless_ticket_after_many_other_sessions() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &["example.org"]);
    let sc = server_config(&cfg).unwrap();
    assert!(sc.ticketer.enabled(), "stateless tickets (RFC 8446 §2.2)");
    let returning = client(&cfg, &rustls::version::TLS13, true);
    let (_, s) = handshake(returning.clone(), sc.clone(), "example.org");
    assert_eq!(s.handshake_kind(), Some(rustls::HandshakeKind::Full));
    // More sessions than the old 1024-entry server cache held: a ticket
    // needs no server state, so the first client still resumes.
    let others = client(&cfg, &rustls::version::TLS13, true);
    for _ in 0..1100 {
        handshake(others.clone(), sc.clone(), "example.org");
    }
    let (_, s) = handshake(returning, sc, "example.org");
    assert_eq!(s.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
}

/// XEP-0440 §5 / RFC 5929 §4.1: the end point is SHA-256 of the leaf the
/// handshake was served (the generated one is ECDSA P-256 with SHA-256).
#[test]
fn server_end_point_is_the_served_leafs_hash() {
    use sha2::Digest;
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &["example.org"]);
    let resolver = crate::certs::CertResolver::new(&cfg).unwrap();
    let leaf = load_chain("t", &generated_dir(&cfg).join("cert.pem")).unwrap().remove(0);
    let want = sha2::Sha256::digest(leaf.as_ref()).to_vec();
    assert_eq!(resolver.server_end_point(None), Some(want.clone()));
    assert_eq!(resolver.server_end_point(Some("example.org")), Some(want));
}
