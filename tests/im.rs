//! Raw-XML tests of RFC 6121 (rosters, subscriptions, presence) and
//! XEP-0160 offline messages, XEP-0280 carbons, XEP-0352 CSI.

mod common;
use common::*;
use std::time::Duration;

/// A roster get; returns the result stanza (skipping whatever came before).
async fn roster_get(c: &mut TestClient) -> String {
    c.send("<iq type='get' id='rg'><query xmlns='jabber:iq:roster'/></iq>").await;
    c.expect_stanza("id='rg'").await
}

/// RFC 6121 §2.3 roster set, §2.1.6 push to every interested resource,
/// §2.5 remove, §2.6 versioning.
#[tokio::test]
async fn roster_set_push_remove_and_versioning() {
    let srv = start_server().await;
    srv.register("juliet", "pw");
    let mut a = TestClient::online(&srv, "juliet", "pw", "balcony", 0).await;
    let mut b = TestClient::online(&srv, "juliet", "pw", "chamber", 0).await;
    let first = roster_get(&mut a).await;
    assert!(first.contains("<query xmlns='jabber:iq:roster' ver='0'/>"), "{first}");
    roster_get(&mut b).await;
    a.send("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='Nurse@localhost' name='Nurse'><group>Servants</group></item></query></iq>").await;
    for c in [&mut a, &mut b] {
        let push = c.expect_stanza("type='set'").await;
        assert!(push.contains("jid='nurse@localhost'") && push.contains("subscription='none'"), "{push}");
        assert!(push.contains("<group>Servants</group>") && push.contains("ver='1'"), "{push}");
    }
    // The result may come before or after the push (RFC 6121 §2.3.2 sets no order).
    // §2.6.3: unchanged version → empty result.
    a.send("<iq type='get' id='v1'><query xmlns='jabber:iq:roster' ver='1'/></iq>").await;
    let got = a.expect_stanza("id='v1'").await;
    assert!(got.contains("id='v1'") && got.contains("type='result'") && !got.contains("query"), "{got}");
    // Outdated version → the whole roster.
    a.send("<iq type='get' id='v2'><query xmlns='jabber:iq:roster' ver='0'/></iq>").await;
    let got = a.expect_stanza("id='v2'").await;
    assert!(got.contains("jid='nurse@localhost'") && got.contains("ver='1'"), "{got}");
    // §2.3.3: two items in one set is a bad request; duplicate groups too.
    a.send("<iq type='set' id='bad'><query xmlns='jabber:iq:roster'><item jid='x@localhost'/><item jid='y@localhost'/></query></iq>").await;
    assert!(a.expect_stanza("id='bad'").await.contains("<bad-request"));
    a.send("<iq type='set' id='bad2'><query xmlns='jabber:iq:roster'><item jid='x@localhost'><group>g</group><group>g</group></item></query></iq>").await;
    assert!(a.expect_stanza("id='bad2'").await.contains("<bad-request"));
    // §2.5 remove.
    a.send("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='nurse@localhost' subscription='remove'/></query></iq>").await;
    let push = b.expect_stanza("subscription='remove'").await;
    assert!(push.contains("jid='nurse@localhost'"), "{push}");
    a.send("<iq type='set' id='r2'><query xmlns='jabber:iq:roster'><item jid='nobody@localhost' subscription='remove'/></query></iq>").await;
    assert!(a.expect_stanza("id='r2'").await.contains("<item-not-found"));
}

