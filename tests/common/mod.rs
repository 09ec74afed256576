//! Test harness: `start_server()` runs xmppd in-process on port 0 with a
//! temporary data dir; `TestClient` speaks raw XML over TCP or TLS.
#![allow(dead_code)]

pub mod daemon;

use base64::Engine;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use xmppd::config::{Config, ListenKind};
use xmppd::server::{Server, Shared};
use xmppd::storage::sqlite::SqliteStore;

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const TIMEOUT: Duration = Duration::from_secs(10);

/// A running in-process server.
pub struct TestServer {
    pub shared: Arc<Shared>,
    pub c2s: SocketAddr,
    pub direct_tls: SocketAddr,
    /// The `kind = "http"` listener, when configured.
    pub http: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("data/tls/ca.pem")
    }

    /// Register an account directly in the store.
    pub fn register(&self, user: &str, pass: &str) {
        let creds = xmppd::sasl::derive_credentials(pass, 4096);
        self.shared.store.create_account(user, "localhost", &creds).unwrap();
    }

    pub async fn stop(self) {
        self.shared.shutdown.cancel();
        let _ = tokio::time::timeout(TIMEOUT, self.task).await;
    }
}

/// Start a server with `extra` TOML appended to a base config.
pub async fn start_server_with(extra: &str) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let toml = format!(
        "hosts = [\"localhost\", \"example.org\"]\ndata_dir = \"{}\"\n{extra}\n\
         [[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n\
         [[listen]]\nkind = \"c2s_direct_tls\"\naddress = \"127.0.0.1:0\"\n",
        data.display()
    );
    let config = Config::parse(&toml, "test").unwrap();
    run_config(config, dir).await
}

/// Write `toml` to `dir/xmppd.toml`, load it as `xmppd serve --config`
/// does (reload reads it again) and run it. The TOML must name the
/// listeners (port 0) and a data_dir inside `dir`.
pub async fn start_server_file(dir: tempfile::TempDir, toml: &str) -> TestServer {
    let file = dir.path().join("xmppd.toml");
    std::fs::write(&file, toml).unwrap();
    let (config, _) = Config::load(Some(&file)).unwrap();
    let srv = run_config(config, dir).await;
    srv.shared.config_file.set(file).unwrap();
    srv
}

async fn run_config(config: Config, dir: tempfile::TempDir) -> TestServer {
    let store = SqliteStore::open(&config.data_dir).unwrap();
    let server = Server::bind(config, Arc::new(store)).await.unwrap();
    let addrs = server.local_addrs();
    let find = |kind| addrs.iter().find(|(k, _)| *k == kind).map(|a| a.1);
    let c2s = find(ListenKind::C2s).unwrap();
    let direct_tls = find(ListenKind::C2sDirectTls).unwrap();
    let http = find(ListenKind::Http);
    let shared = server.shared.clone();
    let task = tokio::spawn(async move {
        server.run().await.unwrap();
    });
    TestServer { shared, c2s, direct_tls, http, dir, task }
}

pub async fn start_server() -> TestServer {
    start_server_with("").await
}

