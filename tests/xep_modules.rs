//! Server modules over raw XML: XEP-0054/0153 vCard, XEP-0049 private
//! storage, XEP-0012 last activity, XEP-0202 time, XEP-0077 registration,
//! XEP-0191 blocking. Requests to another account's bare JID are also made
//! by calling the module table directly (what c2s does for such iqs), so the
//! modules' access rules are tested whatever the routing does.

mod common;

use common::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xmppd::jid::Jid;
use xmppd::modules::{blocking, last, register, vcard, Ctx, IqAnswer, IqRequest};
use xmppd::session::SessionHandle;
use xmppd::stanza::StanzaError;
use xmppd::storage::{RosterItem, Subscription};
use xmppd::xml::{ns, Element};

/// Send an iq (with an `id`) and return everything received up to the
/// answer to a ping sent right after it (so the iq's answer is included).
async fn iq(c: &mut TestClient, xml: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    c.send(xml).await;
    c.send(&format!("<iq type='get' id='sync{n}'><ping xmlns='urn:xmpp:ping'/></iq>")).await;
    let got = c.expect(&format!("id='sync{n}'")).await;
    c.expect("/>").await;
    got
}

/// `seen` if it already holds `pat` (a push that arrived before the iq's
/// sync answer), else what arrives up to `pat`.
async fn until(c: &mut TestClient, seen: String, pat: &str) -> String {
    if seen.contains(pat) {
        seen
    } else {
        c.expect(pat).await
    }
}

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes(), ns::CLIENT).unwrap()
}

