//! Tests of the roster, offline and user-data stores (`im.rs`).

use std::collections::HashSet;
use std::sync::Arc;
use std::thread;

use super::*;
use crate::storage::{AccountStore, Credentials, ScramKeys};

pub(crate) const H: &str = "example.com";

fn creds() -> Credentials {
    let keys = |len: usize| ScramKeys {
        salt: vec![1; 16],
        iterations: 4096,
        stored_key: vec![2; len],
        server_key: vec![3; len],
    };
    Credentials { sha1: keys(20), sha256: keys(32) }
}

/// A fresh store with accounts `alice@example.com` and `bob@example.com`
/// (also used by the tests of `deferred.rs`).
pub(crate) fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.create_account("alice", H, &creds()).unwrap();
    s.create_account("bob", H, &creds()).unwrap();
    (dir, s)
}

fn contact(jid: &str) -> RosterItem {
    RosterItem { jid: jid.to_owned(), visible: true, ..Default::default() }
}

fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|g| (*g).to_owned()).collect()
}

fn not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::NotFound(j)) => j,
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// Rows in `table` owned by `user@example.com`, read straight from SQLite.
fn rows(s: &SqliteStore, table: &str, user: &str) -> i64 {
    s.reader()
        .query_row(&format!("SELECT COUNT(*) FROM {table} WHERE host = ?1 AND username = ?2"), [H, user], |r| r.get(0))
        .unwrap()
}

const ODD_GROUPS: &[&str] = &[
    "",
    "a,b,c",
    "x:y",
    "3:zz",
    "12",
    ":",
    "line\nbreak",
    "unit\u{1F}sep",
    "tab\there",
    "nul\0byte",
    "Ünïcödé",
    "日本語",
    "emoji 🎉",
    " padded ",
];

#[test]
fn groups_encoding_round_trips_and_rejects_garbage() {
    let cases: Vec<Vec<String>> = vec![vec![], groups(&[""]), groups(&["a"]), groups(&["", ""]), groups(ODD_GROUPS)];
    for g in cases {
        let enc = encode_groups(&g);
        assert_eq!(decode_groups(&enc).as_ref(), Some(&g), "{enc:?}");
    }
    assert_eq!(encode_groups(&groups(&["a,b", "x:y"])), "3:a,b3:x:y");
    assert_eq!(encode_groups(&[]), "");
    for bad in ["3:ab", "x:abc", "1:é", "2:ab1", ":a", "-1:a", "+1:a", "1a", "99999999999999999999999:a"] {
        assert_eq!(decode_groups(bad), None, "{bad:?}");
    }
}

#[test]
fn every_connection_enforces_foreign_keys() {
    let (_dir, s) = store();
    let on = |c: &rusqlite::Connection| c.query_row("PRAGMA foreign_keys", [], |r| r.get::<_, bool>(0)).unwrap();
    assert!(on(&s.writer()));
    for r in s.readers.iter() {
        assert!(on(&r.lock().unwrap()));
    }
}

#[test]
fn empty_roster_has_version_zero() {
    let (_dir, s) = store();
    assert_eq!(s.roster("alice", H).unwrap(), (0, vec![]));
    assert_eq!(s.roster_item("alice", H, "bob@example.com").unwrap(), None);
    // Unknown accounts read as empty too.
    assert_eq!(s.roster("nobody", H).unwrap(), (0, vec![]));
}

