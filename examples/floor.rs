//! What this machine allows before any XMPP work: the transport half of
//! the chat and login scenarios, each as a server and a client process,
//! like xmppd and xmppd-load (bench/README.md, "Microbenchmarks").
//!
//! **relay**: what xmppd does with a routed message minus XML, SASL and
//! storage. One task per connection (as xmppd's `Conn::run`) waits on its
//! socket and its channel; a frame read is looked up by destination in a
//! concurrent table and queued on that connection's channel, which writes
//! what is queued. Plain TCP, or TLS 1.3 with a CERTFILE. The client opens
//! USERS connections, and a pacer thread (sleeping 100 us to 1 ms, as
//! xmppd-load's does) hands frames to random connections at RATE per second;
//! each frame carries its intended send time, and latency is measured from
//! it (no coordinated omission).
//!
//! **tls**: TLS 1.3 handshakes alone. The server does the handshake, reads a
//! byte and closes; the client keeps CONCURRENCY handshakes going.
//!
//! Both use what xmppd and xmppd-load use: rustls with ring, X25519, an
//! ECDSA P-256 certificate, TLS_AES_128_GCM_SHA256; the client checks the
//! handshake signature every time and the certificate against the file
//! the server wrote (xmppd-load verifies a chain once per run).
//!
//! ```text
//! floor relay-serve ADDR [CERTFILE]
//! floor relay-load ADDR USERS RATE SECS SERVER_PID|- [CERTFILE]
//! floor tls-serve ADDR CERTFILE
//! floor tls-load ADDR CERTFILE COUNT CONCURRENCY [SERVER_PID]
//! ```
//! (`cargo run --release --example floor -- ...`)

use dashmap::DashMap;
use rand::Rng;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Bytes per relayed frame: about what xmppd delivers for xmppd-load's
/// chat message (136 bytes sent, ~170 delivered with `from`).
const FRAME: usize = 160;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| a.get(i).map(String::as_str).unwrap_or_else(|| usage());
    let num = |i: usize| arg(i).parse::<f64>().unwrap_or_else(|_| usage());
    let pid = |i: usize| a.get(i).and_then(|p| p.parse::<u32>().ok());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    match arg(0) {
        "relay-serve" => {
            let tls = a.get(2).map(|c| acceptor(c));
            rt.block_on(async { relay_serve(TcpListener::bind(arg(1)).await.unwrap(), tls).await })
        }
        "relay-load" => {
            let cert = a.get(6).map(String::as_str);
            println!("{}", rt.block_on(relay_load(arg(1), num(2) as u32, num(3), num(4), pid(5), cert)).line)
        }
        "tls-serve" => {
            let tls = acceptor(arg(2));
            rt.block_on(async { tls_serve(TcpListener::bind(arg(1)).await.unwrap(), tls).await })
        }
        "tls-load" => println!("{}", rt.block_on(tls_load(arg(1), arg(2), num(3) as usize, num(4) as usize, pid(5)))),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: floor relay-serve ADDR [CERTFILE] | relay-load ADDR USERS RATE SECS SERVER_PID|- [CERTFILE]");
    eprintln!("       floor tls-serve ADDR CERTFILE | tls-load ADDR CERTFILE COUNT CONCURRENCY [SERVER_PID]");
    std::process::exit(2)
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(p)
}