/// RFC 6121 §3.1: the full subscription handshake ends in `both` on both
/// sides, with pushes at each step and presence exchanged.
#[tokio::test]
async fn subscription_handshake_to_both() {
    let srv = start_server().await;
    srv.register("romeo", "pr");
    srv.register("juliet", "pj");
    let mut r = TestClient::online(&srv, "romeo", "pr", "orchard", 0).await;
    let mut j = TestClient::online(&srv, "juliet", "pj", "balcony", 0).await;
    roster_get(&mut r).await;
    roster_get(&mut j).await;
    // Romeo asks.
    r.send("<presence to='juliet@localhost' type='subscribe'/>").await;
    let push = r.expect_stanza("<iq").await;
    assert!(push.contains("ask='subscribe'") && push.contains("subscription='none'"), "{push}");
    let req = j.expect_stanza("type='subscribe'").await;
    assert!(req.contains("from='romeo@localhost'"), "{req}");
    // Juliet approves: her roster gets romeo with `from`, romeo's gets `to`.
    j.send("<presence to='romeo@localhost' type='subscribed'/>").await;
    let push = j.expect_stanza("<iq").await;
    assert!(push.contains("jid='romeo@localhost'") && push.contains("subscription='from'"), "{push}");
    // Romeo gets the push (`to`), the `subscribed` and then Juliet's presence (§3.1.5).
    assert!(r.expect_stanza("<iq").await.contains("subscription='to'"));
    assert!(r.expect_stanza("<presence").await.contains("type='subscribed'"));
    assert!(r.expect_stanza("<presence").await.contains("from='juliet@localhost/balcony'"));
    // And the other way round.
    j.send("<presence to='romeo@localhost' type='subscribe'/>").await;
    r.expect_stanza("type='subscribe'").await;
    r.send("<presence to='juliet@localhost' type='subscribed'/>").await;
    r.expect_stanza("subscription='both'").await;
    j.expect_stanza("subscription='both'").await;
    let rr = roster_get(&mut r).await;
    assert!(rr.contains("jid='juliet@localhost'") && rr.contains("subscription='both'"), "{rr}");
    let jr = roster_get(&mut j).await;
    assert!(jr.contains("jid='romeo@localhost'") && jr.contains("subscription='both'"), "{jr}");
    // Presence updates now flow both ways (§4.4).
    j.send("<presence><show>away</show></presence>").await;
    let p = r.expect_stanza("<show>away</show>").await;
    assert!(p.contains("from='juliet@localhost/balcony'"), "{p}");
    // Unavailable on logout (§4.5) reaches the subscriber.
    j.send("</stream:stream>").await;
    let p = r.expect_stanza("type='unavailable'").await;
    assert!(p.contains("from='juliet@localhost/balcony'"), "{p}");
}

