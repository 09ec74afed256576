//! Fuzz harness for the c2s state machine: a real in-process server
//! (`xmppd::server::Server`, SQLite store in a temporary directory) on
//! loopback, fed arbitrary bytes over one TCP connection per input.
//!
//! Input byte 0 picks a prefix the harness plays first, so the fuzzer also
//! reaches the later states (RFC 6120 §4.3 stream negotiation order):
//! - 0: nothing, the raw bytes are the whole client stream;
//! - 1: stream header, SASL PLAIN as alice (waiting for `<success/>`, RFC
//!   6120 §6.4.6), restarted stream; the input then negotiates binding;
//! - 2: as 1, plus a bound resource (RFC 6120 §7); the input is stanzas.
//!
//! Oracles: no panic in the server task or the harness; after the client's
//! half-close the server closes the connection within a time limit (no
//! hang); the server still accepts and serves a new connection after each
//! input (checked every 256 inputs and on the regression inputs).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xmppd::config::{Config, ListenKind};
use xmppd::server::Server;
use xmppd::storage::sqlite::SqliteStore;
use xmppd::storage::AccountStore;

/// How long the server may take to close after the client's half-close.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
/// `<auth/>` with base64 of "\0alice\0pa" (RFC 4616 §2).
const AUTH: &[u8] = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHBh</auth>";
const BIND: &[u8] = b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
    <resource>fuzz</resource></bind></iq>";

struct Env {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // tmpfs when there is one: synchronous=FULL fsyncs cost nothing there.
        let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
        // Every input comes from 127.0.0.1: the SASL abuse controls (a ban
        // after 20 failures, growing delays) would soon lock the harness's
        // own logins out (fuzz/regressions/c2s/crash-d4320619 after about
        // 7,600 inputs); tests/hardening_limits.rs covers them instead.
        let toml = format!(
            "hosts = [\"localhost\"]\ndata_dir = \"{}\"\n\
             [auth]\nallow_plaintext = true\nmax_failures_per_ip = 0\nfailure_delay_ms = 0\n\
             [[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n",
            dir.path().join("data").display()
        );
        let config = Config::parse(&toml, "fuzz").unwrap();
        let store = SqliteStore::open(&config.data_dir).unwrap();
        for (user, pass) in [("alice", "pa"), ("bob", "pb")] {
            // Few PBKDF2 rounds: the fuzzer logs in thousands of times.
            let creds = xmppd::sasl::derive_credentials_with_salt(pass, b"salt-one", b"salt-two", 16);
            store.create_account(user, "localhost", &creds).unwrap();
        }
        let addr = rt.block_on(async {
            let server = Server::bind(config, Arc::new(store)).await.unwrap();
            let addr = server.local_addrs().iter().find(|(k, _)| *k == ListenKind::C2s).unwrap().1;
            tokio::spawn(async move { server.run().await.unwrap() });
            addr
        });
        Env { rt, addr, _dir: dir }
    })
}

/// Read until `pat` appears or the server closes; false if it closed first.
async fn read_until(s: &mut TcpStream, seen: &mut Vec<u8>, pat: &[u8]) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        if seen.windows(pat.len()).any(|w| w == pat) {
            return true;
        }
        match tokio::time::timeout(CLOSE_LIMIT, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return false,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!("server stalled waiting for {:?}", String::from_utf8_lossy(pat)),
        }
    }
}

/// Play the prefix for `mode`; false if the server refused it.
async fn prefix(s: &mut TcpStream, mode: u8) -> bool {
    if mode == 0 {
        return true;
    }
    let mut seen = Vec::new();
    let mut first = HEADER.to_vec();
    first.extend_from_slice(AUTH);
    if s.write_all(&first).await.is_err() || !read_until(s, &mut seen, b"<success").await {
        return false;
    }
    if s.write_all(HEADER).await.is_err() || !read_until(s, &mut seen, b"</stream:features>").await {
        return false;
    }
    seen.clear();
    if mode == 2 && (s.write_all(BIND).await.is_err() || !read_until(s, &mut seen, b"id='bind'").await) {
        return false;
    }
    true
}

/// Send `body` after the prefix, half-close, and wait for the server to close.
async fn session(addr: SocketAddr, mode: u8, body: &[u8]) {
    let mut s = TcpStream::connect(addr).await.expect("server accepts connections");
    if !prefix(&mut s, mode).await {
        panic!("the login prefix (mode {mode}) failed on a fresh connection");
    }
    // The server may close before reading everything: write errors are fine.
    let _ = s.write_all(body).await;
    let _ = s.shutdown().await;
    let mut buf = vec![0u8; 16 * 1024];
    let closed = tokio::time::timeout(CLOSE_LIMIT, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "server did not close the stream after the client's half-close");
}

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let Some((&mode, body)) = data.split_first() else { return };
    let e = env();
    e.rt.block_on(session(e.addr, mode % 3, body));
    if RUNS.fetch_add(1, Ordering::Relaxed) % 256 == 0 {
        // The server keeps serving others: a full login still works.
        e.rt.block_on(session(e.addr, 2, b"<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>"));
    }
}
