//! Durability (issue 5 item 7) with the real binary: what the server
//! acknowledged is committed to its store before the acknowledgement, and
//! survives `kill -9`. Acknowledgements checked: `xmppd ctl register`'s
//! exit status, the roster-set result and push (RFC 6121 §2.3.2, §2.1.6),
//! the roster push of a subscription state change (RFC 6121 §3.1.2-§3.1.5),
//! and for offline messages the answer to a ping sent after them: a server
//! processes one stream's stanzas in order (RFC 6120 §10.1), so the pong
//! means the messages before it were handled (stored, XEP-0160 §3).
//!
//! Right after each acknowledgement the test reads the store through its
//! own SQLite connection: a server that acknowledged before committing (a
//! queued write) fails there deterministically, and the `kill -9` without
//! any pause after the last acknowledgement catches one that committed
//! only in memory.

mod common;
use common::daemon::{ctl, spawn, store, Daemon};
use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xmppd::storage::{OfflineStore, RosterStore, Subscription};

const PING: &str = "<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>";

/// Logged in, available, and an interested resource (RFC 6121 §2.1.6:
/// roster pushes go to resources that requested the roster).
async fn online(d: &Daemon, user: &str, pass: &str) -> TestClient {
    let mut c = d.login(user, pass, "r").await;
    c.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>").await;
    c.expect_stanza("id='roster'").await;
    c.send("<presence/>").await;
    c.send(PING).await;
    c.expect_stanza("id='sync'").await;
    c
}

