//! Raw-XML tests of routing (RFC 6120 §8, RFC 6121 §8.5) and of the iqs the
//! server answers (XEP-0199, XEP-0030, XEP-0092, RFC 6121 §2 roster get).

mod common;
use common::*;
use std::time::Duration;

const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

async fn pair() -> (TestServer, TestClient, TestClient) {
    let srv = start_server().await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let a = TestClient::online(&srv, "alice", "pa", "home", 0).await;
    let b = TestClient::online(&srv, "bob", "pb", "phone", 0).await;
    (srv, a, b)
}

/// RFC 6120 §8.1.2.1: the server stamps `from` with the sender's full JID,
/// whatever the client wrote; RFC 6121 §8.5.3.1: full JID delivery.
#[tokio::test]
async fn message_to_full_jid_with_stamped_from() {
    let (_srv, mut a, mut b) = pair().await;
    a.send("<message to='bob@localhost/phone' from='mallory@localhost/x' type='chat' id='m1'><body>hi &amp; bye</body></message>").await;
    let got = b.expect("</message>").await;
    assert!(got.contains("from='alice@localhost/home'"), "{got}");
    assert!(!got.contains("mallory"), "{got}");
    assert!(got.contains("<body>hi &amp; bye</body>") && got.contains("id='m1'"), "{got}");
    // and back
    b.send("<message to='alice@localhost' type='chat'><body>yo</body></message>").await;
    let got = a.expect("</message>").await;
    assert!(got.contains("from='bob@localhost/phone'") && got.contains("<body>yo</body>"), "{got}");
}

/// RFC 6121 §8.5.2.1.1: a message to the bare JID goes to the
/// highest-priority available resource(s); negative priority gets none.
#[tokio::test]
async fn bare_jid_message_goes_to_highest_priority() {
    let srv = start_server().await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let mut a = TestClient::online(&srv, "alice", "pa", "a", 0).await;
    let mut low = TestClient::online(&srv, "bob", "pb", "low", 1).await;
    let mut high = TestClient::online(&srv, "bob", "pb", "high", 10).await;
    let mut neg = TestClient::online(&srv, "bob", "pb", "neg", -1).await;
    a.send("<message to='bob@localhost' type='chat'><body>to-best</body></message>").await;
    assert!(high.expect("</message>").await.contains("to-best"));
    for c in [&mut low, &mut neg] {
        let got = c.drain(Duration::from_millis(300)).await;
        assert!(!got.contains("to-best"), "{got}");
    }
    // A message to an unknown resource of bob is treated as bare (§8.5.3.2.1).
    a.send("<message to='bob@localhost/gone' type='chat'><body>fallback</body></message>").await;
    assert!(high.expect("</message>").await.contains("fallback"));
    // A full JID reaches even a negative-priority resource (§8.5.3.1).
    a.send("<message to='bob@localhost/neg' type='chat'><body>direct</body></message>").await;
    assert!(neg.expect("</message>").await.contains("direct"));
}

/// RFC 6121 §8.5.2.2: no available resource → service-unavailable (offline
/// storage comes later); likewise an account that does not exist (§8.5.1).
#[tokio::test]
async fn undeliverable_message_bounces_service_unavailable() {
    let (_srv, mut a, _b) = pair().await;
    for to in ["nobody@localhost", "nobody@localhost/x"] {
        a.send(&format!("<message to='{to}' type='chat' id='u1'><body>x</body></message>")).await;
        let got = a.expect("</message>").await;
        assert!(got.contains("type='error'") && got.contains("id='u1'"), "{got}");
        assert!(got.contains(&format!("from='{to}'")) && got.contains("to='alice@localhost/home'"), "{got}");
        assert!(got.contains(&format!("<service-unavailable xmlns='{STANZAS}'/>")), "{got}");
    }
    // Errors are never answered with errors (§8.3.1).
    a.send("<message to='nobody@localhost' type='error' id='e1'/>").await;
    a.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    let got = a.expect("id='sync'").await;
    assert!(!got.contains("e1"), "{got}");
}

