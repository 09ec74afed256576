//! XEP-0227 migration: the real ejabberd 23.01 export in
//! tests/fixtures/ejabberd-piefxis/ (made by make_ejabberd_export.sh)
//! imported with `xmppd ctl import_piefxis`, then its users logging in to
//! the real server with their old passwords (SCRAM) and finding their
//! roster, pending request, vCard, private XML and offline messages; an
//! export → import round trip into a running server; errors naming the file
//! and line.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use xmppd::config::{Config, ListenKind};
use xmppd::server::Server;
use xmppd::storage::sqlite::SqliteStore;
use xmppd::storage::{AccountStore, OfflineStore, RosterStore};

const HOSTS: [&str; 3] = ["plain.example", "sha1.example", "sha256.example"];

/// The fixture's main file (the one without a host suffix).
fn fixture() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ejabberd-piefxis");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "xml") && !p.file_name().unwrap().to_string_lossy().contains('_'))
        .expect("fixture main file")
}

/// A config file serving the fixture's hosts, data in `dir/data`.
fn config(dir: &Path) -> PathBuf {
    config_for(dir, &HOSTS)
}

fn config_for(dir: &Path, hosts: &[&str]) -> PathBuf {
    let path = dir.join("xmppd.toml");
    let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    std::fs::write(
        &path,
        format!(
            "hosts = [{}]\ndata_dir = \"{}\"\n[[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n",
            hosts.join(", "),
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

fn ctl(config: &Path, args: &[&str]) -> xmppd::ctl::Outcome {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    xmppd::ctl::run(Some(config), &args)
}

struct Running {
    shared: Arc<xmppd::server::Shared>,
    c2s: std::net::SocketAddr,
    ca: PathBuf,
}

async fn serve(config: &Path) -> Running {
    let (cfg, _) = Config::load(Some(config)).unwrap();
    let ca = cfg.data_dir.join("tls/ca.pem");
    let store = SqliteStore::open(&cfg.data_dir).unwrap();
    let server = Server::bind(cfg, Arc::new(store)).await.unwrap();
    let c2s = server.local_addrs().iter().find(|(k, _)| *k == ListenKind::C2s).unwrap().1;
    let shared = server.shared.clone();
    tokio::spawn(async move { server.run().await.unwrap() });
    Running { shared, c2s, ca }
}

/// STARTTLS, SCRAM with `mech`, bind; Err with the failure.
async fn login(srv: &Running, mech: &str, user: &str, host: &str, pass: &str) -> Result<TestClient, String> {
    let (mut c, _) = TestClient::connect_starttls_to(srv.c2s, &srv.ca, host).await;
    c.scram(mech, user, pass).await?;
    c.open().await;
    c.bind(Some("r")).await;
    Ok(c)
}

async fn iq(c: &mut TestClient, id: &str, payload: &str) -> String {
    c.send(&format!("<iq type='get' id='{id}'>{payload}</iq>")).await;
    c.expect_stanza(&format!("id='{id}'")).await
}

#[tokio::test]
async fn ejabberd_users_log_in_with_their_passwords_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let o = ctl(&cfg, &["import_piefxis", fixture().to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("6 users created, 0 already existed (skipped); 7 roster items, 3 offline messages, 2 vCards, 1 private XML namespace"), "{}", o.stdout);
    // Again: nothing changes.
    let again = ctl(&cfg, &["import_piefxis", fixture().to_str().unwrap()]);
    assert!(again.stdout.contains("0 users created, 6 already existed"), "{again:?}");

    let srv = serve(&cfg).await;
    // Plaintext passwords in the export: both SCRAM families work.
    login(&srv, "SCRAM-SHA-1", "bob", "plain.example", "bøb pw").await.unwrap();
    assert!(login(&srv, "SCRAM-SHA-256", "bob", "plain.example", "wrong").await.is_err());
    // ejabberd's SCRAM-SHA-1 store: that mechanism (and PLAIN) only.
    login(&srv, "SCRAM-SHA-1", "carol", "sha1.example", "carol-pw").await.unwrap();
    assert!(login(&srv, "SCRAM-SHA-256", "carol", "sha1.example", "carol-pw").await.is_err());
    let (mut p, _) = TestClient::connect_starttls_to(srv.c2s, &srv.ca, "sha1.example").await;
    assert!(p.plain("carol", "carol-pw").await.contains("success"));
    // ejabberd's SCRAM-SHA-256 store.
    let mut dave = login(&srv, "SCRAM-SHA-256", "dave", "sha256.example", "dave-pw").await.unwrap();
    let v = iq(&mut dave, "v1", "<vCard xmlns='vcard-temp'/>").await;
    assert!(v.contains("<FN>Dave Döe</FN>"), "{v}");
    dave.send("<presence/>").await;
    let m = dave.expect_stanza("hello dave").await;
    assert!(m.contains("from='alice@plain.example'") && m.contains("stamp='2026-12-01T21:37:36Z'"), "{m}");

    let mut alice = login(&srv, "SCRAM-SHA-256", "alice", "plain.example", "alice-pw").await.unwrap();
    let r = iq(&mut alice, "r1", "<query xmlns='jabber:iq:roster'/>").await;
    assert!(
        r.contains("<item jid='bob@plain.example' name='Bob' subscription='both'><group>Friends</group></item>"),
        "{r}"
    );
    assert!(
        r.contains("<item jid='carol@sha1.example' name='Carol' subscription='to'><group>Work</group></item>"),
        "{r}"
    );
    assert!(
        r.contains("<item jid='dave@sha256.example' name='Dave D.' subscription='none'><group>Friends</group><group>Work</group></item>"),
        "{r}"
    );
    assert!(!r.contains("erin"), "a pending request is not a roster item: {r}");
    let v = iq(&mut alice, "v2", "<vCard xmlns='vcard-temp'/>").await;
    assert!(v.contains("<ORGNAME>Wonderland Ltd</ORGNAME>"), "{v}");
    let pr =
        iq(&mut alice, "p1", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>").await;
    assert!(pr.contains("<conference jid='room@conference.plain.example' name='Room' autojoin='true'/>"), "{pr}");
    // Initial presence: the pending request is redelivered (RFC 6121
    // §3.1.3) and the offline messages arrive in order with their old stamps.
    alice.send("<presence/>").await;
    let mut got = alice.expect("Subject here").await;
    if !got.contains("Hi, it is Erin") {
        got += &alice.expect("Hi, it is Erin").await;
    }
    let sub = got.find("type='subscribe'").expect(&got);
    assert!(got.contains("from='erin@plain.example'") && got.contains("Hi, it is Erin"), "{got}");
    let m1 = got.find("first offline message").expect(&got);
    let m2 = got.find("second &lt;one&gt; &amp;").expect(&got);
    assert!(m1 < m2 && sub > 0, "{got}"); // any order between the request and the messages
    assert!(got.contains("stamp='2026-12-01T21:37:34Z'") && got.contains("stamp='2026-12-01T21:37:35Z'"), "{got}");
    srv.shared.shutdown.cancel();
}

/// Everything of one account, for comparing stores.
fn account_dump(store: &SqliteStore, user: &str, host: &str) -> String {
    let creds = store.get_credentials(user, host).unwrap();
    let (_, roster) = store.roster(user, host).unwrap();
    let offline: Vec<(i64, String)> =
        store.offline(user, host).unwrap().into_iter().map(|m| (m.stamp, m.stanza)).collect();
    let data = store.user_data(user, host).unwrap();
    format!("{creds:?}\n{roster:?}\n{offline:?}\n{data:?}")
}

#[tokio::test]
async fn export_then_import_into_a_running_server_keeps_everything() {
    let a = tempfile::tempdir().unwrap();
    let cfg_a = config(a.path());
    assert_eq!(ctl(&cfg_a, &["import_piefxis", fixture().to_str().unwrap()]).code, 0);
    // Pending-out and pre-approval, which the ejabberd fixture lacks.
    let store_a = SqliteStore::open(&a.path().join("data")).unwrap();
    let mut item = store_a.roster_item("bob", "plain.example", "alice@plain.example").unwrap().unwrap();
    item.ask_out = true;
    item.approved = true;
    store_a.put_roster_item("bob", "plain.example", &item).unwrap();

    let out = a.path().join("export");
    let e = ctl(&cfg_a, &["export_piefxis", out.to_str().unwrap()]);
    assert_eq!(e.code, 0, "{e:?}");
    assert!(e.stdout.contains("plain.example: 4, sha1.example: 1, sha256.example: 1"), "{}", e.stdout);
    let main = e.stdout.split_whitespace().nth(2).unwrap().to_string();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&main).unwrap().permissions().mode() & 0o777, 0o600);

    // Import into another data dir while its daemon runs.
    let b = tempfile::tempdir().unwrap();
    let cfg_b = config(b.path());
    let srv = serve(&cfg_b).await;
    let o = ctl(&cfg_b, &["import_piefxis", &main]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("6 users created"), "{}", o.stdout);
    let store_b = SqliteStore::open(&b.path().join("data")).unwrap();
    for (u, h) in [
        ("admin", "plain.example"),
        ("alice", "plain.example"),
        ("bob", "plain.example"),
        ("erin", "plain.example"),
        ("carol", "sha1.example"),
        ("dave", "sha256.example"),
    ] {
        assert_eq!(account_dump(&store_a, u, h), account_dump(&store_b, u, h), "{u}@{h}");
    }
    // The running server authenticates the imported users at once.
    login(&srv, "SCRAM-SHA-256", "alice", "plain.example", "alice-pw").await.unwrap();
    login(&srv, "SCRAM-SHA-1", "carol", "sha1.example", "carol-pw").await.unwrap();
    srv.shared.shutdown.cancel();
}

#[test]
fn errors_name_the_file_line_and_element() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let file = dir.path().join("bad.xml");
    let run = |xml: &str| {
        std::fs::write(&file, xml).unwrap();
        ctl(&cfg, &["import_piefxis", file.to_str().unwrap()])
    };
    let head = "<?xml version='1.0'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='plain.example'>\n";
    let o = run(&format!("{head}<user name='ok' password='pw'/>\n<user name='x'><query xmlns='jabber:iq:roster'><item jid='a@b' subscription='sometimes'/></query></user>\n</host></server-data>"));
    assert_eq!(o.code, 1);
    let f = file.display();
    assert!(
        o.stderr.contains(&format!("{f}:5: <user name='x'>: <item jid='a@b'>: unknown subscription \"sometimes\"")),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("No account was imported."), "{}", o.stderr);
    let o = run("<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='elsewhere.example'/></server-data>");
    assert!(
        o.stderr.contains(&format!("{f}:2: <host jid='elsewhere.example'>: this server does not serve")),
        "{}",
        o.stderr
    );
    let o = run(&format!("{head}<user name='a'>\n<vCard xmlns='vcard-temp'></user>"));
    assert!(o.stderr.contains(&format!("{f}:4: <user/>: not well-formed XML")), "{}", o.stderr);
    let o = run(&format!("{head}<user name='a/b' password='x'/></host></server-data>"));
    assert!(o.stderr.contains(&format!("{f}:4: <user name='a/b'>: malformed user name")), "{}", o.stderr);
    let o = run("<roster/>");
    assert!(o.stderr.contains("not a XEP-0227 file"), "{}", o.stderr);
    // A plaintext password must be an OpaqueString (RFC 8265 §4.2).
    let o = run(&format!("{head}<user name='b' password='tab&#9;bed'/></host></server-data>"));
    assert!(
        o.stderr.contains(&format!(
            "{f}:4: <user name='b'>: password attribute: Invalid password: control character U+0009"
        )),
        "{}",
        o.stderr
    );
    let o = run(&format!(
        "{head}<xi:include xmlns:xi='http://www.w3.org/2001/XInclude' href='missing.xml'/></host></server-data>"
    ));
    assert!(
        o.stderr.contains("missing.xml: cannot read") && o.stderr.contains(&format!("(included from {f}:4")),
        "{}",
        o.stderr
    );
    // Nothing was written by any of them.
    let store = SqliteStore::open(&dir.path().join("data")).unwrap();
    assert!(store.get_credentials("ok", "plain.example").unwrap().is_none());
    // Unknown elements are skipped with a note, the rest imported.
    let o = run(&format!(
        "{head}<user name='ok' password='pw'><query xmlns='jabber:iq:privacy'/></user></host></server-data>"
    ));
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains(&format!("Note: {f}:4: user ok@plain.example: skipped <query xmlns='jabber:iq:privacy'>")),
        "{}",
        o.stderr
    );
}

/// Prosody 0.12's `prosody-migrator` with the xep0227 driver (one file per
/// user, SCRAM-SHA-1 keys at 10,000 iterations; made by
/// tests/fixtures/make_prosody_export.sh).
#[tokio::test]
async fn prosody_users_log_in_with_their_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_for(dir.path(), &["pro.example"]);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prosody-piefxis");
    for u in ["frank", "gina"] {
        let f = fixtures.join(format!("{u}@pro.example.xml"));
        let o = ctl(&cfg, &["import_piefxis", f.to_str().unwrap()]);
        assert!(o.code == 0 && o.stdout.contains("1 user created"), "{o:?}");
    }
    let srv = serve(&cfg).await;
    login(&srv, "SCRAM-SHA-1", "frank", "pro.example", "frank-pw").await.unwrap();
    login(&srv, "SCRAM-SHA-1", "gina", "pro.example", "gïna pw").await.unwrap();
    assert!(login(&srv, "SCRAM-SHA-1", "gina", "pro.example", "wrong").await.is_err());
    let (mut p, _) = TestClient::connect_starttls_to(srv.c2s, &srv.ca, "pro.example").await;
    assert!(p.plain("frank", "frank-pw").await.contains("success"));
    srv.shared.shutdown.cancel();
}
