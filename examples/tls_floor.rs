//! The machine's floor for the login scenario: TLS 1.3 handshakes alone,
//! over TCP on loopback, with what xmppd and xmppd-load use (rustls with
//! ring, X25519, an ECDSA P-256 certificate, TLS_AES_128_GCM_SHA256).
//! A full XMPP login adds to this four more round trips, SCRAM, bind,
//! roster and presence.
//!
//! The server does the handshake, reads one byte and closes; the client
//! keeps CONCURRENCY handshakes going, verifies the server's handshake
//! signature every time and its certificate chain once (as xmppd-load's
//! verifier does), and sends one byte after each. Both print CPU time.
//!
//! ```text
//! cargo run --release --example tls_floor -- serve 127.0.0.1:16001 /tmp/floor-cert
//! cargo run --release --example tls_floor -- load 127.0.0.1:16001 /tmp/floor-cert COUNT CONCURRENCY [SERVER_PID]
//! ```
//! `serve` writes the certificate (DER) to the path; run the two in
//! separate processes, as the server and the tool are.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    match a.first().map(String::as_str) {
        Some("serve") => rt.block_on(serve(&a[1], &a[2])),
        Some("load") => rt.block_on(load(&a[1], &a[2], a[3].parse().unwrap(), a[4].parse().unwrap(), a.get(5))),
        _ => eprintln!("usage: tls_floor serve ADDR CERT | load ADDR CERT COUNT CONCURRENCY [SERVER_PID]"),
    }
}

fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(p)
}

async fn serve(addr: &str, cert_path: &str) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
    std::fs::write(cert_path, cert.der()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    // No session ticket (xmppd sends one, src/tls.rs): the floor leaves
    // out all that is not the handshake itself.
    cfg.send_tls13_tickets = 0;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind(addr).await.unwrap();
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Ok(mut tls) = acceptor.accept(tcp).await {
                let _ = tls.read_u8().await;
            }
        });
    }
}

/// Checks the handshake signature every time; the chain is the one the
/// server wrote, so (as xmppd-load after its first verification) not again.
#[derive(Debug)]
struct Verifier(Arc<CryptoProvider>, CertificateDer<'static>);

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        ee: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if ee[..] == self.1[..] {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the server's certificate".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn load(addr: &str, cert_path: &str, count: usize, conc: usize, pid: Option<&String>) {
    let cert = CertificateDer::from(std::fs::read(cert_path).unwrap());
    let p = provider();
    let mut cfg = rustls::ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier(p, cert)))
        .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let cpu = |pid: u32| -> Option<f64> {
        let t = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let f: Vec<&str> = t[t.rfind(')')? + 1..].split_whitespace().collect();
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        Some(ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
    };
    let spid: Option<u32> = pid.and_then(|p| p.parse().ok());
    let (s0, c0) = (spid.and_then(cpu), cpu(std::process::id()));
    let t = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conc {
        let (connector, next, addr) = (connector.clone(), next.clone(), addr.to_string());
        tasks.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                let tcp = TcpStream::connect(&addr).await.unwrap();
                tcp.set_nodelay(true).unwrap();
                let name = ServerName::try_from("localhost").unwrap();
                let mut tls = connector.connect(name, tcp).await.unwrap();
                tls.write_all(b"x").await.unwrap();
                let _ = tls.shutdown().await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let secs = t.elapsed().as_secs_f64();
    let (s1, c1) = (spid.and_then(cpu), cpu(std::process::id()));
    let ms = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.3}", (b - a) * 1000.0 / count as f64),
        _ => "-".into(),
    };
    println!(
        "handshakes {count} per_s {:.0} server_cpu_ms_each {} client_cpu_ms_each {}",
        count as f64 / secs,
        ms(s0, s1),
        ms(c0, c1)
    );
}
