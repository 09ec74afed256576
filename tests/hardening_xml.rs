//! Hostile input (issue 5 items 1, 2, 6): raw XML attacks get the RFC 6120
//! stream or stanza error, memory stays bounded, and afterwards a fresh
//! pair of users still chats.

mod common;
mod hostile;

use common::{fresh_pair_chats, start_server, TestClient};
use hostile::{attack, repeat, with_header};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// RFC 6120 §4.9.3.13 not-well-formed, §4.9.3.18 restricted-xml (§11.1),
/// §4.9.3.15 policy-violation for the size, depth and attribute limits.
#[tokio::test]
async fn xml_attacks_get_their_stream_errors() {
    let srv = start_server().await;
    let big = 300 * 1024;
    let attacks: Vec<(&str, Vec<u8>, &str)> = vec![
        ("huge text node without '<'", with_header(&repeat("<message><body>", "x", big, "")), "policy-violation"),
        ("never-ending start tag", with_header(&repeat("<message to='a@b'", " ", big, "")), "policy-violation"),
        ("endless attributes", with_header(&repeat("<message", " a='b'", big / 6, "")), "policy-violation"),
        ("too many attributes", with_header(&repeat("<message", " a='b'", 100, "/>")), "policy-violation"),
        ("attribute too long", with_header(&repeat("<message id='", "x", 20_000, "'/>")), "policy-violation"),
        (
            "oversized stanza",
            with_header(&repeat("<message><body>", "y", big, "</body></message>")),
            "policy-violation",
        ),
        ("nesting too deep", with_header(&repeat("<message>", "<a>", 100, "")), "policy-violation"),
        ("endless stream header", repeat("<stream:stream to='localhost'", " ", big, ""), "policy-violation"),
        (
            "billion laughs DTD",
            b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]><lolz>&lol2;</lolz>"
                .to_vec(),
            "restricted-xml",
        ),
        ("DTD inside the stream", with_header(b"<!DOCTYPE x [<!ENTITY a 'b'>]>"), "restricted-xml"),
        ("entity declaration in a stanza", with_header(b"<message><!ENTITY x 'y'></message>"), "restricted-xml"),
        ("processing instruction", with_header(b"<?evil x?>"), "restricted-xml"),
        ("comment", with_header(b"<message><!-- c --></message>"), "restricted-xml"),
        ("undeclared entity", with_header(b"<message><body>&xxe;</body></message>"), "restricted-xml"),
        ("invalid UTF-8", with_header(b"<message><body>\xff\xfe</body></message>"), "not-well-formed"),
        ("UTF-8 surrogate", with_header(b"<message><body>\xed\xa0\x80</body></message>"), "not-well-formed"),
        ("control character", with_header(b"<message><body>\x01</body></message>"), "not-well-formed"),
        ("control character reference", with_header(b"<message><body>&#1;</body></message>"), "not-well-formed"),
        ("U+FFFE", with_header("<message><body>\u{FFFE}</body></message>".as_bytes()), "not-well-formed"),
        ("mismatched tags", with_header(b"<message><body></message></body>"), "not-well-formed"),
        ("text between stanzas", with_header(b"hello"), "not-well-formed"),
        // Namespaces in XML 1.0 §4: a QName has one colon at most, with a
        // prefix and a local part (RFC 6120 §11.4).
        ("colon in a local name", with_header(b"<x:y: xmlns:x='urn:x'/>"), "not-well-formed"),
        ("empty prefix", with_header(b"<message><:y xmlns:=''/></message>"), "not-well-formed"),
        ("colon in an attribute's local name", with_header(b"<message x:a:b='1' xmlns:x='urn:x'/>"), "not-well-formed"),
        ("name character not allowed", with_header(b"<message><x:/ xmlns:x='urn:x'/></message>"), "not-well-formed"),
        // XML 1.0 §3.1 [40]: white space between attributes (found by
        // fuzz/run.sh xml; quick-xml alone reads these as two attributes).
        ("no white space between attributes", with_header(b"<message><a x='1'y='2'/></message>"), "not-well-formed"),
        ("stream header not a QName", b"<stream:stream: xmlns:stream='x'>".to_vec(), "not-well-formed"),
    ];
    let n = attacks.len() as u64;
    for (name, payload, condition) in attacks {
        let got = attack(srv.c2s, payload).await;
        assert!(got.contains(&format!("<{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>")), "{name}: {got}");
        assert!(got.ends_with("</stream:stream>"), "{name}: {got}");
    }
    assert!(srv.shared.metrics.xml_errors_total.load(Ordering::Relaxed) >= n);
    fresh_pair_chats(&srv, "x").await;
    srv.stop().await;
}