/// A fresh ECDSA P-256 certificate for `localhost`, written (DER) to `path`.
pub fn acceptor(path: &str) -> tokio_rustls::TlsAcceptor {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
    std::fs::write(path, cert.der()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    // No session ticket (xmppd sends one): the floor leaves out what the
    // handshake does not need.
    cfg.send_tls13_tickets = 0;
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

fn connector(path: &str) -> tokio_rustls::TlsConnector {
    let cert = CertificateDer::from(std::fs::read(path).unwrap());
    let p = provider();
    let mut cfg = rustls::ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier(p, cert)))
        .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// The certificate must be the one the server wrote; the handshake
/// signature is checked every time.
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
        match ee[..] == self.1[..] {
            true => Ok(ServerCertVerified::assertion()),
            false => Err(rustls::Error::General("not the server's certificate".into())),
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

/// User plus system CPU seconds of a process (proc(5): utime and stime are
/// fields 14 and 15, counted after the command name's closing parenthesis).
fn cpu_secs(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    Some(ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}

/// CPU seconds of (the server, this process) now.
fn cpus(server: Option<u32>) -> (Option<f64>, Option<f64>) {
    (server.and_then(cpu_secs), cpu_secs(std::process::id()))
}

/// "a b": CPU seconds per `unit` operations of `ops`, for the two
/// processes between two [`cpus`] readings.
fn per(a: (Option<f64>, Option<f64>), b: (Option<f64>, Option<f64>), ops: u64, unit: f64) -> String {
    let f = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => format!("{:.3}", (y - x) * unit / ops.max(1) as f64),
        _ => "-".into(),
    };
    format!("{} {}", f(a.0, b.0), f(a.1, b.1))
}

type Table = Arc<DashMap<u32, mpsc::UnboundedSender<Vec<u8>>>>;

/// Relays frames between the connections `listener` accepts, over TLS
/// with `tls`; runs until the process ends.
pub async fn relay_serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) {
    let table: Table = Arc::default();
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tcp.set_nodelay(true);
        let (table, tls) = (table.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                Some(t) => {
                    if let Ok(s) = t.accept(tcp).await {
                        relay(s, table).await
                    }
                }
                None => relay(tcp, table).await,
            }
        });
    }
}

