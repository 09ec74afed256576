//! Raw-XML tests of stream negotiation: RFC 6120 §4 (streams), §5 (STARTTLS),
//! §6 (SASL), §7 (binding), XEP-0368 (direct TLS).

mod common;
use base64::Engine;
use common::*;
use std::time::Duration;

const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// RFC 6120 §5.3.1: TLS is mandatory-to-negotiate; no SASL before it.
#[tokio::test]
async fn features_require_starttls_first() {
    let srv = start_server().await;
    let mut c = TestClient::connect(srv.c2s).await;
    let f = c.open().await;
    assert!(f.contains("<stream:stream xmlns='jabber:client'"), "{f}");
    assert!(f.contains("from='localhost'") && f.contains("version='1.0'"), "{f}");
    assert!(f.contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"), "{f}");
    assert!(!f.contains("mechanism"), "{f}");
    // §6.4: SASL before TLS is refused (encryption-required, RFC 6120 §6.5.4).
    let r = c.plain("alice", "pw").await;
    assert!(r.contains("<encryption-required/>"), "{r}");
}

/// RFC 6120 §4.9.3.6: `to` must name a served host; the server still opens a
/// stream before the error (§4.9.1.3).
#[tokio::test]
async fn unknown_host_is_host_unknown() {
    let srv = start_server().await;
    let mut c = TestClient::connect(srv.c2s).await;
    c.send("<?xml version='1.0'?><stream:stream to='nope.example' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").await;
    let got = c.expect_closed().await;
    assert!(got.contains("<stream:stream "), "{got}");
    assert!(got.contains(&format!("<host-unknown xmlns='{STREAMS}'/>")), "{got}");
    assert!(got.ends_with("</stream:stream>"), "{got}");
}

/// RFC 6120 §4.8.1 / §4.9.3.10: wrong namespaces; §4.7.5 / §4.9.3.22: version.
#[tokio::test]
async fn bad_headers_get_their_stream_errors() {
    let srv = start_server().await;
    let cases = [
        ("<stream:stream to='localhost' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>", "invalid-namespace"),
        ("<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='urn:wrong' version='1.0'>", "invalid-namespace"),
        ("<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>", "unsupported-version"),
        ("<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='2.0'>", "unsupported-version"),
        ("hello", "not-well-formed"),
        ("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>", "restricted-xml"),
    ];
    for (input, cond) in cases {
        let mut c = TestClient::connect(srv.c2s).await;
        c.send(input).await;
        let got = c.expect_closed().await;
        assert!(got.contains(&format!("<{cond} xmlns='{STREAMS}'/>")), "{input}: {got}");
    }
}

/// RFC 6120 §4.9.3.12: stanzas before authentication.
#[tokio::test]
async fn stanza_before_auth_is_not_authorized() {
    let srv = start_server().await;
    let mut c = TestClient::connect(srv.c2s).await;
    c.open().await;
    c.send("<message to='bob@localhost'><body>hi</body></message>").await;
    let got = c.expect_closed().await;
    assert!(got.contains(&format!("<not-authorized xmlns='{STREAMS}'/>")), "{got}");
}

/// RFC 6120 §6: each SCRAM mechanism with right and wrong passwords.
#[tokio::test]
async fn scram_mechanisms_good_and_bad() {
    let srv = start_server().await;
    srv.register("alice", "secret");
    for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"] {
        let (mut c, f) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
        assert!(f.contains(&format!("<mechanism>{mech}</mechanism>")), "{f}");
        c.scram(mech, "alice", "secret").await.unwrap_or_else(|e| panic!("{mech}: {e}"));
        let f = c.open().await;
        assert!(f.contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"), "{f}");
        assert!(c.bind(Some("r")).await.starts_with("alice@localhost/r"));

        let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
        let e = c.scram(mech, "alice", "wrong").await.unwrap_err();
        assert!(e.contains("<not-authorized/>"), "{mech}: {e}");
        // Never binds after a failure: a bind attempt is a stanza before auth.
        c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>").await;
        assert!(c.expect_closed().await.contains("not-authorized"));
    }
}

/// SCRAM for an account that does not exist fails the same way.
#[tokio::test]
async fn scram_unknown_user() {
    let srv = start_server().await;
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    let e = c.scram("SCRAM-SHA-256", "ghost", "x").await.unwrap_err();
    assert!(e.contains("<not-authorized/>"), "{e}");
}

/// RFC 4616 PLAIN over TLS.
#[tokio::test]
async fn plain_over_tls() {
    let srv = start_server().await;
    srv.register("bob", "pw1");
    let (mut c, f) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    assert!(f.contains("<mechanism>PLAIN</mechanism>"), "{f}");
    assert!(c.plain("bob", "bad").await.contains("<not-authorized/>"));
    assert!(c.plain("bob", "pw1").await.contains("<success"));
    c.open().await;
    assert_eq!(c.bind(None).await.split('/').next(), Some("bob@localhost"));
}

/// RFC 6120 §6.4.6 (authzid): authorising as someone else is refused.
#[tokio::test]
async fn plain_authzid_for_another_user_is_refused() {
    let srv = start_server().await;
    srv.register("bob", "pw1");
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    let msg = B64.encode("admin@localhost\0bob\0pw1");
    c.send(&format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{msg}</auth>")).await;
    let got = c.expect("</failure>").await;
    assert!(got.contains("<invalid-authzid/>"), "{got}");
    // The user's own bare JID on another domain is someone else too.
    let msg = B64.encode("bob@example.org\0bob\0pw1");
    c.send(&format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{msg}</auth>")).await;
    assert!(c.expect("</failure>").await.contains("<invalid-authzid/>"));
    // Its own JID is fine.
    let msg = B64.encode("bob@localhost\0bob\0pw1");
    c.send(&format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{msg}</auth>")).await;
    assert!(c.expect_any(&["</success>", "/>"]).await.contains("<success"));
}

/// RFC 6120 §6.5.8: unknown mechanism; §6.5.3 bad base64.
#[tokio::test]
async fn sasl_errors() {
    let srv = start_server().await;
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='DIGEST-MD5'/>").await;
    assert!(c.expect("</failure>").await.contains("<invalid-mechanism/>"));
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!notbase64</auth>").await;
    assert!(c.expect("</failure>").await.contains("<incorrect-encoding/>"));
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>bixzdWJ0bGU=</auth>").await;
    assert!(c.expect("</failure>").await.contains("<"));
}

/// RFC 6120 §6.4.5: after too many failures the stream is closed.
#[tokio::test]
async fn too_many_auth_failures_close_the_stream() {
    let srv = start_server().await;
    srv.register("bob", "pw1");
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    for _ in 0..2 {
        assert!(c.plain("bob", "bad").await.contains("<not-authorized/>"));
    }
    let msg = B64.encode("\0bob\0bad");
    c.send(&format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{msg}</auth>")).await;
    let got = c.expect_closed().await;
    assert!(got.contains("<policy-violation"), "{got}");
}

/// XEP-0368 direct TLS, and a ClientHello on the STARTTLS port.
#[tokio::test]
async fn direct_tls_on_both_ports() {
    let srv = start_server().await;
    srv.register("carol", "pw");
    for addr in [srv.direct_tls, srv.c2s] {
        let mut c = TestClient::connect_tls(addr, &srv.ca_path()).await;
        let f = c.open().await;
        assert!(!f.contains("starttls"), "{f}");
        assert!(f.contains("SCRAM-SHA-256-PLUS"), "{f}");
        c.scram("SCRAM-SHA-256-PLUS", "carol", "pw").await.unwrap();
        c.open().await;
        c.bind(Some("tls")).await;
    }
}

/// RFC 6120 §7.7.2.2: a second login with the same full JID takes over;
/// the old stream gets `<conflict/>`. Legacy session is optional and answered.
#[tokio::test]
async fn bind_conflict_takes_over() {
    let srv = start_server().await;
    srv.register("dave", "pw");
    let mut old = TestClient::login(&srv, "dave", "pw", "desk").await;
    let mut new = TestClient::login(&srv, "dave", "pw", "desk").await;
    let got = old.expect_closed().await;
    assert!(got.contains(&format!("<conflict xmlns='{STREAMS}'/>")), "{got}");
    new.send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>").await;
    assert!(new.expect("/>").await.contains("type='result' id='s1'"));
    assert_eq!(srv.shared.router.connected_full_jids(), vec!["dave@localhost/desk".to_string()]);
}

/// RFC 6120 §7.6.2.1: the server generates a resource when none is asked for;
/// §7.4: features after SASL list bind and optional session.
#[tokio::test]
async fn generated_resource_and_session_feature() {
    let srv = start_server().await;
    srv.register("erin", "pw");
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    c.scram("SCRAM-SHA-1", "erin", "pw").await.unwrap();
    let f = c.open().await;
    assert!(f.contains("<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"), "{f}");
    let jid = c.bind(None).await;
    assert!(jid.starts_with("erin@localhost/") && jid.len() > "erin@localhost/".len(), "{jid}");
}

/// RFC 6120 §4.4: the closing handshake; §4.6.1 whitespace keepalives.
#[tokio::test]
async fn keepalive_and_closing_handshake() {
    let srv = start_server().await;
    srv.register("fay", "pw");
    let mut c = TestClient::login(&srv, "fay", "pw", "r").await;
    c.send(" \n \t ").await;
    c.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    assert!(c.expect("/>").await.contains("id='p'"));
    c.send("</stream:stream>").await;
    let got = c.expect_closed().await;
    assert!(got.contains("</stream:stream>"), "{got}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(srv.shared.router.session_count(), 0);
}

/// RFC 6120 §4.9.3.19: shutdown closes sessions with system-shutdown.
#[tokio::test]
async fn shutdown_sends_system_shutdown() {
    let srv = start_server().await;
    srv.register("gus", "pw");
    let mut c = TestClient::login(&srv, "gus", "pw", "r").await;
    srv.shared.shutdown.cancel();
    let got = c.expect_closed().await;
    assert!(got.contains(&format!("<system-shutdown xmlns='{STREAMS}'/>")), "{got}");
}

/// Oversized stanzas are a policy violation (RFC 6120 §4.9.3.14).
#[tokio::test]
async fn oversized_stanza_is_policy_violation() {
    let srv = start_server_with("[limits]\nmax_stanza_size = 4096").await;
    srv.register("hal", "pw");
    let mut c = TestClient::login(&srv, "hal", "pw", "r").await;
    let body = "x".repeat(8000);
    c.send(&format!("<message to='hal@localhost'><body>{body}</body></message>")).await;
    let got = c.expect_closed().await;
    assert!(got.contains("<policy-violation"), "{got}");
}

/// Authentication must finish within the configured deadline.
#[tokio::test]
async fn unauthenticated_connection_times_out() {
    let srv = start_server_with("[limits]\nauth_timeout_secs = 1").await;
    let mut c = TestClient::connect(srv.c2s).await;
    c.open().await;
    let got = c.expect_closed().await;
    assert!(got.contains("<connection-timeout"), "{got}");
}