fn sub_of(dir: &std::path::Path, user: &str, contact: &str) -> Option<(Subscription, bool)> {
    let item = store(dir).roster_item(user, "localhost", contact).unwrap()?;
    Some((item.subscription, item.ask_out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_subscriptions_and_accounts_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let port = common::daemon::free_port();
    let d = spawn(dir, port);
    // Accounts created through the admin socket while the daemon runs.
    for (u, p) in [("alice", "pa"), ("bob", "pb"), ("dave", "pd")] {
        assert_eq!(ctl(dir, &["register", u, "localhost", p]), 0);
    }
    let mut a = online(&d, "alice", "pa").await;
    let mut b = online(&d, "bob", "pb").await;

    // RFC 6121 §2.3: roster set, acknowledged by the result (and the push).
    a.send(
        "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'>\
         <group>Friends</group></item></query></iq>",
    )
    .await;
    a.expect_stanza("id='r1'").await;
    let item = store(dir).roster_item("alice", "localhost", "bob@localhost").unwrap().expect("acked, not stored");
    assert_eq!((item.name.as_deref(), &item.groups[..]), (Some("Bob"), &["Friends".to_string()][..]));
    // Add then remove (§2.5): the removal is what must survive.
    a.send("<iq type='set' id='r2'><query xmlns='jabber:iq:roster'><item jid='carol@localhost'/></query></iq>").await;
    a.expect_stanza("id='r2'").await;
    a.send(
        "<iq type='set' id='r3'><query xmlns='jabber:iq:roster'>\
         <item jid='carol@localhost' subscription='remove'/></query></iq>",
    )
    .await;
    a.expect_stanza("id='r3'").await;
    assert!(store(dir).roster_item("alice", "localhost", "carol@localhost").unwrap().is_none());

    // RFC 6121 §3.1: subscribe / subscribed both ways, each state change
    // acknowledged to its owner by a roster push.
    a.send("<presence to='bob@localhost' type='subscribe'/>").await;
    a.expect_stanza("ask='subscribe'").await;
    assert_eq!(sub_of(dir, "alice", "bob@localhost"), Some((Subscription::None, true)));
    b.expect_stanza("type='subscribe'").await;
    b.send("<presence to='alice@localhost' type='subscribed'/>").await;
    b.expect_stanza("subscription='from'").await;
    assert_eq!(sub_of(dir, "bob", "alice@localhost").map(|s| s.0), Some(Subscription::From));
    a.expect_stanza("subscription='to'").await;
    assert_eq!(sub_of(dir, "alice", "bob@localhost"), Some((Subscription::To, false)));
    b.send("<presence to='alice@localhost' type='subscribe'/>").await;
    a.expect_stanza("type='subscribe'").await;
    a.send("<presence to='bob@localhost' type='subscribed'/>").await;
    a.expect_stanza("subscription='both'").await;
    b.expect_stanza("subscription='both'").await;
    // A request to an offline contact (§3.1.3): pending on both sides.
    a.send("<presence to='dave@localhost' type='subscribe'/>").await;
    a.expect_stanza("jid='dave@localhost'").await;
    assert_eq!(sub_of(dir, "alice", "dave@localhost"), Some((Subscription::None, true)));
    assert!(store(dir).roster_item("dave", "localhost", "alice@localhost").unwrap().is_some_and(|i| i.pending_in));

    // An account created just before the kill, nothing in between.
    assert_eq!(ctl(dir, &["register", "erin", "localhost", "pe"]), 0);
    d.kill9();
    drop((a, b));

    let d = spawn(dir, port);
    let mut a = d.login("alice", "pa", "r").await;
    a.send("<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>").await;
    let r = a.expect_stanza("id='g'").await;
    let bob = between(&r, "<item jid='bob@localhost'", "</item>");
    assert!(bob.contains("name='Bob'") && bob.contains("subscription='both'"), "{r}");
    assert!(bob.contains("<group>Friends</group>"), "{r}");
    assert!(!r.contains("carol@localhost"), "removed item came back: {r}");
    assert!(r.contains("jid='dave@localhost'") && r.contains("ask='subscribe'"), "{r}");
    let mut b = d.login("bob", "pb", "r").await;
    b.send("<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>").await;
    let r = b.expect_stanza("id='g'").await;
    assert!(r.contains("jid='alice@localhost'") && r.contains("subscription='both'"), "{r}");
    // §3.1.3: dave gets the stored request at his initial presence.
    let mut dv = d.login("dave", "pd", "r").await;
    dv.send("<presence/>").await;
    let req = dv.expect_stanza("type='subscribe'").await;
    assert!(req.contains("from='alice@localhost'"), "{req}");
    d.login("erin", "pe", "r").await;
    d.kill9();
}

/// One sender: `total` messages to offline bob, a ping after every fifth;
/// `acked` counts the messages a pong has acknowledged.
async fn sender(mut c: TestClient, name: &'static str, total: usize, acked: Arc<AtomicUsize>) {
    for i in 0..total {
        c.send(&format!("<message to='bob@localhost' type='chat'><body>{name}-{i}</body></message>")).await;
        if i % 5 == 4 {
            c.send(&format!("<iq type='get' id='{name}{i}'><ping xmlns='urn:xmpp:ping'/></iq>")).await;
            c.expect_stanza(&format!("id='{name}{i}'")).await;
            acked.store(i + 1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_from_several_senders_survive_kill_9() {
    const SENDERS: [&str; 3] = ["s1", "s2", "s3"];
    // Below the default offline limit (500), so no message is refused.
    const TOTAL: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let port = common::daemon::free_port();
    let d = spawn(dir, port);
    assert_eq!(ctl(dir, &["register", "bob", "localhost", "pb"]), 0);
    let mut tasks = Vec::new();
    let mut acked = Vec::new();
    for s in SENDERS {
        assert_eq!(ctl(dir, &["register", s, "localhost", "ps"]), 0);
        let c = online(&d, s, "ps").await;
        let n = Arc::new(AtomicUsize::new(0));
        acked.push(n.clone());
        tasks.push(tokio::spawn(sender(c, s, TOTAL, n)));
    }
    // Kill while all three are still sending, once each has acks.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.iter().any(|n| n.load(Ordering::SeqCst) < 20) {
        assert!(tokio::time::Instant::now() < deadline, "senders too slow");
        assert!(tasks.iter().all(|t| !t.is_finished()), "a sender finished before the kill");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let snapshot: Vec<usize> = acked.iter().map(|n| n.load(Ordering::SeqCst)).collect();
    // What was acknowledged is committed (read from a separate connection).
    let stored: Vec<String> = store(dir).offline("bob", "localhost").unwrap().into_iter().map(|m| m.stanza).collect();
    for (s, n) in SENDERS.iter().zip(&snapshot) {
        for i in 0..*n {
            let body = format!("<body>{s}-{i}</body>");
            assert!(stored.iter().any(|m| m.contains(&body)), "{s}-{i} acknowledged, not stored");
        }
    }
    d.kill9();
    for t in &tasks {
        t.abort();
    }
    let at_kill: Vec<usize> = acked.iter().map(|n| n.load(Ordering::SeqCst)).collect();

    let d = spawn(dir, port);
    let count = store(dir).count_offline("bob", "localhost").unwrap() as usize;
    let mut b = d.login("bob", "pb", "r").await;
    b.send("<presence/>").await;
    let mut next = [0usize; 3];
    for _ in 0..count {
        let m = b.expect_stanza("<body>").await;
        assert!(m.contains("Offline Storage"), "XEP-0203 delay missing: {m}");
        let body = between(&m, "<body>", "</body>");
        let (s, i) = body.split_once('-').unwrap();
        let k = SENDERS.iter().position(|x| *x == s).unwrap();
        // Per sender: in order, no gap, no duplicate (RFC 6120 §10.1).
        assert_eq!(i.parse::<usize>().unwrap(), next[k], "{body} out of order");
        next[k] += 1;
    }
    for k in 0..SENDERS.len() {
        assert!(next[k] >= at_kill[k], "{}: {} acknowledged, {} after restart", SENDERS[k], at_kill[k], next[k]);
    }
    d.kill9();
}
