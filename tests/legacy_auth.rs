//! Raw-XML tests of XEP-0078 Non-SASL Authentication (`[auth] legacy_auth`).
//! Third-party: tests/interop/run.sh logs in with tsung's `auth_get` /
//! `auth_set_plain` (slixmpp's xep_0078 plugin does not await its iqs and
//! only runs when SASL is not offered, so it cannot be used).

mod common;
use common::*;
use std::time::Duration;

const ENABLED: &str = "[auth]\nlegacy_auth = true\nfailure_delay_ms = 0\n";
const AUTH_FEATURE: &str = "<auth xmlns='http://jabber.org/features/iq-auth'/>";

fn auth_set(id: &str, user: &str, password: &str, resource: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><query xmlns='jabber:iq:auth'><username>{user}</username>\
         <password>{password}</password><resource>{resource}</resource></query></iq>"
    )
}

/// Off by default (as ejabberd's mod_legacy_auth and Prosody's
/// mod_legacyauth are): no feature, and an iq:auth before authentication
/// is a stanza before authentication (RFC 6120 §4.9.3.12).
#[tokio::test]
async fn off_by_default() {
    let srv = start_server().await;
    srv.register("bob", "pw1");
    let (mut c, f) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    assert!(!f.contains("iq-auth"), "{f}");
    c.send(&auth_set("a1", "bob", "pw1", "r")).await;
    let got = c.expect_closed().await;
    assert!(got.contains("<not-authorized"), "{got}");
}

/// XEP-0078 §4 and §7: the feature is offered over TLS only, beside SASL;
/// a password sent before TLS ends the stream with <policy-violation/>.
#[tokio::test]
async fn only_over_tls() {
    let srv = start_server_with(ENABLED).await;
    srv.register("bob", "pw1");
    let mut c = TestClient::connect(srv.c2s).await;
    let f = c.open().await;
    assert!(!f.contains("iq-auth"), "{f}");
    c.send(&auth_set("a1", "bob", "pw1", "r")).await;
    let got = c.expect_closed().await;
    assert!(got.contains("<policy-violation") && got.contains("TLS"), "{got}");
    let (_c, f) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    assert!(f.contains(AUTH_FEATURE) && f.contains("<mechanism>PLAIN</mechanism>"), "{f}");
}

/// §3.1: get the fields (plaintext only, no digest), log in with them, and
/// the session is established at once: presence and messages flow with a
/// SASL-authenticated user, and the roster answers.
#[tokio::test]
async fn login_then_chat() {
    let srv = start_server_with(ENABLED).await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let (mut a, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    a.send(
        "<iq type='get' id='g1' to='localhost'><query xmlns='jabber:iq:auth'><username>alice</username></query></iq>",
    )
    .await;
    let got = a.expect("</iq>").await;
    assert!(got.contains("type='result'") && got.contains("id='g1'"), "{got}");
    assert!(got.contains("<username>alice</username>") && got.contains("<password/>"), "{got}");
    assert!(got.contains("<resource/>") && !got.contains("digest"), "{got}");
    a.send(&auth_set("s1", "Alice", "pa", "legacy")).await;
    let got = a.expect("/>").await;
    assert!(got.contains("type='result'") && got.contains("id='s1'"), "{got}");
    a.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>").await;
    assert!(a.expect("</iq>").await.contains("type='result'"));
    a.send("<presence/>").await;

    let mut b = TestClient::online(&srv, "bob", "pb", "b", 0).await;
    b.send("<message to='alice@localhost/legacy' type='chat'><body>hi legacy</body></message>").await;
    let m = a.expect_stanza("hi legacy").await;
    assert!(m.contains("from='bob@localhost/b'"), "{m}");
    a.send("<message to='bob@localhost/b' type='chat'><body>hi sasl</body></message>").await;
    let m = b.expect_stanza("hi sasl").await;
    assert!(m.contains("from='alice@localhost/legacy'"), "{m}");
}

/// §3.1 (Examples 6, 8): a wrong password is <not-authorized/>, a missing
/// field (or a digest, which is not offered) <not-acceptable/>; failures
/// count as SASL ones do, and too many close the stream.
#[tokio::test]
async fn errors_and_failure_limit() {
    let srv = start_server_with(ENABLED).await;
    srv.register("bob", "pw1");
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    c.send("<iq type='set' id='m1'><query xmlns='jabber:iq:auth'><username>bob</username><password>pw1</password></query></iq>")
        .await;
    let got = c.expect("</iq>").await;
    assert!(got.contains("type='error'") && got.contains("id='m1'") && got.contains("<not-acceptable"), "{got}");
    // RFC 6120 §8.3.3.9 (and XEP-0078 Example 8): type modify.
    assert!(got.contains("<error type='modify'><not-acceptable"), "{got}");
    c.send(
        "<iq type='set' id='d1'><query xmlns='jabber:iq:auth'><username>bob</username>\
         <digest>48fc78be9ec8f86d8ce1c39c320c97c21d62334d</digest><resource>r</resource></query></iq>",
    )
    .await;
    assert!(c.expect("</iq>").await.contains("<not-acceptable"));
    for i in 0..2 {
        c.send(&auth_set(&format!("f{i}"), "bob", "wrong", "r")).await;
        let got = c.expect("</iq>").await;
        assert!(got.contains("type='error'") && got.contains("<not-authorized"), "{got}");
    }
    // An unknown account is answered the same way.
    c.send(&auth_set("f2", "nobody", "pw1", "r")).await;
    let got = c.expect_closed().await;
    assert!(got.contains("<not-authorized") && got.contains("<policy-violation"), "{got}");
}

/// A second login with the same resource replaces the first (RFC 6120
/// §7.7.2.2, as binding does), and after a successful login the feature is
/// gone and iq:auth is an ordinary stanza to the server.
#[tokio::test]
async fn same_resource_replaces_the_old_session() {
    let srv = start_server_with(ENABLED).await;
    srv.register("bob", "pw1");
    let (mut first, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    first.send(&auth_set("s1", "bob", "pw1", "home")).await;
    assert!(first.expect("/>").await.contains("type='result'"));
    let (mut second, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    second.send(&auth_set("s2", "bob", "pw1", "home")).await;
    assert!(second.expect("/>").await.contains("type='result'"));
    let got = first.expect_closed().await;
    assert!(got.contains("<conflict"), "{got}");
    second.send(&auth_set("s3", "bob", "pw1", "other")).await;
    let got = second.expect("</iq>").await;
    assert!(got.contains("type='error'") && got.contains("id='s3'"), "{got}");
    assert!(second.drain(Duration::from_millis(100)).await.is_empty());
}

/// Not in the middle of a SASL exchange: there the iq is a stanza before
/// authentication (RFC 6120 §4.9.3.12) and the stream ends.
#[tokio::test]
async fn not_during_a_sasl_exchange() {
    let srv = start_server_with(ENABLED).await;
    srv.register("bob", "pw1");
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    c.send(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj1ib2Iscj1hYmNkZWZnaA==</auth>",
    )
    .await;
    assert!(c.expect("</challenge>").await.contains("<challenge"));
    c.send(&auth_set("a1", "bob", "pw1", "r")).await;
    let got = c.expect_closed().await;
    assert!(got.contains("<not-authorized"), "{got}");
}