/// RFC 6121 §8.5.3.1 / §8.5.3.2.2: iq to a full JID is delivered; to an
/// unknown resource it bounces with service-unavailable.
#[tokio::test]
async fn iq_between_clients() {
    let (_srv, mut a, mut b) = pair().await;
    a.send("<iq to='bob@localhost/phone' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>").await;
    let got = b.expect("</iq>").await;
    assert!(got.contains("from='alice@localhost/home'") && got.contains("id='v1'"), "{got}");
    b.send("<iq to='alice@localhost/home' type='result' id='v1'/>").await;
    let got = a.expect("/>").await;
    assert!(got.contains("type='result'") && got.contains("from='bob@localhost/phone'"), "{got}");
    a.send("<iq to='bob@localhost/nope' type='get' id='v2'><query xmlns='jabber:iq:version'/></iq>").await;
    let got = a.expect("</iq>").await;
    assert!(got.contains("type='error'") && got.contains("service-unavailable"), "{got}");
}

/// RFC 6120 §8.3.3.8 jid-malformed; §8.3.3.15 remote-server-not-found (no federation yet).
#[tokio::test]
async fn bad_and_remote_addresses() {
    let (_srv, mut a, _b) = pair().await;
    a.send("<message to='a@b@c' id='j1'><body>x</body></message>").await;
    let got = a.expect("</message>").await;
    assert!(got.contains(&format!("<jid-malformed xmlns='{STANZAS}'/>")), "{got}");
    a.send("<message to='someone@remote.example' id='r1' type='chat'><body>x</body></message>").await;
    let got = a.expect("</message>").await;
    assert!(got.contains(&format!("<remote-server-not-found xmlns='{STANZAS}'/>")), "{got}");
}