#[test]
fn roster_put_get_bump_sorted() {
    let (_dir, s) = store();
    let zed = RosterItem {
        name: Some("Zed".into()),
        subscription: Subscription::Both,
        groups: groups(&["Friends", "Work"]),
        ..contact("zed@example.org")
    };
    let amy = RosterItem { subscription: Subscription::To, ask_out: true, ..contact("amy@example.org") };
    let mid = RosterItem { approved: true, subscription: Subscription::From, ..contact("mid@example.org") };
    assert_eq!(s.put_roster_item("alice", H, &zed).unwrap(), 1);
    assert_eq!(s.put_roster_item("alice", H, &amy).unwrap(), 2);
    assert_eq!(s.put_roster_item("alice", H, &mid).unwrap(), 3);
    assert_eq!(s.roster("alice", H).unwrap(), (3, vec![amy.clone(), mid.clone(), zed.clone()]));

    // Replacing an item keeps one row per jid and bumps the version.
    let zed2 = RosterItem { name: None, groups: vec![], subscription: Subscription::None, visible: false, ..zed };
    assert_eq!(s.put_roster_item("alice", H, &zed2).unwrap(), 4);
    assert_eq!(s.roster_item("alice", H, "zed@example.org").unwrap(), Some(zed2.clone()));
    assert_eq!(s.roster("alice", H).unwrap(), (4, vec![amy, mid, zed2]));

    // Other users' rosters and versions are separate.
    assert_eq!(s.roster("bob", H).unwrap(), (0, vec![]));
    assert_eq!(s.put_roster_item("bob", H, &contact("alice@example.com")).unwrap(), 1);
    assert_eq!(s.roster("alice", H).unwrap().0, 4);
    // Same user name on another host is another account.
    assert!(matches!(s.roster_item("alice", "other.org", "zed@example.org"), Ok(None)));
}

#[test]
fn roster_remove() {
    let (_dir, s) = store();
    // Absent item, never-written roster: no-op at version 0.
    assert_eq!(s.remove_roster_item("alice", H, "x@example.org").unwrap(), 0);
    assert_eq!(s.roster("alice", H).unwrap(), (0, vec![]));

    s.put_roster_item("alice", H, &contact("a@example.org")).unwrap();
    s.put_roster_item("alice", H, &contact("b@example.org")).unwrap();
    assert_eq!(s.remove_roster_item("alice", H, "a@example.org").unwrap(), 3);
    assert_eq!(s.roster("alice", H).unwrap(), (3, vec![contact("b@example.org")]));
    // Removing again (absent) does not bump: the roster did not change.
    assert_eq!(s.remove_roster_item("alice", H, "a@example.org").unwrap(), 3);
    assert_eq!(s.remove_roster_item("alice", H, "b@example.org").unwrap(), 4);
    assert_eq!(s.roster("alice", H).unwrap(), (4, vec![]));
    // The version survives an empty roster and keeps increasing.
    assert_eq!(s.put_roster_item("alice", H, &contact("a@example.org")).unwrap(), 5);
}

#[test]
fn roster_groups_and_stanza_round_trip() {
    let (_dir, s) = store();
    let stanza = "<presence from='bob@example.com' to='alice@example.com' type='subscribe' \
                  xmlns='jabber:client'><status>Hi \"Alice\" &amp; 'co' \u{1F600}</status>\n</presence>";
    let cases = [
        (groups(&[]), None),
        (groups(&[""]), Some(String::new())),
        (groups(&["a,b", "c"]), Some(stanza.to_owned())),
        (groups(ODD_GROUPS), Some(stanza.to_owned())),
    ];
    for (i, (g, pending)) in cases.into_iter().enumerate() {
        let it = RosterItem {
            jid: format!("c{i}@example.org"),
            name: Some(format!("Ñame, {i}\n")),
            pending_in: pending.is_some(),
            pending_in_stanza: pending,
            groups: g,
            visible: i % 2 == 0,
            ..Default::default()
        };
        s.put_roster_item("alice", H, &it).unwrap();
        assert_eq!(s.roster_item("alice", H, &it.jid).unwrap(), Some(it.clone()));
        assert!(s.roster("alice", H).unwrap().1.contains(&it));
    }
    // Clearing the stored request.
    let mut it = s.roster_item("alice", H, "c2@example.org").unwrap().unwrap();
    it.pending_in = false;
    it.pending_in_stanza = None;
    s.put_roster_item("alice", H, &it).unwrap();
    assert_eq!(s.roster_item("alice", H, "c2@example.org").unwrap(), Some(it));
}

