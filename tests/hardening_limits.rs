//! Resource limits and abuse control (issue 5 items 3, 4, 5): connection
//! limits, the authentication deadline, sessions per account, SASL abuse
//! (authzid, malformed data, delays and bans), shapers. After each, a fresh
//! pair of users still chats.

mod common;

use base64::Engine;
use common::{fresh_pair_chats, start_server, start_server_with, TestClient, B64, HEADER};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

fn plain_auth(user: &str, pass: &str) -> String {
    format!("<auth xmlns='{SASL}' mechanism='PLAIN'>{}</auth>", B64.encode(format!("\0{user}\0{pass}")))
}

/// RFC 6120 §4.9.3.17: over `max_connections_per_ip` a connection gets
/// <resource-constraint/>; other addresses are not affected.
#[tokio::test]
async fn per_address_connection_limit() {
    let srv = start_server_with("[limits]\nmax_connections_per_ip = 3\nexempt_networks = []\n").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TestClient::connect_from(srv.c2s, "127.0.0.2").await;
        c.open().await;
        held.push(c);
    }
    let mut over = TestClient::connect_from(srv.c2s, "127.0.0.2").await;
    let got = over.expect_closed().await;
    assert!(got.contains("<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"), "{got}");
    assert!(got.contains("too many connections from your address"), "{got}");
    assert_eq!(srv.shared.metrics.connections_refused_total.load(Ordering::Relaxed), 1);
    fresh_pair_chats(&srv, "c").await; // from 127.0.0.1
    drop(held);
    srv.stop().await;
}

/// `limits.exempt_networks` (loopback by default, where a local TLS
/// terminator or gateway puts every client) skips the per-address limits:
/// no connection limit and no ban there, while the account's own failures
/// still count. Outside those networks the limits apply as before.
#[tokio::test]
async fn exempt_networks_skip_the_per_address_limits() {
    let limits = "[limits]\nmax_connections_per_ip = 2\nmax_auth_failures = 10\n";
    let auth = "[auth]\nmax_failures_per_ip = 2\nfailure_delay_ms = 0\n";
    let srv = start_server_with(&format!("{limits}{auth}")).await;
    srv.register("carol", "pc");
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = TestClient::connect_from(srv.c2s, "127.0.0.2").await;
        c.open().await;
        held.push(c);
    }
    let (mut x, _) = TestClient::connect_starttls_from(srv.c2s, &srv.ca_path(), "127.0.0.2").await;
    for _ in 0..3 {
        x.send(&plain_auth("carol", "wrong")).await;
        assert!(x.expect("</failure>").await.contains("<not-authorized/>"));
    }
    assert_eq!(srv.shared.metrics.bans_total.load(Ordering::Relaxed), 0);
    x.scram("SCRAM-SHA-256", "carol", "pc").await.unwrap();
    assert_eq!(srv.shared.metrics.connections_refused_total.load(Ordering::Relaxed), 0);
    drop((held, x));
    srv.stop().await;

    // The same limits with another exempt network: 127.0.0.2 is limited.
    let srv = start_server_with(&format!("{limits}exempt_networks = [\"10.0.0.0/8\"]\n{auth}")).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TestClient::connect_from(srv.c2s, "127.0.0.2").await;
        c.open().await;
        held.push(c);
    }
    let got = TestClient::connect_from(srv.c2s, "127.0.0.2").await.expect_closed().await;
    assert!(got.contains("too many connections from your address"), "{got}");
    drop(held);
    srv.stop().await;
}

/// RFC 6120 §4.9.3.17: over `max_connections` in total, from any address,
/// a connection gets <resource-constraint/>; one freed slot is usable again.
#[tokio::test]
async fn total_connection_limit() {
    let srv = start_server_with("[limits]\nmax_connections = 3\n").await;
    let mut held = Vec::new();
    for src in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        let mut c = TestClient::connect_from(srv.c2s, src).await;
        c.open().await;
        held.push(c);
    }
    let mut over = TestClient::connect_from(srv.c2s, "127.0.0.5").await;
    let got = over.expect_closed().await;
    assert!(got.contains("<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"), "{got}");
    assert!(got.contains("too many connections"), "{got}");
    assert_eq!(srv.shared.metrics.connections_refused_total.load(Ordering::Relaxed), 1);
    // Two slots freed: a fresh pair logs in and chats.
    drop(held.split_off(1));
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.shared.connection_count() > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fresh_pair_chats(&srv, "t").await;
    drop(held);
    srv.stop().await;
}