/// One connection: its id first, then frames `[to u32][ts u64][filler]`.
async fn relay(mut s: impl Io, table: Table) {
    let Ok(id) = s.read_u32().await else { return };
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    table.insert(id, tx);
    let (mut buf, mut have, mut out) = (vec![0u8; 16 * 1024], 0, Vec::with_capacity(4 * FRAME));
    loop {
        tokio::select! {
            r = s.read(&mut buf[have..]) => {
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => have += n,
                }
                let mut at = 0;
                while have - at >= FRAME {
                    let f = &buf[at..at + FRAME];
                    if let Some(dest) = table.get(&u32::from_be_bytes(f[..4].try_into().unwrap())) {
                        let _ = dest.send(f.to_vec());
                    }
                    at += FRAME;
                }
                buf.copy_within(at..have, 0);
                have -= at;
            }
            Some(f) = rx.recv() => {
                out.clear();
                out.extend_from_slice(&f);
                while let Ok(f) = rx.try_recv() {
                    out.extend_from_slice(&f);
                }
                if s.write_all(&out).await.is_err() || s.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    table.remove(&id);
}

struct Stats {
    start: Instant,
    delivered: AtomicU64,
    latencies: Mutex<Vec<u32>>,
}

/// What a relay run did; `line` is the report.
pub struct RelayRun {
    pub sent: u64,
    pub delivered: u64,
    pub line: String,
}

/// Opens `n` connections (over TLS when `cert` names the server's
/// certificate file) and relays frames among them at `rate` for `secs`.
pub async fn relay_load(addr: &str, n: u32, rate: f64, secs: f64, server: Option<u32>, cert: Option<&str>) -> RelayRun {
    let stats = Arc::new(Stats { start: Instant::now(), delivered: AtomicU64::new(0), latencies: Mutex::default() });
    let tls = cert.map(connector);
    let mut senders = Vec::with_capacity(n as usize);
    for id in 0..n {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (tx, rx) = mpsc::channel::<(u32, u64)>(64);
        senders.push(tx);
        match &tls {
            Some(t) => {
                let s = t.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
                tokio::spawn(client(s, id, rx, stats.clone()));
            }
            None => drop(tokio::spawn(client(tcp, id, rx, stats.clone()))),
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c0 = cpus(server);
    let st = stats.clone();
    // The pacer: item i is due at t0 + i/rate and carries that time.
    let sent = tokio::task::spawn_blocking(move || {
        let mut rng = rand::thread_rng();
        let t0 = st.start.elapsed();
        let (mut seq, mut sent, mut full, dur) = (0u64, 0u64, 0u64, Duration::from_secs_f64(secs));
        while st.start.elapsed() - t0 < dur {
            let due = ((st.start.elapsed() - t0).as_secs_f64() * rate) as u64 + 1;
            while seq < due {
                let ts = (t0.as_secs_f64() * 1e6 + seq as f64 * 1e6 / rate) as u64;
                let from = rng.gen_range(0..n);
                let to = (from + rng.gen_range(1..n)) % n;
                // A full queue (64 frames) would mean a stalled connection:
                // the frame is not sent, and counted.
                match senders[from as usize].try_send((to, ts)) {
                    Ok(()) => sent += 1,
                    Err(_) => full += 1,
                }
                seq += 1;
            }
            let wait = Duration::from_secs_f64(seq as f64 / rate).saturating_sub(st.start.elapsed() - t0);
            std::thread::sleep(wait.clamp(Duration::from_micros(100), Duration::from_millis(1)));
        }
        (sent, full)
    })
    .await
    .unwrap();
    let (sent, full) = sent;
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats.delivered.load(Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let c1 = cpus(server);
    let mut l = stats.latencies.lock().unwrap().clone();
    l.sort_unstable();
    let q =
        |p: f64| l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1))).map_or(0.0, |&v| v as f64 / 1e3);
    let line = format!(
        "users {n} rate {rate} tls {} sent {sent} queue_full {full} delivered {} p50_ms {:.3} p99_ms {:.3} p999_ms {:.3} cpu_s_per_100k(server,client) {}",
        tls.is_some(),
        l.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        per(c0, c1, sent, 100_000.0)
    );
    RelayRun { sent, delivered: l.len() as u64, line }
}

/// One client connection: sends the frames the pacer hands it, and
/// records the latency of the frames it receives.
async fn client(mut s: impl Io, id: u32, mut rx: mpsc::Receiver<(u32, u64)>, stats: Arc<Stats>) {
    if s.write_u32(id).await.is_err() || s.flush().await.is_err() {
        return;
    }
    let (mut f, mut buf, mut have) = ([b'x'; FRAME], vec![0u8; 4 * 1024], 0);
    loop {
        tokio::select! {
            cmd = rx.recv() => {
                let Some((to, ts)) = cmd else { return };
                f[..4].copy_from_slice(&to.to_be_bytes());
                f[4..12].copy_from_slice(&ts.to_be_bytes());
                if s.write_all(&f).await.is_err() || s.flush().await.is_err() {
                    return;
                }
            }
            r = s.read(&mut buf[have..]) => {
                match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => have += n,
                }
                let now = stats.start.elapsed().as_micros() as u64;
                let mut at = 0;
                while have - at >= FRAME {
                    let ts = u64::from_be_bytes(buf[at + 4..at + 12].try_into().unwrap());
                    stats.latencies.lock().unwrap().push(now.saturating_sub(ts) as u32);
                    stats.delivered.fetch_add(1, Relaxed);
                    at += FRAME;
                }
                buf.copy_within(at..have, 0);
                have -= at;
            }
        }
    }
}

/// Does a TLS handshake on each connection `listener` accepts, reads a
/// byte and closes; runs until the process ends.
pub async fn tls_serve(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor) {
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

/// `count` handshakes, `conc` at a time; returns the report.
pub async fn tls_load(addr: &str, cert: &str, count: usize, conc: usize, server: Option<u32>) -> String {
    let connector = connector(cert);
    let c0 = cpus(server);
    let t = Instant::now();
    let (next, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conc {
        let (connector, next, done, addr) = (connector.clone(), next.clone(), done.clone(), addr.to_string());
        tasks.spawn(async move {
            while next.fetch_add(1, Relaxed) < count {
                let tcp = TcpStream::connect(&addr).await.unwrap();
                tcp.set_nodelay(true).unwrap();
                let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
                tls.write_all(b"x").await.unwrap();
                let _ = tls.shutdown().await;
                done.fetch_add(1, Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let secs = t.elapsed().as_secs_f64();
    format!(
        "handshakes {} of {count} per_s {:.0} cpu_ms_each(server,client) {}",
        done.load(Relaxed),
        count as f64 / secs,
        per(c0, cpus(server), count as u64, 1000.0)
    )
}