#[test]
fn corrupt_roster_row_is_a_backend_error() {
    let (_dir, s) = store();
    s.put_roster_item("alice", H, &contact("a@example.org")).unwrap();
    s.writer().execute("UPDATE roster_items SET subscription = 'bogus'", []).unwrap();
    assert!(matches!(s.roster("alice", H), Err(StoreError::Backend(_))));
    s.writer().execute("UPDATE roster_items SET subscription = 'none', groups = '5:ab'", []).unwrap();
    let err = s.roster_item("alice", H, "a@example.org").unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    assert!(err.to_string().contains("alice@example.com"), "{err}");
}

#[test]
fn offline_push_order_limit_remove_count() {
    let (_dir, s) = store();
    assert_eq!(s.offline("alice", H).unwrap(), vec![]);
    assert_eq!(s.count_offline("alice", H).unwrap(), 0);
    let before = super::now_unix();
    for i in 0..5 {
        assert!(s.push_offline("alice", H, &format!("<message id='m{i}'/>"), 5).unwrap());
    }
    // Full: refused, nothing stored.
    assert!(!s.push_offline("alice", H, "<message id='over'/>", 5).unwrap());
    // A lower limit than what is stored is also full.
    assert!(!s.push_offline("alice", H, "<message id='over'/>", 2).unwrap());
    assert!(!s.push_offline("alice", H, "<message id='over'/>", 0).unwrap());
    assert_eq!(s.count_offline("alice", H).unwrap(), 5);

    let msgs = s.offline("alice", H).unwrap();
    let texts: Vec<_> = msgs.iter().map(|m| m.stanza.as_str()).collect();
    assert_eq!(texts, (0..5).map(|i| format!("<message id='m{i}'/>")).collect::<Vec<_>>());
    assert!(msgs.windows(2).all(|w| w[0].id < w[1].id));
    assert!(msgs.iter().all(|m| m.stamp >= before && m.stamp <= super::now_unix()));
    // Reading does not remove.
    assert_eq!(s.count_offline("alice", H).unwrap(), 5);

    // Another user's queue is separate, and untouched by alice's removals.
    assert!(s.push_offline("bob", H, "<message id='b'/>", 5).unwrap());
    s.remove_offline("alice", H, msgs[2].id).unwrap();
    assert_eq!(s.offline("alice", H).unwrap(), msgs[3..].to_vec());
    assert_eq!(s.count_offline("alice", H).unwrap(), 2);
    assert_eq!(s.count_offline("bob", H).unwrap(), 1);
    // Removing again, or below the oldest, is a no-op.
    s.remove_offline("alice", H, msgs[2].id).unwrap();
    s.remove_offline("alice", H, 0).unwrap();
    assert_eq!(s.count_offline("alice", H).unwrap(), 2);
    // Room again; ids keep increasing (never reused).
    assert!(s.push_offline("alice", H, "<message id='m5'/>", 5).unwrap());
    let last = s.offline("alice", H).unwrap().last().unwrap().clone();
    assert_eq!(last.stanza, "<message id='m5'/>");
    assert!(last.id > msgs[4].id);
    s.remove_offline("alice", H, i64::MAX).unwrap();
    assert_eq!(s.count_offline("alice", H).unwrap(), 0);
    assert_eq!(s.count_offline("bob", H).unwrap(), 1);
    // Deleted ids are not handed out again.
    assert!(s.push_offline("alice", H, "<message id='m6'/>", 5).unwrap());
    assert!(s.offline("alice", H).unwrap()[0].id > last.id);
}

#[test]
fn user_data_set_get_delete() {
    let (_dir, s) = store();
    assert_eq!(s.get_data("alice", H, "vcard").unwrap(), None);
    s.set_data("alice", H, "vcard", Some("<vCard xmlns='vcard-temp'/>")).unwrap();
    s.set_data("alice", H, "private:jabber:x", Some("")).unwrap();
    assert_eq!(s.get_data("alice", H, "vcard").unwrap().as_deref(), Some("<vCard xmlns='vcard-temp'/>"));
    // The empty string is a value, not a deletion.
    assert_eq!(s.get_data("alice", H, "private:jabber:x").unwrap().as_deref(), Some(""));
    s.set_data("alice", H, "vcard", Some("<vCard xmlns='vcard-temp'><FN>A</FN></vCard>")).unwrap();
    assert_eq!(
        s.get_data("alice", H, "vcard").unwrap().as_deref(),
        Some("<vCard xmlns='vcard-temp'><FN>A</FN></vCard>")
    );
    // Keys are per user.
    assert_eq!(s.get_data("bob", H, "vcard").unwrap(), None);
    s.set_data("alice", H, "vcard", None).unwrap();
    assert_eq!(s.get_data("alice", H, "vcard").unwrap(), None);
    // Deleting an absent key is fine.
    s.set_data("alice", H, "vcard", None).unwrap();
    assert_eq!(s.get_data("alice", H, "private:jabber:x").unwrap().as_deref(), Some(""));
}