/// On the direct-TLS port (XEP-0368) a connection over the limit is closed
/// without a byte and without a TLS handshake: a plaintext stream error
/// would be unreadable to the TLS client (see `server::accept_loop`).
#[tokio::test]
async fn direct_tls_over_the_limit_is_closed() {
    let srv = start_server_with("[limits]\nmax_connections_per_ip = 2\nexempt_networks = []\n").await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TestClient::connect_from(srv.c2s, "127.0.0.2").await;
        c.open().await;
        held.push(c);
    }
    let mut raw = common::tcp_from(srv.direct_tls, "127.0.0.2").await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut got));
    assert!(read.await.is_ok(), "not closed");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let tcp = common::tcp_from(srv.direct_tls, "127.0.0.2").await;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    assert!(common::tls_connector(&srv.ca_path()).connect(name, tcp).await.is_err(), "handshake over the limit");
    assert_eq!(srv.shared.metrics.connections_refused_total.load(Ordering::Relaxed), 2);
    // Other addresses still get in over direct TLS.
    let mut ok = TestClient::connect_tls(srv.direct_tls, &srv.ca_path()).await;
    assert!(ok.open().await.contains("<stream:features"));
    drop(held);
    srv.stop().await;
}

/// Slowloris: a client trickling a byte at a time is still cut at the
/// authentication deadline with <connection-timeout/> (RFC 6120 §4.9.3.4).
#[tokio::test]
async fn trickling_client_is_cut_at_the_deadline() {
    let srv = start_server_with("[limits]\nauth_timeout_secs = 2\n").await;
    let tcp = tokio::net::TcpStream::connect(srv.c2s).await.unwrap();
    let (mut r, mut w) = tcp.into_split();
    let start = Instant::now();
    let trickle = tokio::spawn(async move {
        // The header, then whitespace keepalives, one byte every 100 ms.
        for b in HEADER.bytes().chain(std::iter::repeat(b' ')) {
            if w.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), tokio::io::AsyncReadExt::read_to_end(&mut r, &mut got)).await;
    trickle.abort();
    let got = String::from_utf8_lossy(&got);
    assert!(got.contains("<connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"), "{got}");
    assert!(start.elapsed() < Duration::from_secs(10), "cut at the deadline: {:?}", start.elapsed());
    assert_eq!(srv.shared.metrics.auth_timeouts_total.load(Ordering::Relaxed), 1);
    fresh_pair_chats(&srv, "t").await;
    srv.stop().await;
}

/// `max_sessions_per_account`: by default the oldest session is replaced
/// (ejabberd's max_user_sessions), with `refuse` the bind gets
/// <resource-constraint/> (RFC 6120 §7.6.2.1).
#[tokio::test]
async fn sessions_per_account() {
    let srv = start_server_with("[limits]\nmax_sessions_per_account = 2\n").await;
    srv.register("carol", "pc");
    let mut r1 = TestClient::login(&srv, "carol", "pc", "r1").await;
    let _r2 = TestClient::login(&srv, "carol", "pc", "r2").await;
    let _r3 = TestClient::login(&srv, "carol", "pc", "r3").await;
    let got = r1.expect_closed().await;
    assert!(got.contains("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"), "{got}");
    srv.stop().await;

    let srv = start_server_with("[limits]\nmax_sessions_per_account = 2\nsession_limit = \"refuse\"\n").await;
    srv.register("carol", "pc");
    let _r1 = TestClient::login(&srv, "carol", "pc", "r1").await;
    let _r2 = TestClient::login(&srv, "carol", "pc", "r2").await;
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    c.scram("SCRAM-SHA-256", "carol", "pc").await.unwrap();
    c.open().await;
    c.send("<iq type='set' id='b3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r3</resource></bind></iq>")
        .await;
    let got = c.expect("</iq>").await;
    assert!(got.contains("type='error'") && got.contains("<resource-constraint "), "{got}");
    // Taking over one of its own resources is still allowed (§7.7.2.2).
    c.bind(Some("r2")).await;
    assert_eq!(srv.shared.metrics.session_limit_hits_total.load(Ordering::Relaxed), 1);
    fresh_pair_chats(&srv, "s").await;
    srv.stop().await;
}

/// RFC 6120 §6.4.6: a SCRAM `a=` naming someone else is <invalid-authzid/>.
#[tokio::test]
async fn scram_authzid_for_another_user_is_refused() {
    use xmppd::sasl::client::ScramClient;
    let srv = start_server().await;
    srv.register("bob", "pb");
    for (authzid, ok) in [("admin@localhost", false), ("bob@example.org", false), ("bob@localhost", true)] {
        let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
        let mut sc = ScramClient::new(xmppd::sasl::Hash::Sha256, "bob", "pb", None).with_authzid(authzid);
        let first = B64.encode(sc.first_message());
        c.send(&format!("<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{first}</auth>")).await;
        let got = c.expect("</challenge>").await;
        let ch = B64.decode(common::between(&got, ">", "</challenge>")).unwrap();
        let fin = sc.handle_challenge(&ch).unwrap();
        c.send(&format!("<response xmlns='{SASL}'>{}</response>", B64.encode(fin))).await;
        let got = c.expect_any(&["</success>", "</failure>"]).await;
        assert_eq!(got.contains("<success"), ok, "{authzid}: {got}");
        if !ok {
            assert!(got.contains("<invalid-authzid/>"), "{authzid}: {got}");
        }
    }
    srv.stop().await;
}

/// Malformed SASL data gets a <failure/> condition, never a crash.
#[tokio::test]
async fn malformed_sasl_gets_failures() {
    let srv =
        start_server_with("[limits]\nmax_auth_failures = 100\n[auth]\nfailure_delay_ms = 0\nmax_failures_per_ip = 0\n")
            .await;
    srv.register("bob", "pb");
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    let scram = |m: &[u8]| format!("<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{}</auth>", B64.encode(m));
    let cases: Vec<(String, &str)> = vec![
        (format!("<auth xmlns='{SASL}' mechanism='PLAIN'>!!!notbase64</auth>"), "incorrect-encoding"),
        (format!("<auth xmlns='{SASL}' mechanism='PLAIN'>{}</auth>", B64.encode("no-nuls")), "malformed-request"),
        (format!("<auth xmlns='{SASL}' mechanism='PLAIN'>{}</auth>", B64.encode(b"\0b\xffob\0x")), "malformed-request"),
        (scram(b"garbage"), "malformed-request"),
        (scram(b"n,,n=bob"), "malformed-request"),
        (scram(b"n,,r=abc"), "malformed-request"),
        (scram(b"p=tls-unique,,n=bob,r=abc"), "malformed-request"),
        (scram(b"n,a=,n=bob,r=abc"), "malformed-request"),
        (scram(b"n,,n=b=ZZob,r=abc"), "malformed-request"),
        (scram(b"n,,m=ext,n=bob,r=abc"), "malformed-request"),
        (scram(b"n,,n=bob,r=a,bc"), "malformed-request"),
        (scram(b"\xff\xfe"), "malformed-request"),
        (scram(&[b'n'; 5000]), "malformed-request"),
    ];
    for (auth, condition) in &cases {
        c.send(auth).await;
        let got = c.expect("</failure>").await;
        assert!(got.contains(&format!("<{condition}/>")), "{auth}: {got}");
    }
    // A good first message, then a garbage final one.
    for fin in [&b"c=biws,r=x"[..], b"c=biws,r=x,p=!!", b"nonsense", b""] {
        c.send(&scram(b"n,,n=bob,r=abc")).await;
        c.expect("</challenge>").await;
        c.send(&format!(
            "<response xmlns='{SASL}'>{}</response>",
            if fin.is_empty() { "=".into() } else { B64.encode(fin) }
        ))
        .await;
        let got = c.expect("</failure>").await;
        assert!(got.contains("<malformed-request/>") || got.contains("<not-authorized/>"), "{got}");
    }
    // The connection still works.
    c.scram("SCRAM-SHA-256", "bob", "pb").await.unwrap();
    fresh_pair_chats(&srv, "f").await;
    srv.stop().await;
}

/// mod_fail2ban-like: failures delay the answer more and more (per
/// address and per account), and `max_failures_per_ip` bans the address:
/// <policy-violation/> with a text, now and on new connections; other
/// addresses are served.
#[tokio::test]
async fn failures_are_delayed_then_the_address_is_banned() {
    let srv = start_server_with(
        "[limits]\nmax_auth_failures = 10\nexempt_networks = []\n[auth]\nmax_failures_per_ip = 4\nban_secs = 60\nfailure_delay_ms = 150\n",
    )
    .await;
    srv.register("bob", "pb");
    let ca = srv.ca_path();
    let (mut x, _) = TestClient::connect_starttls_from(srv.c2s, &ca, "127.0.0.2").await;
    for _ in 0..2 {
        x.send(&plain_auth("bob", "wrong")).await;
        assert!(x.expect("</failure>").await.contains("<not-authorized/>"));
    }
    // The account's third failure, from another address: delayed 300 ms.
    let (mut y, _) = TestClient::connect_starttls_from(srv.c2s, &ca, "127.0.0.3").await;
    let t = Instant::now();
    y.send(&plain_auth("bob", "wrong")).await;
    assert!(y.expect("</failure>").await.contains("<not-authorized/>"));
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());
    // 127.0.0.2's third and fourth failures: the fourth bans it.
    x.send(&plain_auth("bob", "wrong")).await;
    x.expect("</failure>").await;
    x.send(&plain_auth("bob", "wrong")).await;
    let got = x.expect_closed().await;
    assert!(got.contains("<not-authorized/>") && got.contains("<policy-violation "), "{got}");
    assert!(got.contains("try again in "), "{got}");
    let mut again = TestClient::connect_from(srv.c2s, "127.0.0.2").await;
    again.send(HEADER).await;
    let got = again.expect_closed().await;
    assert!(got.contains("<policy-violation ") && got.contains("too many authentication failures"), "{got}");
    let m = &srv.shared.metrics;
    assert_eq!(m.bans_total.load(Ordering::Relaxed), 1);
    assert_eq!(m.auth_failures_total.load(Ordering::Relaxed), 5);
    assert!(m.banned_streams_total.load(Ordering::Relaxed) >= 2);
    // 127.0.0.3 is not banned, and bob's right password works there.
    y.scram("SCRAM-SHA-256", "bob", "pb").await.unwrap();
    fresh_pair_chats(&srv, "b").await;
    srv.stop().await;
}

