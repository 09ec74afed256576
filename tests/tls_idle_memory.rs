//! An idle TLS connection holds no read buffer (vendor/rustls/XMPPD-PATCH.md).
//!
//! A counting global allocator measures what one server-side
//! `rustls::ServerConnection` still owns once the handshake is done, a
//! stanza has gone through and the socket has nothing more to read: dropping
//! it must give back less than the 4 KB read buffer released rustls keeps.
//! This file holds one test so that no other thread allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ConnectionCommon, ServerConnection};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// A socket with nothing to read.
struct Idle;
impl Read for Idle {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

fn transfer<A, B>(from: &mut ConnectionCommon<A>, to: &mut ConnectionCommon<B>) {
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

#[test]
fn idle_server_connection_keeps_no_read_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "hosts = ['localhost']\ndata_dir = {:?}\n[[listen]]\nkind = 'c2s'\naddress = '127.0.0.1:5222'\n",
        dir.path().to_str().unwrap()
    );
    let cfg = xmppd::config::Config::parse(&text, "test").unwrap();
    let sc = xmppd::tls::server_config(&cfg).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(xmppd::tls::generated_ca_path(&cfg)).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cc = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut c = ClientConnection::new(Arc::new(cc), ServerName::try_from("localhost").unwrap()).unwrap();

    let mut s = ServerConnection::new(sc).unwrap();
    for _ in 0..10 {
        transfer(&mut c, &mut s);
        transfer(&mut s, &mut c);
    }
    assert!(!c.is_handshaking() && !s.is_handshaking(), "handshake did not complete");
    c.writer().write_all(b"<presence/>").unwrap();
    transfer(&mut c, &mut s);
    let mut got = [0u8; 64];
    let n = s.reader().read(&mut got).unwrap();
    assert_eq!(&got[..n], b"<presence/>");
    // The socket runs dry, as it does for every idle connection.
    assert_eq!(s.read_tls(&mut Idle).unwrap_err().kind(), io::ErrorKind::WouldBlock);

    let held = LIVE.load(Ordering::Relaxed);
    drop(s);
    let owned = held - LIVE.load(Ordering::Relaxed);
    eprintln!("an idle ServerConnection owns {owned} bytes");
    assert!(owned > 0, "the counter saw the connection's memory");
    assert!(
        owned < 4096,
        "an idle ServerConnection owns {owned} bytes: the 4 KB read buffer is kept (is vendor/rustls patched?)"
    );
}