/// RFC 6121 §4.4.2: an update goes to the subscribers the roster has now.
/// Broadcasts read the roster through a per-account cache that every
/// roster write drops: a subscription approved after the initial presence
/// gets the next update, and a cancelled one stops it (§3.2).
#[tokio::test]
async fn presence_follows_subscription_changes() {
    let srv = start_server().await;
    srv.register("romeo", "pr");
    srv.register("juliet", "pj");
    let mut r = TestClient::online(&srv, "romeo", "pr", "orchard", 0).await;
    // Juliet's initial presence reads (and caches) her empty roster.
    let mut j = TestClient::online(&srv, "juliet", "pj", "balcony", 0).await;
    r.send("<presence to='juliet@localhost' type='subscribe'/>").await;
    j.expect_stanza("type='subscribe'").await;
    j.send("<presence to='romeo@localhost' type='subscribed'/>").await;
    r.expect_stanza("type='subscribed'").await;
    j.send("<presence><show>away</show></presence>").await;
    let p = r.expect_stanza("<show>away</show>").await;
    assert!(p.contains("from='juliet@localhost/balcony'"), "{p}");
    // Juliet cancels Romeo's subscription: her next update does not reach him.
    j.send("<presence to='romeo@localhost' type='unsubscribed'/>").await;
    r.expect_stanza("type='unsubscribed'").await;
    j.send("<presence><show>dnd</show></presence>").await;
    j.send("<iq type='get' id='sync2'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    j.expect("id='sync2'").await;
    let got = r.drain(Duration::from_millis(300)).await;
    assert!(!got.contains("<show>dnd</show>"), "{got}");
}

/// RFC 6121 §3.1.3: a request to an offline user is stored and delivered
/// at the next login; §4.3: probes answer with contacts' presence at login.
#[tokio::test]
async fn offline_subscription_request_and_probes() {
    let srv = start_server().await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let mut a = TestClient::online(&srv, "alice", "pa", "a", 0).await;
    a.send("<presence to='bob@localhost' type='subscribe'><status>let me in</status></presence>").await;
    a.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    a.expect("id='sync'").await;
    let mut b = TestClient::login(&srv, "bob", "pb", "b").await;
    b.send("<presence/>").await;
    let req = b.expect("</presence>").await;
    assert!(req.contains("type='subscribe'") && req.contains("let me in"), "{req}");
    b.send("<presence to='alice@localhost' type='subscribed'/>").await;
    // Alice now sees Bob's presence; after Bob logs out and in, Alice gets it again,
    // and a new login of Alice gets Bob's presence through the probe.
    a.expect("from='bob@localhost/b'").await;
    drop(a);
    let mut a2 = TestClient::login(&srv, "alice", "pa", "again").await;
    a2.send("<presence/>").await;
    let p = a2.expect("from='bob@localhost/b'").await;
    assert!(p.contains("<presence"), "{p}");
}

/// XEP-0160: chat messages to an offline user are stored and delivered in
/// order with a XEP-0203 delay at the next initial presence; a message to
/// a user that does not exist gets service-unavailable (RFC 6121 §8.5.1).
#[tokio::test]
async fn offline_messages_in_order_with_delay() {
    let srv = start_server().await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let mut a = TestClient::online(&srv, "alice", "pa", "a", 0).await;
    for i in 1..=3 {
        a.send(&format!("<message to='bob@localhost' type='chat' id='o{i}'><body>offline {i}</body></message>")).await;
    }
    // A chat state alone is not stored.
    a.send(
        "<message to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    )
    .await;
    a.send("<message to='ghost@localhost' type='chat' id='g1'><body>x</body></message>").await;
    let got = a.expect("</message>").await;
    assert!(got.contains("id='g1'") && got.contains("<service-unavailable"), "{got}");
    assert_eq!(srv.shared.store.count_offline("bob", "localhost").unwrap(), 3);
    let mut b = TestClient::login(&srv, "bob", "pb", "b").await;
    b.send("<presence/>").await;
    let mut last = 0;
    for i in 1..=3 {
        let m = b.expect("</message>").await;
        assert!(m.contains(&format!("<body>offline {i}</body>")), "{m}");
        assert!(m.contains("<delay xmlns='urn:xmpp:delay' from='localhost' stamp='"), "{m}");
        assert!(m.contains("from='alice@localhost/a'"), "{m}");
        assert!(i > last);
        last = i;
    }
    assert!(!b.drain(Duration::from_millis(300)).await.contains("composing"));
    assert_eq!(srv.shared.store.count_offline("bob", "localhost").unwrap(), 0);
}

/// XEP-0160 §3: a full offline store gets service-unavailable.
#[tokio::test]
async fn offline_limit() {
    let srv = start_server_with("[im]\nmax_offline_messages = 2").await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let mut a = TestClient::online(&srv, "alice", "pa", "a", 0).await;
    for i in 1..=3 {
        a.send(&format!("<message to='bob@localhost' type='chat' id='o{i}'><body>{i}</body></message>")).await;
    }
    let got = a.expect("</message>").await;
    assert!(got.contains("id='o3'") && got.contains("<service-unavailable"), "{got}");
}

/// XEP-0280: carbons of sent and received messages to the other enabled
/// resources; `<private/>` messages are not copied.
#[tokio::test]
async fn carbons_both_ways() {
    let srv = start_server().await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let mut a1 = TestClient::online(&srv, "alice", "pa", "phone", 5).await;
    let mut a2 = TestClient::online(&srv, "alice", "pa", "laptop", 0).await;
    let mut b = TestClient::online(&srv, "bob", "pb", "b", 0).await;
    for c in [&mut a1, &mut a2] {
        c.send("<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>").await;
        assert!(c.expect("/>").await.contains("type='result'"));
    }
    a1.drain(Duration::from_millis(100)).await;
    a2.drain(Duration::from_millis(100)).await;
    // Received: bob → alice (bare) goes to the phone (priority 5); the laptop gets a carbon.
    b.send("<message to='alice@localhost' type='chat'><body>hello alice</body></message>").await;
    assert!(a1.expect("</message>").await.contains("hello alice"));
    let c = a2.expect("</message></forwarded></received></message>").await;
    assert!(c.contains("<received xmlns='urn:xmpp:carbons:2'>") && c.contains("from='alice@localhost'"), "{c}");
    // §6: the wrapper carries the copied message's type.
    assert!(c.contains(" type='chat'><received "), "{c}");
    assert!(c.contains("<message xmlns='jabber:client'") && c.contains("hello alice"), "{c}");
    // Sent: the laptop writes to bob; the phone gets a <sent/> copy.
    a2.send("<message to='bob@localhost/b' type='chat'><body>from laptop</body></message>").await;
    assert!(b.expect("</message>").await.contains("from laptop"));
    let c = a1.expect("</message></forwarded></sent></message>").await;
    assert!(c.contains("<sent xmlns='urn:xmpp:carbons:2'>") && c.contains("from laptop"), "{c}");
    assert!(c.contains(" type='chat'><sent "), "{c}");
    // Private messages are not copied.
    a2.send(
        "<message to='bob@localhost/b' type='chat'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/></message>",
    )
    .await;
    assert!(b.expect("</message>").await.contains("secret"));
    assert!(!a1.drain(Duration::from_millis(300)).await.contains("secret"));
}

/// XEP-0352: presence is held back while inactive and flushed on active;
/// messages are not held back.
#[tokio::test]
async fn csi_holds_presence() {
    let srv = start_server().await;
    srv.register("alice", "pa");
    let mut one = TestClient::online(&srv, "alice", "pa", "one", 0).await;
    let mut two = TestClient::online(&srv, "alice", "pa", "two", 0).await;
    one.drain(Duration::from_millis(100)).await;
    one.send("<inactive xmlns='urn:xmpp:csi:0'/>").await;
    two.send("<presence><status>first</status></presence>").await;
    two.send("<presence><status>second</status></presence>").await;
    assert!(!one.drain(Duration::from_millis(300)).await.contains("status"));
    two.send("<message to='alice@localhost/one' type='chat'><body>urgent</body></message>").await;
    let got = one.expect("urgent").await;
    // The held presence arrives before the message; only the latest one.
    assert!(got.contains("second") && !got.contains("first"), "{got}");
    one.send("<active xmlns='urn:xmpp:csi:0'/>").await;
}

/// XEP-0199 §4.1: the server pings an idle client and closes a session
/// that does not answer.
#[tokio::test]
async fn server_pings_idle_clients() {
    let srv = start_server_with("[im]\nping_interval_secs = 1\nping_timeout_secs = 1").await;
    srv.register("alice", "pa");
    let mut a = TestClient::login(&srv, "alice", "pa", "a").await;
    let ping = a.expect("</iq>").await;
    assert!(ping.contains("<ping xmlns='urn:xmpp:ping'/>") && ping.contains("type='get'"), "{ping}");
    let got = a.expect_closed().await;
    assert!(got.contains("<connection-timeout"), "{got}");
}

/// The features after authentication list roster versioning, CSI and caps.
#[tokio::test]
async fn bound_stream_features() {
    let srv = start_server().await;
    srv.register("alice", "pa");
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    c.scram("SCRAM-SHA-256", "alice", "pa").await.unwrap();
    let f = c.open().await;
    assert!(f.contains("<ver xmlns='urn:xmpp:features:rosterver'/>"), "{f}");
    assert!(f.contains("<csi xmlns='urn:xmpp:csi:0'/>"), "{f}");
    assert!(f.contains("<c xmlns='http://jabber.org/protocol/caps' hash='sha-1'"), "{f}");
    // XEP-0115 §6.2: disco#info on node#ver answers with the same features.
    let node = between(&f, "node='", "' ver=").to_string();
    let ver = between(&f, "ver='", "'/>").to_string();
    c.bind(Some("r")).await;
    c.send(&format!("<iq to='localhost' type='get' id='cq'><query xmlns='http://jabber.org/protocol/disco#info' node='{node}#{ver}'/></iq>")).await;
    let got = c.expect_stanza("id='cq'").await;
    assert!(got.contains("type='result'") && got.contains("var='urn:xmpp:ping'"), "{got}");
}

/// XEP-0077: off by default (no stream feature, service-unavailable).
#[tokio::test]
async fn ibr_off_by_default() {
    let srv = start_server().await;
    let (mut c, f) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    assert!(!f.contains("iq-register"), "{f}");
    c.send("<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>").await;
    let got = c.expect("</iq>").await;
    assert!(got.contains("<service-unavailable"), "{got}");
}

/// XEP-0077 §3.1: with registration enabled, a new account is created
/// before authentication and can log in.
#[tokio::test]
async fn ibr_enabled_creates_account() {
    let srv = start_server_with("[registration]\nenabled = true\nallow_from = [\"127.0.0.0/8\"]").await;
    let (mut c, f) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    assert!(f.contains("<register xmlns='http://jabber.org/features/iq-register'/>"), "{f}");
    c.send("<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>").await;
    assert!(c.expect("</iq>").await.contains("<username/>"));
    c.send("<iq type='set' id='r2'><query xmlns='jabber:iq:register'><username>newbie</username><password>s3cret-pw</password></query></iq>").await;
    let got = c.expect_any(&["/>", "</iq>"]).await;
    assert!(got.contains("type='result'") && got.contains("id='r2'"), "{got}");
    c.scram("SCRAM-SHA-256", "newbie", "s3cret-pw").await.unwrap();
    // Registering the same name again is a conflict.
    let (mut d, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    d.send("<iq type='set' id='r3'><query xmlns='jabber:iq:register'><username>newbie</username><password>other-pw</password></query></iq>").await;
    assert!(d.expect("</iq>").await.contains("<conflict"));
}

/// XEP-0191 §3.5: stanzas to and from blocked entities.
#[tokio::test]
async fn blocking_applies_to_routing() {
    let (_srv, mut a, mut b) = alice_and_bob().await;
    a.send("<iq type='set' id='bl'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>").await;
    a.expect("id='bl'").await;
    b.send("<message to='alice@localhost/a' type='chat' id='m1'><body>let me talk</body></message>").await;
    let got = b.expect("</message>").await;
    assert!(got.contains("id='m1'") && got.contains("<service-unavailable"), "{got}");
    assert!(!a.drain(Duration::from_millis(300)).await.contains("let me talk"));
    a.send("<message to='bob@localhost/b' type='chat' id='m2'><body>hi</body></message>").await;
    let got = a.expect("</message>").await;
    assert!(got.contains("<not-acceptable") && got.contains("<blocked xmlns='urn:xmpp:blocking:errors'/>"), "{got}");
    a.send("<iq type='set' id='ub'><unblock xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></unblock></iq>")
        .await;
    a.expect("id='ub'").await;
    b.send("<message to='alice@localhost/a' type='chat' id='m3'><body>now?</body></message>").await;
    assert!(a.expect("</message>").await.contains("now?"));
}

/// XEP-0153 §4.1: the server adds the vCard avatar hash to presence.
#[tokio::test]
async fn avatar_hash_in_presence() {
    let srv = start_server().await;
    srv.register("alice", "pa");
    let mut watcher = TestClient::online(&srv, "alice", "pa", "w", 0).await;
    let mut a = TestClient::login(&srv, "alice", "pa", "a").await;
    a.send("<iq type='set' id='v1'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>aGVsbG8=</BINVAL></PHOTO></vCard></iq>").await;
    assert!(a.expect("id='v1'").await.contains("result"));
    a.send("<presence/>").await;
    let p = watcher.expect("</presence>").await;
    // sha1("hello")
    let hello = "<x xmlns='vcard-temp:x:update'><photo>aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d</photo></x>";
    assert!(p.contains(hello), "{p}");
    // The hash is cached per account (its sessions share it): the watcher,
    // whose own presence went out before the vCard existed, now carries it.
    watcher.send("<presence><show>away</show></presence>").await;
    a.expect("<show>away</show>").await;
    let p = a.expect("</presence>").await;
    assert!(p.contains(hello), "{p}");
    // A new vCard from the other resource replaces the cached hash at once.
    watcher
        .send("<iq type='set' id='v2'><vCard xmlns='vcard-temp'><PHOTO><BINVAL>aGk=</BINVAL></PHOTO></vCard></iq>")
        .await;
    assert!(watcher.expect("id='v2'").await.contains("result"));
    a.send("<presence><show>dnd</show></presence>").await;
    watcher.expect("<show>dnd</show>").await;
    let p = watcher.expect("</presence>").await;
    // sha1("hi")
    assert!(p.contains("<photo>c22b5f9178342609428d6f51b2c5af4c0bde6a42</photo>"), "{p}");
}

/// RFC 6121 §8.5.2.1.3: an iq to another local account's bare JID is
/// answered by the server on its behalf (here XEP-0054 vCard).
#[tokio::test]
async fn iq_to_another_bare_jid_is_answered_by_the_server() {
    let (_srv, mut a, mut b) = alice_and_bob().await;
    b.send("<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Bob B.</FN></vCard></iq>").await;
    b.expect_stanza("id='v1'").await;
    a.send("<iq to='bob@localhost' type='get' id='v2'><vCard xmlns='vcard-temp'/></iq>").await;
    let got = a.expect_stanza("id='v2'").await;
    assert!(
        got.contains("type='result'") && got.contains("<FN>Bob B.</FN>") && got.contains("from='bob@localhost'"),
        "{got}"
    );
    // Bob's own session is not bothered with it.
    assert!(!b.drain(Duration::from_millis(200)).await.contains("v2"));
    // Something no module handles gets service-unavailable.
    a.send("<iq to='bob@localhost' type='get' id='v3'><query xmlns='urn:example:x'/></iq>").await;
    assert!(a.expect_stanza("id='v3'").await.contains("<service-unavailable"));
}

/// Make `a` and `b` mutual `both` contacts directly in the store.
fn befriend(srv: &TestServer, a: &str, b: &str) {
    use xmppd::storage::{RosterItem, Subscription};
    for (u, c) in [(a, b), (b, a)] {
        let item = RosterItem {
            jid: format!("{c}@localhost"),
            subscription: Subscription::Both,
            visible: true,
            ..Default::default()
        };
        srv.shared.store.put_roster_item(u, "localhost", &item).unwrap();
    }
}

/// XEP-0191 §3.2/§3.3: a blocked subscriber sees the user go unavailable,
/// and gets the current presence again when unblocked.
#[tokio::test]
async fn blocking_a_subscriber_sends_unavailable() {
    let srv = start_server().await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    befriend(&srv, "alice", "bob");
    let mut b = TestClient::online(&srv, "bob", "pb", "b", 0).await;
    let mut a = TestClient::online(&srv, "alice", "pa", "a", 0).await;
    b.expect_stanza("from='alice@localhost/a'").await;
    a.send("<iq type='set' id='bl'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>").await;
    let p = b.expect_stanza("type='unavailable'").await;
    assert!(p.contains("from='alice@localhost/a'"), "{p}");
    // While blocked, presence updates do not reach bob.
    a.send("<presence><status>hidden</status></presence>").await;
    assert!(!b.drain(Duration::from_millis(300)).await.contains("hidden"));
    a.send("<iq type='set' id='ub'><unblock xmlns='urn:xmpp:blocking'/></iq>").await;
    let p = b.expect_stanza("from='alice@localhost/a'").await;
    assert!(p.contains("hidden") && !p.contains("unavailable"), "{p}");
}

/// RFC 6121 §3.4 pre-approval: a later request is approved at once.
#[tokio::test]
async fn pre_approved_subscription() {
    let (_srv, mut a, mut b) = alice_and_bob().await;
    roster_get(&mut a).await;
    roster_get(&mut b).await;
    a.send("<presence to='bob@localhost' type='subscribed'/>").await;
    let push = a.expect_stanza("<iq").await;
    assert!(push.contains("approved='true'") && push.contains("subscription='none'"), "{push}");
    b.send("<presence to='alice@localhost' type='subscribe'/>").await;
    // No request reaches alice; bob gets `subscribed` and alice's presence.
    assert!(b.expect_stanza("subscription='to'").await.contains("jid='alice@localhost'"));
    assert!(b.expect_stanza("<presence").await.contains("type='subscribed'"));
    assert!(b.expect_stanza("from='alice@localhost/a'").await.contains("<presence"));
    let push = a.expect_stanza("<iq").await;
    assert!(push.contains("subscription='from'") && !push.contains("approved"), "{push}");
}

/// RFC 6121 §3.2 cancel and §3.3 unsubscribe, with pushes and unavailable presence.
#[tokio::test]
async fn cancel_and_unsubscribe() {
    let srv = start_server().await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    befriend(&srv, "alice", "bob");
    let mut b = TestClient::online(&srv, "bob", "pb", "b", 0).await;
    let mut a = TestClient::online(&srv, "alice", "pa", "a", 0).await;
    b.expect_stanza("from='alice@localhost/a'").await;
    roster_get(&mut a).await;
    roster_get(&mut b).await;
    // Alice cancels bob's subscription to her: bob sees her go unavailable.
    a.send("<presence to='bob@localhost' type='unsubscribed'/>").await;
    assert!(a.expect_stanza("<iq").await.contains("subscription='to'"));
    assert!(b.expect_stanza("<iq").await.contains("subscription='from'"));
    b.expect_stanza("type='unsubscribed'").await;
    assert!(b.expect_stanza("type='unavailable'").await.contains("from='alice@localhost/a'"));
    // Alice unsubscribes from bob's presence: both end at none.
    a.send("<presence to='bob@localhost' type='unsubscribe'/>").await;
    assert!(a.expect_stanza("<iq").await.contains("subscription='none'"));
    assert!(b.expect_stanza("<iq").await.contains("subscription='none'"));
}

/// RFC 6121 §4.6: directed presence is remembered; the recipient gets
/// unavailable presence when the sender goes offline.
#[tokio::test]
async fn directed_presence_is_cleaned_up() {
    let (_srv, mut a, mut b) = alice_and_bob().await;
    a.send("<presence to='bob@localhost/b'><show>chat</show></presence>").await;
    assert!(b.expect_stanza("<show>chat</show>").await.contains("from='alice@localhost/a'"));
    drop(a); // a dropped connection (§4.5.3): the server generates the unavailable
    let p = b.expect_stanza("type='unavailable'").await;
    assert!(p.contains("from='alice@localhost/a'"), "{p}");
}

/// RFC 6121 §2.3.3: the configured roster size limit.
#[tokio::test]
async fn roster_size_limit() {
    let srv = start_server_with("[im]\nmax_roster_items = 2").await;
    srv.register("alice", "pa");
    let mut a = TestClient::online(&srv, "alice", "pa", "a", 0).await;
    for (i, id) in ["s1", "s2", "s3"].iter().enumerate() {
        a.send(&format!(
            "<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'><item jid='c{i}@localhost'/></query></iq>"
        ))
        .await;
    }
    assert!(a.expect_stanza("id='s3'").await.contains("<not-allowed"));
}

/// XEP-0160 / RFC 6121 §8.5.2.2.1: a message stored offline in the instant
/// its recipient became available (the router saw no available resource, the
/// session then read an empty store) is not left in storage: the store wakes
/// the available session, which delivers it with its delay stamp.
#[tokio::test]
async fn message_stored_after_initial_presence_is_delivered() {
    let srv = start_server().await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let mut b = TestClient::online(&srv, "bob", "pb", "phone", 0).await;
    // What a sender's task does when it lost that race.
    let stanza =
        "<message from='alice@localhost/x' to='bob@localhost' type='chat' id='late'><body>raced</body></message>";
    let bob = xmppd::jid::Jid::parse("bob@localhost").unwrap();
    xmppd::im::offline::store(&srv.shared, &bob, stanza.as_bytes()).unwrap();
    let got = b.expect_stanza("id='late'").await;
    assert!(got.contains("raced") && got.contains("urn:xmpp:delay"), "{got}");
    for _ in 0..50 {
        if srv.shared.store.offline("bob", "localhost").unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(srv.shared.store.offline("bob", "localhost").unwrap().is_empty(), "left in storage");
    srv.stop().await;
}