/// XEP-0199 ping, XEP-0092 version, XEP-0030 disco, RFC 6121 §2.1.3 roster
/// get; unknown namespaces get service-unavailable (RFC 6120 §8.3.3.19).
#[tokio::test]
async fn server_iqs() {
    let (_srv, mut a, _b) = pair().await;
    a.send("<iq to='localhost' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    let got = a.expect("/>").await;
    assert!(got.contains("type='result'") && got.contains("id='p1'") && got.contains("from='localhost'"), "{got}");

    a.send("<iq to='localhost' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").await;
    let got = a.expect("</iq>").await;
    assert!(got.contains("category='server'") && got.contains("type='im'"), "{got}");
    let features = [
        "http://jabber.org/protocol/commands",
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
        "jabber:iq:last",
        "jabber:iq:private",
        "jabber:iq:register",
        "jabber:iq:version",
        "msgoffline",
        "urn:xmpp:blocking",
        "urn:xmpp:carbons:2",
        "urn:xmpp:ping",
        "urn:xmpp:time",
        "vcard-temp",
    ];
    for f in features {
        assert!(got.contains(&format!("var='{f}'")), "{f}: {got}");
    }
    assert_eq!(got.matches("<feature ").count(), features.len(), "only implemented features: {got}");

    a.send("<iq to='localhost' type='get' id='d2'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>").await;
    assert!(a.expect("</iq>").await.contains("id='d2'"));

    a.send("<iq to='localhost' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>").await;
    let got = a.expect("</iq>").await;
    assert!(got.contains("<name>xmppd</name>") && got.contains("<version>"), "{got}");

    a.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>").await;
    let got = a.expect("</iq>").await;
    assert!(got.contains("type='result'") && got.contains("id='r1'"), "{got}");
    assert!(got.contains("<query xmlns='jabber:iq:roster' ver='0'/>"), "{got}");

    a.send("<iq to='localhost' type='get' id='x1'><query xmlns='urn:example:unknown'/></iq>").await;
    let got = a.expect("</iq>").await;
    assert!(got.contains("type='error'") && got.contains("<service-unavailable"), "{got}");

    // RFC 6120 §8.2.3: a get with no payload is a bad request.
    a.send("<iq to='localhost' type='get' id='x2'/>").await;
    let got = a.expect("</iq>").await;
    assert!(got.contains("<bad-request"), "{got}");
}

/// RFC 6121 §4.2.2 / §4.5.2: available and unavailable presence reach the
/// user's other resources, also when a connection drops.
#[tokio::test]
async fn presence_between_own_resources() {
    let srv = start_server().await;
    srv.register("ann", "p");
    let mut one = TestClient::online(&srv, "ann", "p", "one", 0).await;
    let mut two = TestClient::login(&srv, "ann", "p", "two").await;
    two.send("<presence><show>away</show></presence>").await;
    let got = one.expect("</presence>").await;
    assert!(got.contains("from='ann@localhost/two'") && got.contains("<show>away</show>"), "{got}");
    // §4.2.2: the sending resource gets its own presence too.
    let echo = two.expect_stanza("<show>away</show>").await;
    assert!(echo.contains("from='ann@localhost/two'") && echo.contains("to='ann@localhost/two'"), "{echo}");
    drop(two);
    let got = one.expect("/>").await;
    assert!(got.contains("type='unavailable'") && got.contains("from='ann@localhost/two'"), "{got}");
}

/// Stanzas for other entities' bare JIDs of unknown types are refused cleanly.
#[tokio::test]
async fn iq_without_valid_type_is_bad_request() {
    let (_srv, mut a, _b) = pair().await;
    a.send("<iq to='localhost' type='bogus' id='t1'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    let got = a.expect("</iq>").await;
    assert!(got.contains("<bad-request"), "{got}");
}

/// Stanzas accepted for a session that ends are routed again (RFC 6121
/// §8.5.3.2, as ejabberd does with a dead session's queue): a reader too
/// slow is cut with <policy-violation/>, and every message sent to it either
/// reached its socket or waits in offline storage (XEP-0160). None is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_of_an_ended_session_are_not_lost() {
    use std::sync::atomic::Ordering;
    let srv =
        start_server_with("[limits]\nshaper_bytes_per_sec = 0\nstanzas_per_sec = 0\noutbound_queue_bytes = 262144\n")
            .await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let mut a = TestClient::online(&srv, "alice", "pa", "a", 0).await;
    let mut b = TestClient::online(&srv, "bob", "pb", "b", 0).await; // stops reading
    let body = "q".repeat(16 * 1024);
    let cut = &srv.shared.metrics.slow_consumers_closed_total;
    let mut sent = 0;
    while cut.load(Ordering::Relaxed) == 0 {
        assert!(sent < 8000, "bob was never cut off after {sent} messages");
        a.send(&format!("<message to='bob@localhost/b' type='chat' id='q{sent}.'><body>{body}</body></message>")).await;
        sent += 1;
    }
    a.send("<iq type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    a.expect_stanza("id='alive'").await;
    // What reached bob's socket, up to the end of the stream.
    let got = b.expect_closed().await;
    assert!(got.contains("policy-violation"), "{}", &got[got.len().saturating_sub(300)..]);
    let stored = srv.shared.store.offline("bob", "localhost").unwrap();
    assert!(!stored.is_empty(), "nothing was queued when bob was cut");
    let ids = |text: &str| -> Vec<usize> {
        text.split("id='q").skip(1).filter_map(|t| t.split_once(".'")?.0.parse().ok()).collect()
    };
    let mut seen = std::collections::HashSet::new();
    seen.extend(ids(&got));
    for m in &stored {
        seen.extend(ids(&m.stanza));
    }
    let missing: Vec<usize> = (0..sent).filter(|i| !seen.contains(i)).collect();
    println!("sent {sent}, stored offline {}, missing {missing:?}", stored.len());
    assert!(missing.is_empty(), "lost {} of {sent}: {missing:?}", missing.len());
    srv.stop().await;
}
