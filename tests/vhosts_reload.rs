//! Virtual hosts (a certificate per host chosen by SNI, RFC 6066 §3; a
//! registration policy per host) and live reload (certificates and config
//! without dropping sessions; what needs a restart is reported).

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A test CA that signs leaf certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca { cert: p.self_signed(&key).unwrap(), key }
    }

    /// Write `dir/NAME-TAG.pem` and `-key.pem` for `name`; returns the
    /// paths and the leaf's DER.
    fn leaf(&self, dir: &Path, name: &str, tag: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let leaf =
            CertificateParams::new(vec![name.to_string()]).unwrap().signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (dir.join(format!("{name}-{tag}.pem")), dir.join(format!("{name}-{tag}-key.pem")));
        std::fs::write(&c, format!("{}{}", leaf.pem(), self.cert.pem())).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k, leaf.der().to_vec())
    }
}

/// A client trusting the test CA and the server's generated CA, without
/// session resumption (a resumed session does not carry the certificate).
fn connector(ca: &Ca, generated_ca: &Path) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    for c in CertificateDer::pem_file_iter(generated_ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// Direct TLS with SNI `host` (verified against the trusted CAs), open a
/// stream to `host`; returns the served leaf and the stream features.
async fn handshake(srv: &TestServer, tls: &tokio_rustls::TlsConnector, host: &str) -> (Vec<u8>, String) {
    let tcp = TcpStream::connect(srv.direct_tls).await.unwrap();
    let name = ServerName::try_from(host.to_string()).unwrap();
    let mut s = tls.connect(name, tcp).await.unwrap();
    let leaf = s.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let header = format!(
        "<?xml version='1.0'?><stream:stream to='{host}' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
    );
    s.write_all(header.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("</stream:features>") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    (leaf, String::from_utf8(got).unwrap())
}

fn config(data: &Path, a: &(PathBuf, PathBuf, Vec<u8>), b: &(PathBuf, PathBuf, Vec<u8>), extra: &str) -> String {
    format!(
        "hosts = [\"localhost\", \"a.test\", \"b.test\"]\ndata_dir = {data:?}\n\
         [[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n\
         [[listen]]\nkind = \"c2s_direct_tls\"\naddress = \"127.0.0.1:0\"\n\
         [host.\"a.test\"]\ncert = {:?}\nkey = {:?}\nadmins = [\"boss@a.test\"]\n\
         [host.\"b.test\"]\ncert = {:?}\nkey = {:?}\n{extra}",
        a.0, a.1, b.0, b.1
    )
}

const REGISTER: &str = "<register xmlns='http://jabber.org/features/iq-register'/>";

#[tokio::test]
async fn sni_picks_the_host_certificate_and_reload_swaps_it_without_dropping_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (a1, b1) = (ca.leaf(dir.path(), "a.test", "1"), ca.leaf(dir.path(), "b.test", "1"));
    let data = dir.path().join("data");
    let path = dir.path().join("xmppd.toml");
    let srv = start_server_file(dir, &config(&data, &a1, &b1, "")).await;
    let tls = connector(&ca, &srv.ca_path());

    // RFC 6066 §3: each name gets its own chain; other names the default.
    let (leaf, f) = handshake(&srv, &tls, "a.test").await;
    assert_eq!(leaf, a1.2);
    assert!(f.contains("from='a.test'") && !f.contains(REGISTER), "{f}");
    assert_eq!(handshake(&srv, &tls, "b.test").await.0, b1.2);
    let (leaf, _) = handshake(&srv, &tls, "localhost").await;
    assert!(leaf != a1.2 && leaf != b1.2, "localhost is served the generated certificate");
    assert!(srv.shared.config().is_admin(&xmppd::jid::Jid::parse("boss@a.test").unwrap()));

    // Two sessions that must survive the reload.
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let mut alice = TestClient::online(&srv, "alice", "pa", "a", 0).await;
    let mut bob = TestClient::online(&srv, "bob", "pb", "b", 0).await;

    // New certificate for a.test, registration opened on b.test only, a
    // limit changed, and a listener added (that needs a restart).
    let a2 = ca.leaf(srv.dir.path(), "a.test", "2");
    let extra = "[host.\"b.test\".registration]\nenabled = true\n[limits]\nmax_stanza_size = 100000\n\
                 [[listen]]\nkind = \"http\"\naddress = \"127.0.0.1:0\"\n";
    std::fs::write(&path, config(&data, &a2, &b1, extra)).unwrap();
    let cfg_path = path.clone();
    let out = tokio::task::spawn_blocking(move || xmppd::ctl::run(Some(&cfg_path), &["reload_config".to_string()]))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Configuration reloaded from") && out.stdout.contains("limits"), "{out:?}");
    assert!(out.stdout.contains("host"), "{out:?}");
    assert!(out.stderr.starts_with("Warning: key `listen` changed"), "reported, not ignored: {out:?}");
    assert!(out.stderr.contains("restart xmppd"), "{out:?}");
    assert_eq!(srv.shared.config().limits.max_stanza_size, 100_000);
    assert_eq!(srv.shared.config().listen.len(), 2, "the running listeners stay");

    // New handshakes see the new certificate and policy.
    let (leaf, _) = handshake(&srv, &tls, "a.test").await;
    assert_eq!(leaf, a2.2, "new certificate served after reload");
    let (leaf, f) = handshake(&srv, &tls, "b.test").await;
    assert_eq!(leaf, b1.2);
    assert!(f.contains(REGISTER), "b.test now offers in-band registration: {f}");
    assert!(!handshake(&srv, &tls, "a.test").await.1.contains(REGISTER));

    // The sessions are still up and route.
    alice.send("<message to='bob@localhost' type='chat' id='m1'><body>still here</body></message>").await;
    let m = bob.expect_stanza("still here").await;
    assert!(m.contains("from='alice@localhost/a'"), "{m}");
    bob.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    bob.expect("id='p1'").await;

    // A configuration whose certificates do not load (b.test's key is
    // a.test's) is refused whole, naming the key.
    let bad = config(&data, &a2, &b1, "").replace(&format!("{:?}", b1.1), &format!("{:?}", a1.1));
    std::fs::write(&path, bad).unwrap();
    let cfg_path = path.clone();
    let out = tokio::task::spawn_blocking(move || xmppd::ctl::run(Some(&cfg_path), &["reload_config".to_string()]))
        .await
        .unwrap();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("key `host.\"b.test\".key`") && out.stderr.contains("nothing changed"), "{out:?}");
    assert!(out.stderr.contains("does not match"), "{out:?}");
    assert_eq!(srv.shared.config().limits.max_stanza_size, 100_000, "the running config stays");
    assert_eq!(handshake(&srv, &tls, "a.test").await.0, a2.2);
    let m = srv.shared.metrics.config_reload_failures_total.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(m, 1);
    alice.send("<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    alice.expect("id='p2'").await;
    srv.stop().await;
}

#[tokio::test]
async fn a_bad_host_certificate_fails_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let a = ca.leaf(dir.path(), "a.test", "1");
    let b = ca.leaf(dir.path(), "b.test", "1");
    // b.test's key with a.test's certificate.
    let mixed = (a.0.clone(), b.1.clone(), a.2.clone());
    let text = config(&dir.path().join("data"), &a, &mixed, "");
    let cfg = xmppd::config::Config::parse(&text, "t").unwrap();
    let store = xmppd::storage::sqlite::SqliteStore::open(&cfg.data_dir).unwrap();
    let e = match xmppd::server::Server::bind(cfg, Arc::new(store)).await {
        Ok(_) => panic!("a mismatched key must not start"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("key `host.\"b.test\".key`") && e.contains("does not match"), "{e}");
}