/// A server with alice (password "pa") and bob ("pb") online with
/// resources "a" and "b", priority 0.
pub async fn alice_and_bob() -> (TestServer, TestClient, TestClient) {
    let srv = start_server().await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let a = TestClient::online(&srv, "alice", "pa", "a", 0).await;
    let b = TestClient::online(&srv, "bob", "pb", "b", 0).await;
    (srv, a, b)
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A raw-XML client.
pub struct TestClient {
    io: Option<Box<dyn Io>>,
    tls: Option<TlsStream<TcpStream>>,
    buf: String,
    pub jid: String,
    /// The stream's `to` (a served domain).
    pub domain: String,
}

pub fn tls_connector(ca: &PathBuf) -> tokio_rustls::TlsConnector {
    tls_connector_for(ca, rustls::DEFAULT_VERSIONS)
}

/// [`tls_connector`] limited to `versions` (e.g. TLS 1.2 only).
pub fn tls_connector_for(
    ca: &PathBuf,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

pub const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

impl TestClient {
    /// A client on a plain connection to `localhost`.
    fn over_tcp(tcp: TcpStream) -> TestClient {
        TestClient {
            io: Some(Box::new(tcp)),
            tls: None,
            buf: String::new(),
            jid: String::new(),
            domain: "localhost".into(),
        }
    }

    /// A client on an established TLS connection.
    fn over_tls(tls: TlsStream<TcpStream>, domain: &str) -> TestClient {
        TestClient { io: None, tls: Some(tls), buf: String::new(), jid: String::new(), domain: domain.into() }
    }

    pub async fn connect(addr: SocketAddr) -> TestClient {
        let tcp = TcpStream::connect(addr).await.unwrap();
        TestClient::over_tcp(tcp)
    }

    /// Connect with direct TLS (XEP-0368).
    pub async fn connect_tls(addr: SocketAddr, ca: &PathBuf) -> TestClient {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tls_connector(ca).connect(name, tcp).await.unwrap();
        TestClient::over_tls(tls, "localhost")
    }

    fn stream(&mut self) -> &mut (dyn Io + '_) {
        match (&mut self.io, &mut self.tls) {
            (_, Some(t)) => t,
            (Some(io), None) => io.as_mut(),
            _ => unreachable!(),
        }
    }

    pub async fn send(&mut self, s: &str) {
        let st = self.stream();
        st.write_all(s.as_bytes()).await.unwrap();
        st.flush().await.unwrap();
    }

    pub async fn send_bytes(&mut self, b: &[u8]) {
        let st = self.stream();
        let _ = st.write_all(b).await;
        let _ = st.flush().await;
    }

    /// Read until `pat` appears; returns everything up to and including it.
    pub async fn expect(&mut self, pat: &str) -> String {
        match self.try_expect(pat, TIMEOUT).await {
            Some(s) => s,
            None => panic!("timed out waiting for {pat:?}; got {:?}", self.buf),
        }
    }

    pub async fn try_expect(&mut self, pat: &str, t: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + t;
        loop {
            if let Some(i) = self.buf.find(pat) {
                let rest = self.buf.split_off(i + pat.len());
                return Some(std::mem::replace(&mut self.buf, rest));
            }
            let mut b = [0u8; 8192];
            let n = match tokio::time::timeout_at(deadline, self.stream().read(&mut b)).await {
                Ok(Ok(n)) => n,
                _ => return None,
            };
            if n == 0 {
                return None;
            }
            self.buf.push_str(&String::from_utf8_lossy(&b[..n]));
        }
    }

    /// The next complete stanza containing `pat`, skipping (and dropping)
    /// complete stanzas before it that do not. Needs the buffer to be at a
    /// stanza boundary (after `open()` / a complete stanza).
    pub async fn expect_stanza(&mut self, pat: &str) -> String {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let mut f = xmppd::xml::Framer::new(1 << 20, 128);
            f.feed(b"<s>");
            f.feed(self.buf.as_bytes());
            let mut pos = 0;
            while let Ok(Some(ev)) = f.next_event() {
                if let xmppd::xml::Event::Stanza(b) = ev {
                    let st = String::from_utf8_lossy(&b).into_owned();
                    let i = self.buf[pos..].find(&st).map(|i| i + pos).unwrap_or(pos);
                    pos = i + st.len();
                    if st.contains(pat) {
                        self.buf.drain(..pos);
                        return st;
                    }
                }
            }
            self.buf.drain(..pos);
            let mut b = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream().read(&mut b)).await {
                Ok(Ok(n)) if n > 0 => self.buf.push_str(&String::from_utf8_lossy(&b[..n])),
                _ => panic!("waiting for a stanza with {pat:?}; got {:?}", self.buf),
            }
        }
    }

    /// Whether the unread buffer holds `pat`.
    pub fn buffered_contains(&self, pat: &str) -> bool {
        self.buf.contains(pat)
    }

    /// Whatever arrives within `t` (for asserting that nothing arrives).
    pub async fn drain(&mut self, t: Duration) -> String {
        let _ = self.try_expect("\u{0}never", t).await;
        std::mem::take(&mut self.buf)
    }

    /// Wait for the server to close the connection; returns what it sent.
    pub async fn expect_closed(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let mut b = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream().read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return std::mem::take(&mut self.buf),
                Ok(Ok(n)) => self.buf.push_str(&String::from_utf8_lossy(&b[..n])),
                Err(_) => panic!("connection not closed; got {:?}", self.buf),
            }
        }
    }

    /// Like [`TestClient::expect_closed`], for a TLS stream that must end
    /// cleanly: with close_notify (RFC 8446 §6.1), not a bare TCP close.
    pub async fn expect_tls_closed(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let mut b = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream().read(&mut b)).await {
                Ok(Ok(0)) => return std::mem::take(&mut self.buf),
                Ok(Ok(n)) => self.buf.push_str(&String::from_utf8_lossy(&b[..n])),
                Ok(Err(e)) => panic!("{e} after {:?}", self.buf),
                Err(_) => panic!("connection not closed; got {:?}", self.buf),
            }
        }
    }

    /// Open a stream and read the features.
    pub async fn open(&mut self) -> String {
        let header = HEADER.replace("to='localhost'", &format!("to='{}'", self.domain));
        self.send(&header).await;
        self.expect("</stream:features>").await
    }

    /// Connect from a given loopback source address (e.g. 127.0.0.2), to
    /// test per-address limits and bans without touching 127.0.0.1.
    pub async fn connect_from(addr: SocketAddr, src: &str) -> TestClient {
        let tcp = tcp_from(addr, src).await;
        TestClient::over_tcp(tcp)
    }

    /// Connect and negotiate STARTTLS; returns the client and the features after TLS.
    pub async fn connect_starttls(addr: SocketAddr, ca: &PathBuf) -> (TestClient, String) {
        TestClient::connect_starttls_to(addr, ca, "localhost").await
    }

    /// [`TestClient::connect_starttls`] to another served domain.
    pub async fn connect_starttls_to(addr: SocketAddr, ca: &PathBuf, domain: &str) -> (TestClient, String) {
        TestClient::starttls_over(TcpStream::connect(addr).await.unwrap(), ca, domain).await
    }

    /// [`TestClient::connect_starttls`] from a given loopback source address.
    pub async fn connect_starttls_from(addr: SocketAddr, ca: &PathBuf, src: &str) -> (TestClient, String) {
        TestClient::starttls_over(tcp_from(addr, src).await, ca, "localhost").await
    }

    /// [`TestClient::connect_starttls`] over TLS 1.2.
    pub async fn connect_starttls_tls12(addr: SocketAddr, ca: &PathBuf) -> (TestClient, String) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        TestClient::starttls_with(tcp, tls_connector_for(ca, &[&rustls::version::TLS12]), "localhost").await
    }

    async fn starttls_over(tcp: TcpStream, ca: &PathBuf, domain: &str) -> (TestClient, String) {
        TestClient::starttls_with(tcp, tls_connector(ca), domain).await
    }

    async fn starttls_with(
        mut tcp: TcpStream,
        connector: tokio_rustls::TlsConnector,
        domain: &str,
    ) -> (TestClient, String) {
        tcp.write_all(HEADER.replace("to='localhost'", &format!("to='{domain}'")).as_bytes()).await.unwrap();
        let seen = read_until(&mut tcp, "</stream:features>").await;
        assert!(seen.contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"), "{seen}");
        tcp.write_all(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").await.unwrap();
        read_until(&mut tcp, "<proceed").await;
        let name = rustls_pki_types::ServerName::try_from(domain.to_string()).unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        let mut c = TestClient::over_tls(tls, domain);
        let f = c.open().await;
        (c, f)
    }

    /// tls-exporter channel binding of this client's TLS connection.
    pub fn exporter(&self) -> Option<Vec<u8>> {
        let t = self.tls.as_ref()?;
        let mut out = vec![0u8; 32];
        t.get_ref().1.export_keying_material(&mut out, b"EXPORTER-Channel-Binding", None).ok()?;
        Some(out)
    }

    /// tls-server-end-point channel binding (RFC 5929 §4.1) of this client's
    /// TLS connection, for the SHA-256-signed certificates the tests use.
    pub fn server_end_point(&self) -> Option<Vec<u8>> {
        use sha2::Digest;
        let cert = self.tls.as_ref()?.get_ref().1.peer_certificates()?.first()?.clone();
        Some(sha2::Sha256::digest(cert.as_ref()).to_vec())
    }

    /// SCRAM with the crate's client; returns the server's answer element text.
    pub async fn scram(&mut self, mech: &str, user: &str, pass: &str) -> Result<(), String> {
        let cb = if mech.ends_with("-PLUS") { self.exporter().map(|d| ("tls-exporter", d)) } else { None };
        self.scram_bound(mech, user, pass, cb).await
    }

    /// SCRAM with the given channel binding (type name, data) for -PLUS.
    pub async fn scram_bound(
        &mut self,
        mech: &str,
        user: &str,
        pass: &str,
        cb: Option<(&'static str, Vec<u8>)>,
    ) -> Result<(), String> {
        use xmppd::sasl::client::ScramClient;
        use xmppd::sasl::Hash;
        let hash = if mech.starts_with("SCRAM-SHA-256") { Hash::Sha256 } else { Hash::Sha1 };
        let mut sc = match cb {
            Some((name, data)) => ScramClient::new(hash, user, pass, Some(data)).with_cb_type(name),
            None => ScramClient::new(hash, user, pass, None),
        };
        let first = B64.encode(sc.first_message());
        self.send(&format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mech}'>{first}</auth>")).await;
        let got = self.expect("</challenge>").await;
        let ch = between(&got, ">", "</challenge>");
        let fin = sc.handle_challenge(&B64.decode(ch).unwrap())?;
        self.send(&format!("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>", B64.encode(fin))).await;
        let got = self.expect_any(&["</success>", "</failure>"]).await;
        if got.contains("<failure") {
            return Err(got);
        }
        let data = between(&got, ">", "</success>");
        sc.verify_success(&B64.decode(data).unwrap())
    }

    pub async fn plain(&mut self, user: &str, pass: &str) -> String {
        let msg = B64.encode(format!("\0{user}\0{pass}"));
        self.send(&format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{msg}</auth>")).await;
        self.expect_any(&["</success>", "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", "</failure>"]).await
    }

    /// Read until any of `pats`.
    pub async fn expect_any(&mut self, pats: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if let Some((i, p)) = pats.iter().filter_map(|p| self.buf.find(p).map(|i| (i, p))).min() {
                let rest = self.buf.split_off(i + p.len());
                return std::mem::replace(&mut self.buf, rest);
            }
            let mut b = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream().read(&mut b)).await {
                Ok(Ok(n)) if n > 0 => self.buf.push_str(&String::from_utf8_lossy(&b[..n])),
                _ => panic!("waiting for {pats:?}; got {:?}", self.buf),
            }
        }
    }

    /// Bind a resource (None: server-generated); returns the full JID.
    pub async fn bind(&mut self, resource: Option<&str>) -> String {
        let r = resource.map(|r| format!("<resource>{r}</resource>")).unwrap_or_default();
        self.send(&format!("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>{r}</bind></iq>"))
            .await;
        let got = self.expect("</iq>").await;
        assert!(got.contains("type='result'"), "{got}");
        self.jid = between(&got, "<jid>", "</jid>").to_string();
        self.jid.clone()
    }

    /// STARTTLS + SCRAM-SHA-256 + restart + bind + initial presence.
    pub async fn login(srv: &TestServer, user: &str, pass: &str, resource: &str) -> TestClient {
        let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
        c.scram("SCRAM-SHA-256", user, pass).await.unwrap();
        let f = c.open().await;
        assert!(f.contains("urn:ietf:params:xml:ns:xmpp-bind"), "{f}");
        c.bind(Some(resource)).await;
        c
    }

    /// login + available presence with a priority.
    pub async fn online(srv: &TestServer, user: &str, pass: &str, resource: &str, prio: i8) -> TestClient {
        let mut c = TestClient::login(srv, user, pass, resource).await;
        c.send(&format!("<presence><priority>{prio}</priority></presence>")).await;
        // A round trip so the presence is processed before the test goes on.
        c.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>").await;
        c.expect("id='sync'").await;
        c.expect("/>").await;
        c
    }
}

/// Read plain TCP until `pat` has arrived (before TLS); returns what was read.
async fn read_until(tcp: &mut TcpStream, pat: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(pat) {
        let mut b = [0u8; 4096];
        let n = tcp.read(&mut b).await.unwrap();
        assert!(n > 0, "closed before {pat:?}: {seen}");
        seen.push_str(&String::from_utf8_lossy(&b[..n]));
    }
    seen
}

/// A TCP connection to `addr` from source address `src` (any port).
pub async fn tcp_from(addr: SocketAddr, src: &str) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    sock.connect(addr).await.unwrap()
}

/// Resident memory of this process (the in-process server and the test), KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Two new accounts log in and exchange a message: the server still serves.
pub async fn fresh_pair_chats(srv: &TestServer, tag: &str) {
    let (ua, ub) = (format!("fa{tag}"), format!("fb{tag}"));
    srv.register(&ua, "pw-a");
    srv.register(&ub, "pw-b");
    let mut a = TestClient::online(srv, &ua, "pw-a", "r", 0).await;
    let mut b = TestClient::online(srv, &ub, "pw-b", "r", 0).await;
    a.send(&format!("<message to='{ub}@localhost/r' type='chat' id='fp'><body>still here</body></message>")).await;
    let got = b.expect_stanza("still here").await;
    assert!(got.contains(&format!("from='{ua}@localhost/r'")), "{got}");
}

pub fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let e = s.rfind(end).unwrap_or(s.len());
    let b = s[..e].rfind(start).map(|i| i + start.len()).unwrap_or(0);
    &s[b..e]
}