/// RFC 7622 with PRECIS: JIDs are normalised at every entry point (SASL
/// username, bind, stanza `to`), bad ones get jid-malformed
/// (RFC 6120 §8.3.3.8) or bad-request for a bind (§7.7.2.1).
#[tokio::test]
async fn jids_are_normalised_and_validated() {
    let srv = start_server().await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    // UsernameCaseMapped: `Alice` is alice's account.
    let mut a = TestClient::login(&srv, "ALICE", "pa", "Desk").await;
    assert_eq!(a.jid, "alice@localhost/Desk");
    a.send("<presence/>").await;
    let mut b = TestClient::online(&srv, "bob", "pb", "b", 0).await;
    // Stanza `to` is normalised: case of localpart and domain, trailing dot.
    b.send("<message to='ALICE@LocalHost./Desk' type='chat'><body>one</body></message>").await;
    let got = a.expect_stanza("one").await;
    assert!(got.contains("from='bob@localhost/b'"), "{got}");
    // Bad JIDs in `to` bounce with jid-malformed.
    for (i, bad) in ["a b@localhost", "x@", "@localhost", "ctl\u{7}@localhost", "a@[bad]", "a@localhost/\u{200b}"]
        .iter()
        .enumerate()
    {
        let bad = bad.replace('\u{7}', "&#x7;");
        b.send(&format!("<message to='{bad}' id='j{i}'><body>x</body></message>")).await;
        if bad.contains("&#x7;") {
            // A control character is not even XML (RFC 6120 §11.1).
            let got = b.expect_closed().await;
            assert!(got.contains("<not-well-formed"), "{got}");
            break;
        }
        let got = b.expect_stanza(&format!("id='j{i}'")).await;
        assert!(got.contains("type='error'") && got.contains("<jid-malformed "), "{bad}: {got}");
    }
    // Bind: a resource that is not an OpaqueString is bad-request.
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    c.scram("SCRAM-SHA-256", "bob", "pb").await.unwrap();
    c.open().await;
    c.send("<iq type='set' id='bz'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>\u{200b}</resource></bind></iq>")
        .await;
    let got = c.expect("</iq>").await;
    assert!(got.contains("type='error'") && got.contains("<bad-request "), "{got}");
    fresh_pair_chats(&srv, "j").await;
    srv.stop().await;
}

/// The fuzz finding fuzz/regressions/xml/crash-923bdde0…: a child named
/// `x:y:` inside a routed message was accepted and then forwarded or
/// serialised as a name that no longer parses. Namespaces in XML 1.0 §4
/// (QName = Prefix ':' LocalPart, neither with a colon) makes it
/// not-well-formed (RFC 6120 §11.4, §4.9.3.13), for elements and attributes.
#[tokio::test]
async fn names_that_are_not_qnames_are_not_well_formed() {
    let (srv, _, mut b) = common::alice_and_bob().await;
    for (i, bad) in [
        "<message to='bob@localhost/b' type='chat'><body>q0</body><x:y: xmlns:x='urn:x' x:a='1'/></message>",
        "<message to='bob@localhost/b' type='chat'><body>q1</body><x:y xmlns:x='urn:x' x:a:='1'/></message>",
        "<message to='bob@localhost/b' type='chat' a:b:c='1' xmlns:a='urn:a'><body>q2</body></message>",
        "<message to='bob@localhost/b' type='chat'><body>q3</body><y: xmlns='urn:y'/></message>",
    ]
    .iter()
    .enumerate()
    {
        let mut a = TestClient::online(&srv, "alice", "pa", &format!("q{i}"), 0).await;
        a.send(bad).await;
        let got = a.expect_closed().await;
        assert!(got.contains("<not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"), "{bad}: {got}");
    }
    assert!(!b.drain(Duration::from_millis(300)).await.contains("<body>q"), "a bad stanza was delivered");
    fresh_pair_chats(&srv, "q").await;
    srv.stop().await;
}

/// RFC 6120 §8.1.2.1: the server stamps `from` whatever the client says;
/// §7.1: stanzas to others before binding close the stream with
/// <not-authorized/>; §4.9.3.12 likewise before authentication.
#[tokio::test]
async fn from_is_stamped_and_unbound_stanzas_are_refused() {
    let (srv, mut a, mut b) = common::alice_and_bob().await;
    a.send("<message to='bob@localhost/b' from='admin@localhost/x' type='chat'><body>spoof1</body></message>").await;
    let got = b.expect_stanza("spoof1").await;
    assert!(got.contains("from='alice@localhost/a'") && !got.contains("admin"), "{got}");
    a.send("<iq to='bob@localhost/b' from='localhost' type='get' id='sp2'><query xmlns='x:y'/></iq>").await;
    let got = b.expect_stanza("id='sp2'").await;
    assert!(got.contains("from='alice@localhost/a'") && !got.contains("from='localhost'"), "{got}");
    a.send("<presence to='bob@localhost/b' from='bob@localhost'><status>sp3</status></presence>").await;
    let got = b.expect_stanza("sp3").await;
    assert!(got.contains("from='alice@localhost/a'"), "{got}");
    // A prefixed stanza is valid XML (Namespaces in XML §4) and reaches bob
    // as well-formed XML: its name, end tag and namespaces as written, with
    // `from` stamped (found by fuzz/run.sh xml: it went out as
    // `<message …>…</c:message>`).
    a.send("<c:message xmlns:c='jabber:client' to='bob@localhost/b' type='chat'><c:body>sp4</c:body></c:message>")
        .await;
    let got = b.expect_stanza("sp4").await;
    assert!(got.starts_with("<c:message xmlns:c='jabber:client'") && got.ends_with("</c:message>"), "{got}");
    assert!(got.contains("from='alice@localhost/a'"), "{got}");
    xmppd::xml::Element::parse(got.as_bytes(), xmppd::xml::ns::CLIENT).unwrap();

    // Authenticated, not bound: a message to bob closes the stream.
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    c.scram("SCRAM-SHA-256", "alice", "pa").await.unwrap();
    c.open().await;
    c.send("<message to='bob@localhost/b'><body>early</body></message>").await;
    let got = c.expect_closed().await;
    assert!(got.contains("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"), "{got}");
    // Not authenticated at all.
    let mut d = TestClient::connect(srv.c2s).await;
    d.open().await;
    d.send("<message to='bob@localhost/b'><body>earlier</body></message>").await;
    assert!(d.expect_closed().await.contains("<not-authorized"));
    assert!(!b.drain(Duration::from_millis(300)).await.contains("early"));
    fresh_pair_chats(&srv, "i").await;
    srv.stop().await;
}