fn j(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

fn session(srv: &TestServer, full: &str) -> Arc<SessionHandle> {
    let full = j(full);
    srv.shared.router.sessions_of(&full).into_iter().find(|s| s.jid == full).expect("session bound")
}

/// An iq from `from`'s session to `to`, through the module table.
fn call(srv: &TestServer, from: &str, to: &str, set: bool, payload: &str) -> IqAnswer {
    let s = session(srv, from);
    let (to, payload) = (j(to), el(payload));
    let ctx = Ctx { shared: &srv.shared, session: &s };
    srv.shared.modules.handle(&IqRequest { from: &s.jid, to: &to, set, payload: &payload }, &ctx)
}

async fn wait_offline(srv: &TestServer, bare: &str) {
    for _ in 0..200 {
        if srv.shared.router.sessions_of(&j(bare)).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{bare} still has sessions");
}

/// XEP-0030: every module's feature is listed.
#[tokio::test]
async fn features_listed() {
    let srv = start_server().await;
    srv.register("alice", "password1");
    let mut a = TestClient::online(&srv, "alice", "password1", "r", 0).await;
    let got =
        iq(&mut a, "<iq to='localhost' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
            .await;
    for f in [
        "vcard-temp",
        "jabber:iq:private",
        "jabber:iq:last",
        "urn:xmpp:time",
        "jabber:iq:register",
        "urn:xmpp:blocking",
    ] {
        assert!(got.contains(&format!("<feature var='{f}'/>")), "{f}: {got}");
    }
    srv.stop().await;
}

/// XEP-0054 §3.1–§3.3 and XEP-0153's stored hash.
#[tokio::test]
async fn vcard_own_and_other() {
    let srv = start_server().await;
    srv.register("alice", "password1");
    srv.register("bob", "password2");
    let mut a = TestClient::online(&srv, "alice", "password1", "r", 0).await;
    let _b = TestClient::online(&srv, "bob", "password2", "r", 0).await;

    // §3.1: none stored yet: the empty element.
    let got = iq(&mut a, "<iq type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>").await;
    assert!(got.contains("type='result' id='v1'") && got.contains("<vCard xmlns='vcard-temp'/>"), "{got}");
    assert_eq!(vcard::avatar_hash(&srv.shared, "alice", "localhost"), None);

    // §3.2: set (PHOTO is "abc" in base64).
    let got = iq(
        &mut a,
        "<iq type='set' id='v2'><vCard xmlns='vcard-temp'><FN>Alice &amp; Co</FN>\
         <PHOTO><TYPE>image/png</TYPE><BINVAL>YWJj</BINVAL></PHOTO></vCard></iq>",
    )
    .await;
    assert!(got.contains("type='result' id='v2'"), "{got}");
    let got = iq(&mut a, "<iq to='alice@localhost' type='get' id='v3'><vCard xmlns='vcard-temp'/></iq>").await;
    assert!(got.contains("type='result' id='v3'") && got.contains("<FN>Alice &amp; Co</FN>"), "{got}");
    assert!(got.contains("<BINVAL>YWJj</BINVAL>"), "{got}");
    // XEP-0153: SHA-1 of the decoded image.
    assert_eq!(
        vcard::avatar_hash(&srv.shared, "alice", "localhost").as_deref(),
        Some("a9993e364706816aba3e25717850c26c9cd0d89d")
    );

    // §3.3: another user's vCard, answered by the server.
    let v = call(&srv, "bob@localhost/r", "alice@localhost", false, "<vCard xmlns='vcard-temp'/>").unwrap().unwrap();
    assert_eq!(v.child("FN", vcard::NS).unwrap().text(), "Alice & Co");
    // No vCard and no account: the same service-unavailable.
    for to in ["bob@localhost", "nobody@localhost"] {
        let r = call(&srv, "alice@localhost/r", to, false, "<vCard xmlns='vcard-temp'/>");
        assert_eq!(r, Err(StanzaError::ServiceUnavailable), "{to}");
    }
    // §3.2: setting someone else's is forbidden.
    let r = call(&srv, "bob@localhost/r", "alice@localhost", true, "<vCard xmlns='vcard-temp'><FN>x</FN></vCard>");
    assert_eq!(r, Err(StanzaError::Forbidden));

    // A vCard without a photo resets the hash to "".
    let got = iq(&mut a, "<iq type='set' id='v4'><vCard xmlns='vcard-temp'><FN>A</FN></vCard></iq>").await;
    assert!(got.contains("type='result' id='v4'"), "{got}");
    assert_eq!(vcard::avatar_hash(&srv.shared, "alice", "localhost").as_deref(), Some(""));

    // Beyond the size bound: not-acceptable, and the stored one is kept.
    let big = "x".repeat(vcard::MAX_VCARD_BYTES);
    let got =
        iq(&mut a, &format!("<iq type='set' id='v5'><vCard xmlns='vcard-temp'><DESC>{big}</DESC></vCard></iq>")).await;
    assert!(got.contains("type='error' id='v5'") && got.contains("<not-acceptable "), "{got}");
    let got = iq(&mut a, "<iq type='get' id='v6'><vCard xmlns='vcard-temp'/></iq>").await;
    assert!(got.contains("<FN>A</FN>"), "{got}");
    srv.stop().await;
}

/// XEP-0049 §2.3.
#[tokio::test]
async fn private_storage() {
    let srv = start_server().await;
    srv.register("alice", "password1");
    srv.register("bob", "password2");
    let mut a = TestClient::online(&srv, "alice", "password1", "r", 0).await;
    let _b = TestClient::online(&srv, "bob", "password2", "r", 0).await;

    let got = iq(
        &mut a,
        "<iq type='set' id='p1'><query xmlns='jabber:iq:private'>\
         <exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus></query></iq>",
    )
    .await;
    assert!(got.contains("type='result' id='p1'"), "{got}");
    let got = iq(
        &mut a,
        "<iq type='get' id='p2'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>",
    )
    .await;
    assert!(
        got.contains(
            "<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus></query>"
        ),
        "{got}"
    );
    // Nothing stored for a namespace: the element as queried.
    let got =
        iq(&mut a, "<iq type='get' id='p3'><query xmlns='jabber:iq:private'><s xmlns='storage:none'/></query></iq>")
            .await;
    assert!(got.contains("type='result' id='p3'") && got.contains("<s xmlns='storage:none'/>"), "{got}");
    // Reserved namespaces and a missing child: not-acceptable.
    for (id, inner) in [
        ("p4", "<message xmlns='jabber:client'/>"),
        ("p5", "<nons/>"),
        ("p6", "<x xmlns='jabber:server'/>"),
        ("p7", ""),
        ("p8", "<e xmlns=''/>"),
    ] {
        let got =
            iq(&mut a, &format!("<iq type='set' id='{id}'><query xmlns='jabber:iq:private'>{inner}</query></iq>"))
                .await;
        assert!(got.contains(&format!("type='error' id='{id}'")) && got.contains("<not-acceptable "), "{id}: {got}");
    }
    // Another user's data: forbidden.
    let r = call(
        &srv,
        "bob@localhost/r",
        "alice@localhost",
        false,
        "<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query>",
    );
    assert_eq!(r, Err(StanzaError::Forbidden));
    // Bob's own storage is separate.
    let r = call(
        &srv,
        "bob@localhost/r",
        "bob@localhost",
        false,
        "<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query>",
    );
    assert_eq!(
        r.unwrap().unwrap().to_client_string(),
        "<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query>"
    );
    srv.stop().await;
}

/// XEP-0012 §3 and §5.
#[tokio::test]
async fn last_activity() {
    let srv = start_server().await;
    srv.register("alice", "password1");
    srv.register("bob", "password2");
    srv.register("carol", "password3");
    let mut a = TestClient::online(&srv, "alice", "password1", "r", 0).await;

    // §5: server uptime.
    let got = iq(&mut a, "<iq to='localhost' type='get' id='l1'><query xmlns='jabber:iq:last'/></iq>").await;
    assert!(got.contains("type='result' id='l1'") && got.contains("<query xmlns='jabber:iq:last' seconds='"), "{got}");

    // Bob online; Alice has no subscription to him yet: forbidden.
    let mut b = TestClient::online(&srv, "bob", "password2", "r", 0).await;
    let q = "<query xmlns='jabber:iq:last'/>";
    assert_eq!(call(&srv, "alice@localhost/r", "bob@localhost", false, q), Err(StanzaError::Forbidden));
    for user in ["bob", "carol"] {
        let item = RosterItem {
            jid: "alice@localhost".into(),
            subscription: Subscription::From,
            visible: true,
            ..Default::default()
        };
        srv.shared.store.put_roster_item(user, "localhost", &item).unwrap();
    }
    // §3: a connected resource: 0.
    let r = call(&srv, "alice@localhost/r", "bob@localhost", false, q).unwrap().unwrap();
    assert_eq!(r.to_client_string(), "<query xmlns='jabber:iq:last' seconds='0'/>");
    // Bob logs out (the presence code records it; here directly).
    b.send("</stream:stream>").await;
    wait_offline(&srv, "bob@localhost").await;
    last::record_logout(&srv.shared, "bob", "localhost", Some("Heading Home"));
    let r = call(&srv, "alice@localhost/r", "bob@localhost", false, q).unwrap().unwrap();
    assert!(r.attr("seconds").unwrap().parse::<u64>().unwrap() <= 2, "{r:?}");
    assert_eq!(r.text(), "Heading Home");
    // Never logged out: nothing recorded.
    assert_eq!(call(&srv, "alice@localhost/r", "carol@localhost", false, q), Err(StanzaError::ItemNotFound));
    // No such account: no roster item either, forbidden like any stranger.
    assert_eq!(call(&srv, "alice@localhost/r", "nobody@localhost", false, q), Err(StanzaError::Forbidden));
    // One's own account: connected, 0.
    let got = iq(&mut a, "<iq type='get' id='l2'><query xmlns='jabber:iq:last'/></iq>").await;
    assert!(got.contains("seconds='0'"), "{got}");
    srv.stop().await;
}

/// XEP-0202 §3–§4.
#[tokio::test]
async fn entity_time() {
    let srv = start_server().await;
    srv.register("alice", "password1");
    let mut a = TestClient::online(&srv, "alice", "password1", "r", 0).await;
    let got = iq(&mut a, "<iq to='localhost' type='get' id='t1'><time xmlns='urn:xmpp:time'/></iq>").await;
    assert!(got.contains("type='result' id='t1'") && got.contains("<tzo>+00:00</tzo><utc>"), "{got}");
    let utc = between(&got, "<utc>", "</utc>");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // The same instant, formatted independently, may be at most 5 s apart.
    assert!((0..5).any(|d| xmppd::modules::time::format_utc(now - d) == utc), "{utc}");
    assert_eq!(utc.len(), 20);
    srv.stop().await;
}

/// XEP-0077 §3.1 (registered), §3.3 password change.
#[tokio::test]
async fn password_change() {
    let srv = start_server().await;
    srv.register("alice", "password1");
    let mut a = TestClient::online(&srv, "alice", "password1", "r", 0).await;
    let got = iq(&mut a, "<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>").await;
    assert!(got.contains("<registered/><username>alice</username><password/>"), "{got}");
    // Too short: not-acceptable; another user's name: forbidden.
    let got = iq(
        &mut a,
        "<iq type='set' id='r2'><query xmlns='jabber:iq:register'><username>alice</username><password>abc</password></query></iq>",
    )
    .await;
    assert!(got.contains("type='error' id='r2'") && got.contains("<not-acceptable "), "{got}");
    let got = iq(
        &mut a,
        "<iq type='set' id='r3'><query xmlns='jabber:iq:register'><username>bob</username><password>newsecret</password></query></iq>",
    )
    .await;
    assert!(got.contains("type='error' id='r3'") && got.contains("<forbidden "), "{got}");
    let got = iq(
        &mut a,
        "<iq type='set' to='localhost' id='r4'><query xmlns='jabber:iq:register'>\
         <username>alice</username><password>newsecret</password></query></iq>",
    )
    .await;
    assert!(got.contains("type='result' id='r4'"), "{got}");
    // The session goes on.
    let got = iq(&mut a, "<iq type='get' id='r5'><vCard xmlns='vcard-temp'/></iq>").await;
    assert!(got.contains("type='result' id='r5'"), "{got}");
    // The old password no longer works, the new one does.
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    assert!(c.scram("SCRAM-SHA-256", "alice", "password1").await.is_err());
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    c.scram("SCRAM-SHA-1", "alice", "newsecret").await.unwrap();
    let _ = TestClient::login(&srv, "alice", "newsecret", "r2").await;
    srv.stop().await;
}

/// XEP-0077 §3.2: cancellation removes the account and closes its sessions.
#[tokio::test]
async fn account_removal() {
    let srv = start_server().await;
    srv.register("carol", "password3");
    let mut c1 = TestClient::online(&srv, "carol", "password3", "one", 0).await;
    let mut c2 = TestClient::online(&srv, "carol", "password3", "two", 0).await;
    // <remove/> must be the only child.
    let got = iq(
        &mut c1,
        "<iq type='set' id='u0'><query xmlns='jabber:iq:register'><remove/><username>carol</username></query></iq>",
    )
    .await;
    assert!(got.contains("type='error' id='u0'") && got.contains("<bad-request "), "{got}");
    c1.send("<iq type='set' id='u1'><query xmlns='jabber:iq:register'><remove/></query></iq>").await;
    let got = c1.expect_closed().await;
    let result = got.find("type='result' id='u1'").unwrap_or_else(|| panic!("{got}"));
    let error =
        got.find("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>").unwrap_or_else(|| panic!("{got}"));
    assert!(result < error && got.contains("account removed"), "{got}");
    let got = c2.expect_closed().await;
    assert!(got.contains("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"), "{got}");
    assert!(srv.shared.store.get_credentials("carol", "localhost").unwrap().is_none());
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    assert!(c.scram("SCRAM-SHA-256", "carol", "password3").await.is_err());
    srv.stop().await;
}

fn reg(srv: &TestServer, ip: &str, xml: &str) -> String {
    register::unauthenticated(&srv.shared, ip.parse().unwrap(), "localhost", &el(xml)).to_client_string()
}

/// XEP-0077 §3.1 before authentication, as c2s calls it.
#[tokio::test]
async fn inband_registration() {
    let get = "<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>";
    let set = |u: &str, p: &str| {
        format!("<iq type='set' id='s'><query xmlns='jabber:iq:register'><username>{u}</username><password>{p}</password></query></iq>")
    };
    // Off by default: service-unavailable for get and set, no stream feature.
    let srv = start_server().await;
    let unavailable = "<iq id='g' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>";
    assert_eq!(reg(&srv, "127.0.0.1", get), unavailable);
    assert!(reg(&srv, "127.0.0.1", &set("dave", "secret99")).contains("<service-unavailable "));
    assert!(register::stream_feature(&srv.shared, "127.0.0.1".parse().unwrap(), "localhost").is_none());
    assert!(srv.shared.store.get_credentials("dave", "localhost").unwrap().is_none());
    srv.stop().await;

    let srv = start_server_with("[registration]\nenabled = true\nmin_password_length = 8").await;
    assert_eq!(
        register::stream_feature(&srv.shared, "127.0.0.1".parse().unwrap(), "localhost").as_deref(),
        Some("<register xmlns='http://jabber.org/features/iq-register'/>")
    );
    assert_eq!(
        reg(&srv, "127.0.0.1", get),
        "<iq id='g' type='result'><query xmlns='jabber:iq:register'><instructions>Choose a username and password \
         to register with this server.</instructions><username/><password/></query></iq>"
    );
    assert_eq!(reg(&srv, "127.0.0.1", &set("Dave", "secret99")), "<iq id='s' type='result'/>");
    let _ = TestClient::login(&srv, "dave", "secret99", "r").await;
    for (u, p, cond) in [
        ("dave", "secret99", "conflict"),
        ("erin", "short", "not-acceptable"),
        ("", "secret99", "not-acceptable"),
        ("erin", "", "not-acceptable"),
        ("er in", "secret99", "jid-malformed"),
    ] {
        let got = reg(&srv, "127.0.0.1", &set(u, p));
        assert!(got.contains("type='error'") && got.contains(&format!("<{cond} ")), "{u}/{p}: {got}");
    }
    let got = reg(&srv, "127.0.0.1", "<iq type='set' id='x'><query xmlns='jabber:iq:register'><remove/></query></iq>");
    assert!(got.contains("<unexpected-request "), "{got}");
    // Rate limit: registration.max_per_ip (default 5) per IP address per window.
    for i in 0..5 {
        assert_eq!(reg(&srv, "10.9.9.9", &set(&format!("bulk{i}"), "secret99")), "<iq id='s' type='result'/>");
    }
    let got = reg(&srv, "10.9.9.9", &set("bulkmore", "secret99"));
    assert!(got.contains("<resource-constraint "), "{got}");
    assert!(srv.shared.store.get_credentials("bulkmore", "localhost").unwrap().is_none());
    assert_eq!(reg(&srv, "10.9.9.10", &set("bulkmore", "secret99")), "<iq id='s' type='result'/>");
    srv.stop().await;

    // allow_from restricts who may register.
    let srv = start_server_with("[registration]\nenabled = true\nallow_from = [\"10.0.0.0/8\"]").await;
    assert!(register::stream_feature(&srv.shared, "192.168.1.1".parse().unwrap(), "localhost").is_none());
    assert!(register::stream_feature(&srv.shared, "10.1.2.3".parse().unwrap(), "localhost").is_some());
    assert_eq!(reg(&srv, "192.168.1.1", get), unavailable);
    assert_eq!(reg(&srv, "10.1.2.3", &set("frank", "secret99")), "<iq id='s' type='result'/>");
    srv.stop().await;

    // max_per_ip = 0: no limit (a load test registering its users in-band).
    let srv = start_server_with("[registration]\nenabled = true\nmax_per_ip = 0").await;
    for i in 0..8 {
        assert_eq!(reg(&srv, "10.7.7.7", &set(&format!("load{i}"), "secret99")), "<iq id='s' type='result'/>");
    }
    srv.stop().await;
    // ... or another number per window.
    let srv = start_server_with("[registration]\nenabled = true\nmax_per_ip = 2\nip_window_secs = 3600").await;
    for i in 0..2 {
        assert_eq!(reg(&srv, "10.7.7.8", &set(&format!("two{i}"), "secret99")), "<iq id='s' type='result'/>");
    }
    assert!(reg(&srv, "10.7.7.8", &set("two2", "secret99")).contains("<resource-constraint "));
    // Loopback is in limits.exempt_networks by default (a local gateway
    // puts every client there): no per-address limit.
    for i in 0..3 {
        assert_eq!(reg(&srv, "127.0.0.1", &set(&format!("local{i}"), "secret99")), "<iq id='s' type='result'/>");
    }
    srv.stop().await;
}

/// XEP-0191 §3.1–§3.4 and §5 matching.
#[tokio::test]
async fn blocking_command() {
    let srv = start_server().await;
    srv.register("alice", "password1");
    let mut a1 = TestClient::online(&srv, "alice", "password1", "one", 0).await;
    let mut a2 = TestClient::online(&srv, "alice", "password1", "two", 0).await;
    let alice = j("alice@localhost");
    let bl = &srv.shared.blocklists;

    // §3.1: empty list; a1 now receives pushes, a2 has not asked.
    let got = iq(&mut a1, "<iq type='get' id='b1'><blocklist xmlns='urn:xmpp:blocking'/></iq>").await;
    assert!(got.contains("type='result' id='b1'") && got.contains("<blocklist xmlns='urn:xmpp:blocking'/>"), "{got}");

    // §3.2: block two JIDs.
    let got = iq(
        &mut a1,
        "<iq type='set' id='b2'><block xmlns='urn:xmpp:blocking'><item jid='Romeo@Montague.net'/><item jid='evil.example'/></block></iq>",
    )
    .await;
    assert!(got.contains("type='result' id='b2'"), "{got}");
    let push = until(&mut a1, got, "</block>").await;
    assert!(
        push.contains("type='set'")
            && push.contains("to='alice@localhost/one'")
            && push.contains(
                "<block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/><item jid='evil.example'/></block>"
            ),
        "{push}"
    );
    let quiet = a2.drain(Duration::from_millis(300)).await;
    assert!(!quiet.contains("urn:xmpp:blocking"), "a2 did not request the list: {quiet}");
    assert!(bl.is_blocked(&srv.shared, &alice, &j("romeo@montague.net/orchard")));
    assert!(bl.is_blocked(&srv.shared, &alice, &j("anyone@evil.example/x")));
    assert!(!bl.is_blocked(&srv.shared, &alice, &j("juliet@capulet.lit")));
    assert!(!bl.is_blocked(&srv.shared, &alice, &j("alice@localhost/two")), "own resources are never blocked");
    // Stored, and read back after the cache is dropped.
    assert_eq!(
        srv.shared.store.get_data("alice", "localhost", "blocklist").unwrap().as_deref(),
        Some("romeo@montague.net\nevil.example")
    );
    bl.forget(&alice);
    assert!(bl.is_blocked(&srv.shared, &alice, &j("romeo@montague.net")));

    // §3.2: no item is bad-request; a malformed JID is jid-malformed.
    let got = iq(&mut a2, "<iq type='set' id='b3'><block xmlns='urn:xmpp:blocking'/></iq>").await;
    assert!(got.contains("type='error' id='b3'") && got.contains("<bad-request "), "{got}");
    let got =
        iq(&mut a2, "<iq type='set' id='b4'><block xmlns='urn:xmpp:blocking'><item jid='a@'/></block></iq>").await;
    assert!(got.contains("type='error' id='b4'") && got.contains("<jid-malformed "), "{got}");

    // a2 asks too (forget dropped the requested set, so a1 asks again).
    let got = iq(&mut a2, "<iq type='get' id='b5'><blocklist xmlns='urn:xmpp:blocking'/></iq>").await;
    assert!(
        got.contains("<blocklist xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/><item jid='evil.example'/></blocklist>"),
        "{got}"
    );
    iq(&mut a1, "<iq type='get' id='b6'><blocklist xmlns='urn:xmpp:blocking'/></iq>").await;

    // §3.3: unblock one; both resources get the push.
    let got = iq(
        &mut a2,
        "<iq type='set' id='b7'><unblock xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></unblock></iq>",
    )
    .await;
    assert!(got.contains("type='result' id='b7'"), "{got}");
    for push in [until(&mut a1, String::new(), "</unblock>").await, until(&mut a2, got, "</unblock>").await] {
        assert!(push.contains("<unblock xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/>"), "{push}");
    }
    assert!(!bl.is_blocked(&srv.shared, &alice, &j("romeo@montague.net/orchard")));
    assert!(bl.is_blocked(&srv.shared, &alice, &j("evil.example")));

    // §3.4: unblock all.
    let got = iq(&mut a1, "<iq type='set' id='b8'><unblock xmlns='urn:xmpp:blocking'/></iq>").await;
    assert!(got.contains("type='result' id='b8'"), "{got}");
    until(&mut a1, got, "<unblock xmlns='urn:xmpp:blocking'/>").await;
    until(&mut a2, String::new(), "<unblock xmlns='urn:xmpp:blocking'/>").await;
    assert!(!bl.is_blocked(&srv.shared, &alice, &j("evil.example")));
    assert_eq!(srv.shared.store.get_data("alice", "localhost", "blocklist").unwrap(), None);

    // The error routing code attaches to outbound stanzas to a blocked JID.
    assert!(blocking::blocked_error().to_client_string().contains("<blocked xmlns='urn:xmpp:blocking:errors'/>"));
    srv.stop().await;
}