#[test]
fn unknown_account_is_not_found() {
    let (_dir, s) = store();
    let who = "nobody@example.com";
    assert_eq!(not_found(s.put_roster_item("nobody", H, &contact("a@example.org"))), who);
    assert_eq!(not_found(s.remove_roster_item("nobody", H, "a@example.org")), who);
    assert_eq!(not_found(s.push_offline("nobody", H, "<message/>", 10)), who);
    assert_eq!(not_found(s.push_offline("nobody", H, "<message/>", 0)), who);
    assert_eq!(not_found(s.remove_offline("nobody", H, i64::MAX)), who);
    assert_eq!(not_found(s.set_data("nobody", H, "k", Some("v"))), who);
    assert_eq!(not_found(s.set_data("nobody", H, "k", None)), who);
    // The right host is part of the identity.
    assert_eq!(not_found(s.set_data("alice", "other.org", "k", Some("v"))), "alice@other.org");
    // Reads are empty; nothing was written by the failed calls.
    assert_eq!(s.roster("nobody", H).unwrap(), (0, vec![]));
    assert_eq!(s.offline("nobody", H).unwrap(), vec![]);
    assert_eq!(s.count_offline("nobody", H).unwrap(), 0);
    assert_eq!(s.get_data("nobody", H, "k").unwrap(), None);
    assert_eq!(rows(&s, "roster_versions", "nobody"), 0);
    // The writer is still usable afterwards (the failed transactions ended).
    assert_eq!(s.put_roster_item("alice", H, &contact("a@example.org")).unwrap(), 1);
}

#[test]
fn removing_an_account_removes_its_data() {
    let (_dir, s) = store();
    for user in ["alice", "bob"] {
        s.put_roster_item(user, H, &contact("c@example.org")).unwrap();
        s.put_roster_item(user, H, &contact("d@example.org")).unwrap();
        s.push_offline(user, H, "<message/>", 10).unwrap();
        s.set_data(user, H, "vcard", Some("<vCard/>")).unwrap();
        s.set_data(user, H, "blocklist", Some("x@example.org")).unwrap();
    }
    s.remove_account("alice", H).unwrap();
    for table in ["roster_items", "roster_versions", "offline_messages", "user_data"] {
        assert_eq!(rows(&s, table, "alice"), 0, "{table}");
    }
    // Bob is untouched.
    assert_eq!(s.roster("bob", H).unwrap().1.len(), 2);
    assert_eq!(s.count_offline("bob", H).unwrap(), 1);
    assert_eq!(s.get_data("bob", H, "vcard").unwrap().as_deref(), Some("<vCard/>"));
    // A new account with the same name starts from nothing.
    s.create_account("alice", H, &creds()).unwrap();
    assert_eq!(s.roster("alice", H).unwrap(), (0, vec![]));
    assert_eq!(s.count_offline("alice", H).unwrap(), 0);
    assert_eq!(s.get_data("alice", H, "vcard").unwrap(), None);
    assert_eq!(s.get_data("alice", H, "blocklist").unwrap(), None);
}

