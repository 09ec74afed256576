//! SCRAM-*-PLUS channel bindings: XEP-0440 §5 makes tls-server-end-point
//! (RFC 5929 §4) mandatory for servers; tls-exporter (RFC 9266) is offered
//! where it is safe (TLS 1.3). Features list them (XEP-0440 §4).

mod common;

use base64::Engine;
use common::*;

const CB_NS: &str = "urn:xmpp:sasl-cb:0";

fn offered(features: &str) -> Vec<String> {
    let Some(start) = features.find(&format!("<sasl-channel-binding xmlns='{CB_NS}'>")) else { return Vec::new() };
    let part =
        &features[start..features[start..].find("</sasl-channel-binding>").map_or(features.len(), |e| start + e)];
    part.split("<channel-binding type='").skip(1).map(|s| s[..s.find('\'').unwrap()].to_string()).collect()
}

#[tokio::test]
async fn tls13_offers_both_and_each_binds() {
    let srv = start_server_with("[auth]\nfailure_delay_ms = 0").await;
    srv.register("alice", "secret");
    let (c, f) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    assert_eq!(offered(&f), ["tls-exporter", "tls-server-end-point"], "{f}");
    drop(c);
    for mech in ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"] {
        let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
        let cb = c.server_end_point().unwrap();
        c.scram_bound(mech, "alice", "secret", Some(("tls-server-end-point", cb)))
            .await
            .unwrap_or_else(|e| panic!("{mech}: {e}"));
        let f = c.open().await;
        assert!(f.contains("urn:ietf:params:xml:ns:xmpp-bind"), "{f}");

        let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
        c.scram(mech, "alice", "secret").await.unwrap_or_else(|e| panic!("{mech} tls-exporter: {e}"));
    }
    srv.stop().await;
}

/// RFC 5802 §7 e=channel-bindings-dont-match and
/// e=unsupported-channel-binding-type: both are not-authorized here.
#[tokio::test]
async fn wrong_or_unknown_binding_fails() {
    let srv = start_server_with("[auth]\nfailure_delay_ms = 0").await;
    srv.register("alice", "secret");
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    let mut cb = c.server_end_point().unwrap();
    cb[0] ^= 1;
    let e = c.scram_bound("SCRAM-SHA-256-PLUS", "alice", "secret", Some(("tls-server-end-point", cb))).await;
    assert!(e.unwrap_err().contains("<not-authorized/>"));
    // The exporter value named as the end point does not match either.
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    let cb = c.exporter().unwrap();
    let e = c.scram_bound("SCRAM-SHA-256-PLUS", "alice", "secret", Some(("tls-server-end-point", cb))).await;
    assert!(e.unwrap_err().contains("<not-authorized/>"));
    // A type the server does not offer fails at once, on client-first.
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    let first = B64.encode("p=tls-unique,,n=alice,r=abcdefgh");
    c.send(&format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>{first}</auth>"))
        .await;
    assert!(c.expect("</failure>").await.contains("<not-authorized/>"));
    srv.stop().await;
}

/// TLS 1.2: no tls-exporter (RFC 9266 §3: unsafe without extended master
/// secret), but tls-server-end-point keeps the -PLUS mechanisms available.
#[tokio::test]
async fn tls12_binds_by_server_end_point() {
    let srv = start_server_with("[auth]\nfailure_delay_ms = 0").await;
    srv.register("bob", "pw");
    let (mut c, f) = TestClient::connect_starttls_tls12(srv.c2s, &srv.ca_path()).await;
    assert_eq!(offered(&f), ["tls-server-end-point"], "{f}");
    assert!(f.contains("<mechanism>SCRAM-SHA-256-PLUS</mechanism>"), "{f}");
    let cb = c.server_end_point().unwrap();
    c.scram_bound("SCRAM-SHA-256-PLUS", "bob", "pw", Some(("tls-server-end-point", cb))).await.unwrap();
    srv.stop().await;
}
