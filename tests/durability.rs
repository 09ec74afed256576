//! Durability: what the server acknowledged survives `kill -9` (accounts,
//! roster changes, offline messages), with the real binary.

mod common;
use common::*;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Daemon {
    child: Child,
    port: u16,
    ca: PathBuf,
}

fn spawn(dir: &Path, port: u16) -> Daemon {
    let cfg = dir.join("xmppd.toml");
    std::fs::write(
        &cfg,
        format!(
            "hosts = [\"localhost\"]\ndata_dir = \"{}\"\n[[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:{port}\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_xmppd"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "xmppd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Daemon { child, port, ca: dir.join("data/tls/ca.pem") }
}

fn ctl(dir: &Path, args: &[&str]) -> i32 {
    let cfg = dir.join("xmppd.toml");
    Command::new(env!("CARGO_BIN_EXE_xmppd"))
        .args(["ctl", "--config", cfg.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
        .status
        .code()
        .unwrap_or(-1)
}

async fn login(d: &Daemon, user: &str, pass: &str, res: &str) -> TestClient {
    let (mut c, _) = TestClient::connect_starttls(format!("127.0.0.1:{}", d.port).parse().unwrap(), &d.ca).await;
    c.scram("SCRAM-SHA-256", user, pass).await.unwrap();
    c.open().await;
    c.bind(Some(res)).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_state_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut d = spawn(dir.path(), port);
    assert_eq!(ctl(dir.path(), &["register", "alice", "localhost", "pa"]), 0);
    assert_eq!(ctl(dir.path(), &["register", "bob", "localhost", "pb"]), 0);
    let mut a = login(&d, "alice", "pa", "a").await;
    a.send("<presence/>").await;
    // A roster change, acknowledged by its result.
    a.send(
        "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'/></query></iq>",
    )
    .await;
    a.expect_stanza("id='r1'").await;
    // Offline messages for bob; the ping after them is answered only once
    // they were processed (stanzas are handled in order).
    for i in 0..5 {
        a.send(&format!("<message to='bob@localhost' type='chat'><body>m{i}</body></message>")).await;
    }
    a.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    a.expect_stanza("id='p1'").await;
    // kill -9 in the middle of traffic.
    for i in 5..8 {
        a.send(&format!("<message to='bob@localhost' type='chat'><body>m{i}</body></message>")).await;
    }
    d.child.kill().unwrap(); // SIGKILL
    d.child.wait().unwrap();
    drop(a);

    let mut d = spawn(dir.path(), port);
    let mut a = login(&d, "alice", "pa", "a").await;
    a.send("<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>").await;
    let r = a.expect_stanza("id='g'").await;
    assert!(r.contains("jid='bob@localhost'") && r.contains("name='Bob'"), "{r}");
    let mut b = login(&d, "bob", "pb", "b").await;
    b.send("<presence/>").await;
    for i in 0..5 {
        let m = b.expect_stanza("<body>").await;
        assert!(m.contains(&format!("<body>m{i}</body>")), "{m}");
    }
    d.child.kill().unwrap();
    d.child.wait().unwrap();
}
