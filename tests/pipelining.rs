//! A client that pipelines its login (XEP-0305 §4: requests sent before
//! the answers they do not depend on), and the end of a TLS stream: the
//! closing tag, then TLS close_notify (RFC 6120 §4.4, RFC 8446 §6.1).

mod common;

use base64::Engine as _;
use common::{tls_connector, TestClient, B64, HEADER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xmppd::sasl::client::ScramClient;
use xmppd::sasl::Hash;

const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

/// Read from `r` until `pat` has arrived; everything read so far.
async fn read_until<R: AsyncReadExt + Unpin>(r: &mut R, seen: &mut String, pat: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains(pat) {
        let mut b = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline, r.read(&mut b)).await.expect("timed out").unwrap();
        assert!(n > 0, "closed; got {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&b[..n]));
    }
}

#[tokio::test]
async fn a_pipelined_login_gets_every_answer_in_order() {
    let srv = common::start_server().await;
    srv.register("alice", "secret1");
    let mut tcp = TcpStream::connect(srv.c2s).await.unwrap();
    // RFC 6120 §5.4.2.1: <starttls/> right behind the header, in one write.
    tcp.write_all(format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").as_bytes()).await.unwrap();
    let mut seen = String::new();
    read_until(&mut tcp, &mut seen, "<proceed").await;
    assert!(seen.find("</stream:features>").unwrap() < seen.find("<proceed").unwrap(), "{seen}");

    // The restarted header and <auth/> leave with the TLS Finished.
    let mut sc = ScramClient::new(Hash::Sha256, "alice", "secret1", None);
    let first = B64.encode(sc.first_message());
    let early = format!("{HEADER}<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{first}</auth>");
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tls_connector(&srv.ca_path())
        .connect_with(name, tcp, |c| std::io::Write::write_all(&mut c.writer(), early.as_bytes()).unwrap())
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut tls, &mut seen, "</challenge>").await;
    assert!(seen.find("</stream:features>").unwrap() < seen.find("<challenge").unwrap(), "{seen}");
    let ch = seen.split("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>").nth(1).unwrap();
    let fin = sc.handle_challenge(&B64.decode(ch.trim_end_matches("</challenge>")).unwrap()).unwrap();
    tls.write_all(format!("<response xmlns='{NS_SASL}'>{}</response>", B64.encode(fin)).as_bytes()).await.unwrap();
    let mut seen = String::new();
    read_until(&mut tls, &mut seen, "</success>").await;

    // Restart, bind, roster get and initial presence in one write: the
    // answers come in request order, then the presence echo (RFC 6121 §4.2.2).
    let rest =
        "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>\
                <iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq><presence/>";
    tls.write_all(format!("{HEADER}{rest}").as_bytes()).await.unwrap();
    let mut seen = String::new();
    read_until(&mut tls, &mut seen, "<presence").await;
    read_until(&mut tls, &mut seen, "/>").await;
    let at = |p: &str| seen.find(p).unwrap_or_else(|| panic!("{p} missing from {seen}"));
    assert!(at("</stream:features>") < at("id='b'"), "{seen}");
    assert!(at("id='b'") < at("id='r'"), "{seen}");
    assert!(at("id='r'") < at("<presence"), "{seen}");
    assert!(seen.contains("from='alice@localhost/r'"), "{seen}");
    srv.stop().await;
}

#[tokio::test]
async fn closing_tls_streams_end_with_the_tag_then_close_notify() {
    let srv = common::start_server().await;
    // The client closes: the server answers with its closing tag.
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    c.send("</stream:stream>").await;
    let got = c.expect_tls_closed().await;
    assert!(got.ends_with("</stream:stream>"), "{got}");

    // A stream error (RFC 6120 §4.9.1.1): the error, the tag, close_notify.
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    c.send("<message><body></message></body>").await;
    let got = c.expect_tls_closed().await;
    assert!(got.contains("<not-well-formed"), "{got}");
    assert!(got.ends_with("</stream:stream>"), "{got}");

    // Before TLS, as before: plain TCP close after the tag.
    let mut c = TestClient::connect(srv.c2s).await;
    c.open().await;
    c.send("</stream:stream>").await;
    assert!(c.expect_closed().await.ends_with("</stream:stream>"));
    srv.stop().await;
}

/// RFC 8446 §4.6.1: the session ticket, held back to leave with the first
/// reply (c2s/ticket_hold.rs), reaches the client, and the next connection
/// resumes with it; TLS 1.2, whose last flight is never held, still
/// completes.
#[tokio::test]
async fn the_held_session_ticket_arrives_and_resumes() {
    let srv = common::start_server().await;
    let tls13 = tls_connector(&srv.ca_path());
    let tls12 = common::tls_connector_for(&srv.ca_path(), &[&rustls::version::TLS12]);
    for (round, connector) in [(0, &tls13), (1, &tls13), (2, &tls12)] {
        let mut tcp = TcpStream::connect(srv.c2s).await.unwrap();
        tcp.write_all(format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").as_bytes()).await.unwrap();
        read_until(&mut tcp, &mut String::new(), "<proceed").await;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let kind = tls.get_ref().1.handshake_kind();
        match round {
            1 => assert_eq!(kind, Some(rustls::HandshakeKind::Resumed), "round {round}"),
            _ => assert_eq!(kind, Some(rustls::HandshakeKind::Full), "round {round}"),
        }
        tls.write_all(HEADER.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        read_until(&mut tls, &mut String::new(), "</stream:features>").await;
        tls.write_all(b"</stream:stream>").await.unwrap();
        tls.flush().await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read_to_end(&mut rest)).await;
    }
    srv.stop().await;
}