#[test]
fn writes_survive_reopen_without_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let item = RosterItem {
        pending_in: true,
        pending_in_stanza: Some("<presence type='subscribe'/>".into()),
        groups: groups(&["a,b", "日本"]),
        ..contact("c@example.org")
    };
    {
        let s = SqliteStore::open(dir.path()).unwrap();
        s.create_account("alice", H, &creds()).unwrap();
        s.put_roster_item("alice", H, &item).unwrap();
        s.put_roster_item("alice", H, &contact("gone@example.org")).unwrap();
        s.remove_roster_item("alice", H, "gone@example.org").unwrap();
        for i in 0..3 {
            s.push_offline("alice", H, &format!("<m{i}/>"), 10).unwrap();
        }
        s.set_data("alice", H, "vcard", Some("<vCard/>")).unwrap();
        // Simulate a crash: connections are never closed, the WAL stays.
        std::mem::forget(s);
    }
    let s = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(s.roster("alice", H).unwrap(), (3, vec![item]));
    let texts: Vec<_> = s.offline("alice", H).unwrap().into_iter().map(|m| m.stanza).collect();
    assert_eq!(texts, ["<m0/>", "<m1/>", "<m2/>"]);
    assert_eq!(s.get_data("alice", H, "vcard").unwrap().as_deref(), Some("<vCard/>"));
    // Ids continue after reopen.
    let last = s.offline("alice", H).unwrap()[2].id;
    s.push_offline("alice", H, "<m3/>", 10).unwrap();
    assert!(s.offline("alice", H).unwrap()[3].id > last);
}

#[test]
fn two_instances_share_im_data() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = SqliteStore::open(dir.path()).unwrap();
    let ctl = SqliteStore::open(dir.path()).unwrap();
    daemon.create_account("alice", H, &creds()).unwrap();
    assert_eq!(ctl.put_roster_item("alice", H, &contact("c@example.org")).unwrap(), 1);
    assert_eq!(daemon.put_roster_item("alice", H, &contact("d@example.org")).unwrap(), 2);
    assert_eq!(ctl.roster("alice", H).unwrap().0, 2);
    assert!(ctl.push_offline("alice", H, "<m/>", 1).unwrap());
    assert!(!daemon.push_offline("alice", H, "<m/>", 1).unwrap());
    ctl.remove_account("alice", H).unwrap();
    assert_eq!(daemon.roster("alice", H).unwrap(), (0, vec![]));
    assert_eq!(daemon.count_offline("alice", H).unwrap(), 0);
}

#[test]
fn concurrent_offline_pushes_store_exactly_limit() {
    let (_dir, s) = store();
    let s = Arc::new(s);
    const LIMIT: usize = 37;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = Arc::clone(&s);
            thread::spawn(move || {
                (0..20).filter(|i| s.push_offline("alice", H, &format!("<m t='{t}' i='{i}'/>"), LIMIT).unwrap()).count()
            })
        })
        .collect();
    let accepted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(accepted, LIMIT);
    assert_eq!(s.count_offline("alice", H).unwrap(), LIMIT as u64);
    let msgs = s.offline("alice", H).unwrap();
    assert_eq!(msgs.len(), LIMIT);
    assert_eq!(msgs.iter().map(|m| &m.stanza).collect::<HashSet<_>>().len(), LIMIT);
}

#[test]
fn concurrent_roster_writes_get_distinct_versions() {
    let (_dir, s) = store();
    let s = Arc::new(s);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = Arc::clone(&s);
            thread::spawn(move || {
                (0..25)
                    .map(|i| s.put_roster_item("alice", H, &contact(&format!("c{t}-{i}@example.org"))).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let versions: HashSet<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(versions, (1..=100).collect());
    let (v, items) = s.roster("alice", H).unwrap();
    assert_eq!((v, items.len()), (100, 100));
    assert!(items.windows(2).all(|w| w[0].jid < w[1].jid));
}

#[test]
fn roster_read_is_one_snapshot() {
    // Every put adds a new item and bumps the version once, so in any
    // consistent snapshot the version equals the number of items. Readers
    // poll for as long as the writer runs.
    let (_dir, s) = store();
    let s = Arc::new(s);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (s, done) = (Arc::clone(&s), Arc::clone(&done));
            thread::spawn(move || {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let (v, items) = s.roster("alice", H).unwrap();
                    assert_eq!(v, items.len() as u64);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for i in 0..300 {
        s.put_roster_item("alice", H, &contact(&format!("c{i:03}@example.org"))).unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(s.roster("alice", H).unwrap().0, 300);
}