/// A server shutdown does not wait for a pending SASL failure delay: the
/// client gets <system-shutdown/> (RFC 6120 §4.9.3.22) instead of the
/// delayed <failure/>, well before the 30 s delay would end.
#[tokio::test]
async fn shutdown_cuts_a_failure_delay_short() {
    let srv = start_server_with("[auth]\nfailure_delay_ms = 30000\nmax_failures_per_ip = 0\n").await;
    srv.register("bob", "pb");
    let (mut x, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    // The first failure is answered at once, the second after 30 s.
    x.send(&plain_auth("bob", "wrong")).await;
    x.expect("</failure>").await;
    x.send(&plain_auth("bob", "wrong")).await;
    assert!(x.try_expect("</failure>", Duration::from_millis(300)).await.is_none(), "second failure not delayed");
    let t = Instant::now();
    srv.stop().await;
    let got = x.expect_closed().await;
    assert!(got.contains("<system-shutdown ") && !got.contains("<failure"), "{got}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

/// ejabberd-style shapers: over the byte or stanza rate the server stops
/// reading (TCP backpressure) instead of disconnecting; everything still
/// arrives.
#[tokio::test]
async fn shapers_slow_down_without_disconnecting() {
    let srv =
        start_server_with("[limits]\nmax_stanza_size = 2048\nshaper_bytes_per_sec = 4096\nstanzas_per_sec = 10\n")
            .await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let mut a = TestClient::online(&srv, "alice", "pa", "a", 0).await;
    let mut b = TestClient::online(&srv, "bob", "pb", "b", 0).await;
    // Bytes: 20 × ~1 KiB against a bucket of 6 KiB refilled at 4 KiB/s.
    let body = "w".repeat(1000);
    let t = Instant::now();
    for i in 0..20 {
        a.send(&format!("<message to='bob@localhost/b' type='chat' id='sh{i}'><body>{body}</body></message>")).await;
    }
    b.expect_stanza("id='sh19'").await;
    let bytes_time = t.elapsed();
    assert!(bytes_time >= Duration::from_secs(2), "{bytes_time:?}");
    // Stanzas: 40 pings against a bucket of 20 refilled at 10/s.
    let t = Instant::now();
    for i in 0..40 {
        a.send(&format!("<iq type='get' id='pg{i}'><ping xmlns='urn:xmpp:ping'/></iq>")).await;
    }
    a.expect("id='pg39'").await;
    assert!(t.elapsed() >= Duration::from_millis(1500), "{:?}", t.elapsed());
    assert!(srv.shared.metrics.shaper_pauses_total.load(Ordering::Relaxed) >= 2);
    println!("shaped: 20 KiB in {bytes_time:?}, 40 stanzas in {:?}", t.elapsed());
    fresh_pair_chats(&srv, "h").await;
    srv.stop().await;
}
