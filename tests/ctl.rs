//! `xmppd ctl` end to end: the real binary, with the daemon down (account
//! commands on the store, live commands exit 3) and up (through the admin
//! socket: in-process server for session effects, and a `xmppd serve`
//! child process).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_xmppd");
const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// What a `xmppd ctl` run printed.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A temporary configuration: hosts, data_dir in a tempdir, port 0.
struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("xmppd.toml");
        std::fs::write(
            &config,
            format!(
                "hosts = [\"localhost\", \"example.org\"]\ndata_dir = \"{}\"\n\
                 [[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        Env { dir, config }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("data/admin.sock")
    }

    fn ctl(&self, args: &[&str]) -> Out {
        ctl_with(&self.config, args)
    }
}

fn ctl_with(config: &Path, args: &[&str]) -> Out {
    let out = Command::new(BIN).arg("ctl").arg("--config").arg(config).args(args).output().unwrap();
    Out {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Exit code and stdout, for compact assertions.
fn ok(o: &Out) -> (i32, &str) {
    (o.code, o.stdout.as_str())
}

// ---------------------------------------------------------------- daemon down

#[test]
fn register_and_duplicate_without_daemon() {
    let env = Env::new();
    let o = env.ctl(&["register", "alice", "localhost", "secret"]);
    assert_eq!(ok(&o), (0, "User alice@localhost successfully registered\n"), "{o:?}");
    assert_eq!(o.stderr, "");
    let o = env.ctl(&["register", "alice", "localhost", "other"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(o.stderr, "Error: conflict: User alice@localhost already registered\n");
    assert_eq!(o.stdout, "");
    // The password is not stored, only SCRAM keys.
    let db = std::fs::read(env.dir.path().join("data/xmppd.sqlite")).unwrap();
    assert!(!db.windows(6).any(|w| w == b"secret"));
}

#[test]
fn unknown_host_and_malformed_user() {
    let env = Env::new();
    let o = env.ctl(&["register", "bob", "nowhere.example", "pw"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(o.stderr, "Error: cannot_register: Unknown virtual host: nowhere.example\n");
    let o = env.ctl(&["register", "a/b", "localhost", "pw"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.starts_with("Error: cannot_register: Can't register user a/b@localhost: Malformed username"),
        "{o:?}"
    );
    let o = env.ctl(&["registered_users", "nowhere.example"]);
    assert_eq!((o.code, o.stderr.as_str()), (1, "Error: not_found: Unknown virtual host: nowhere.example\n"));
}

#[test]
fn account_lifecycle_without_daemon() {
    let env = Env::new();
    for (u, h) in [("carol", "localhost"), ("Alice", "localhost"), ("bob", "LOCALHOST"), ("zed", "example.org")] {
        assert_eq!(env.ctl(&["register", u, h, "pw1"]).code, 0);
    }
    assert_eq!(ok(&env.ctl(&["check_password", "alice", "localhost", "pw1"])), (0, ""));
    let o = env.ctl(&["check_password", "alice", "localhost", "wrong"]);
    assert_eq!((o.code, o.stderr.as_str()), (1, "Error: not_authorized: Wrong password for alice@localhost\n"));
    assert_eq!(ok(&env.ctl(&["change_password", "alice", "localhost", "pw2"])), (0, ""));
    assert_eq!(env.ctl(&["check_password", "alice", "localhost", "pw1"]).code, 1);
    assert_eq!(env.ctl(&["check-password", "alice", "localhost", "pw2"]).code, 0);
    assert_eq!(ok(&env.ctl(&["registered_users", "localhost"])), (0, "alice\nbob\ncarol\n"));
    assert_eq!(ok(&env.ctl(&["registered-users", "example.org"])), (0, "zed\n"));

    assert_eq!(ok(&env.ctl(&["check_account", "bob", "localhost"])), (0, ""));
    assert_eq!(ok(&env.ctl(&["unregister", "bob", "localhost"])), (0, ""));
    let o = env.ctl(&["check_account", "bob", "localhost"]);
    assert_eq!((o.code, o.stderr.as_str()), (1, "Error: not_found: User bob@localhost does not exist\n"));
    let o = env.ctl(&["unregister", "bob", "localhost"]);
    assert_eq!((o.code, o.stderr.as_str()), (1, "Error: not_found: User bob@localhost does not exist\n"));
    let o = env.ctl(&["change_password", "bob", "localhost", "x"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(ok(&env.ctl(&["registered_users", "localhost"])), (0, "alice\ncarol\n"));
}

#[test]
fn live_commands_without_daemon_exit_3() {
    let env = Env::new();
    for args in [
        &["status"][..],
        &["connected_users"],
        &["connected_users_number"],
        &["kick_session", "a", "localhost", "r", "bye"],
        &["stop"],
    ] {
        let o = env.ctl(args);
        assert_eq!(o.code, 3, "{args:?}: {o:?}");
        assert_eq!(o.stdout, "");
        assert!(o.stderr.starts_with("Failed RPC connection to the node xmppd: nodedown\n"), "{o:?}");
        assert!(o.stderr.contains("xmppd is not running"), "{o:?}");
        assert!(o.stderr.contains(&env.socket().display().to_string()), "{o:?}");
    }
}

#[test]
fn stale_socket_is_treated_as_down() {
    let env = Env::new();
    std::fs::create_dir_all(env.dir.path().join("data")).unwrap();
    drop(std::os::unix::net::UnixListener::bind(env.socket()).unwrap());
    assert!(env.socket().exists());
    assert_eq!(env.ctl(&["status"]).code, 3);
    assert_eq!(env.ctl(&["register", "a", "localhost", "pw"]).code, 0);
}

#[test]
fn usage_and_config_errors() {
    let env = Env::new();
    let o = env.ctl(&["frobnicate"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.starts_with("Error: unknown command 'frobnicate'."), "{o:?}");
    let o = env.ctl(&["statuss"]);
    assert!(o.stderr.starts_with("Error: unknown command 'statuss'. Did you mean 'status'?"), "{o:?}");
    let o = env.ctl(&["register", "alice", "localhost"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.starts_with("Error: the command 'register' requires 1 more argument.\n"), "{o:?}");
    assert!(o.stderr.contains("Usage: xmppd ctl register USER HOST PASSWORD"), "{o:?}");
    let o = env.ctl(&[]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.starts_with("Usage: xmppd ctl"), "{o:?}");
    let o = env.ctl(&["help"]);
    assert_eq!(o.code, 0);
    for c in ["register", "unregister", "change_password", "check_account", "kick_session", "register_bulk", "stop"] {
        assert!(o.stdout.contains(c), "{c}: {o:?}");
    }
    let o = env.ctl(&["help", "kick-session"]);
    assert!(o.stdout.starts_with("Usage: xmppd ctl kick_session USER HOST RESOURCE REASON\n"), "{o:?}");
    // A password starting with a dash is an argument, not an option.
    assert_eq!(env.ctl(&["register", "dash", "localhost", "--pw"]).code, 0);
    assert_eq!(env.ctl(&["check_password", "dash", "localhost", "--pw"]).code, 0);

    let bad = env.dir.path().join("bad.toml");
    std::fs::write(&bad, "hosts = [\"localhost\"]\nbogus = 1\n").unwrap();
    let o = ctl_with(&bad, &["status"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.starts_with("Error: ") && o.stderr.contains("bogus"), "{o:?}");
}

#[test]
fn register_bulk_without_daemon() {
    let env = Env::new();
    assert_eq!(env.ctl(&["register", "u2", "localhost", "old"]).code, 0);
    let file = env.dir.path().join("users.txt");
    std::fs::write(
        &file,
        "# name host password\nu1 localhost p1\n\nu2 localhost p2\nU3 example.org pass with spaces\n",
    )
    .unwrap();
    let o = env.ctl(&["register_bulk", file.to_str().unwrap()]);
    assert_eq!(ok(&o), (0, "2 users registered, 1 already existed\n"), "{o:?}");
    assert_eq!(env.ctl(&["check_password", "u3", "example.org", "pass with spaces"]).code, 0);
    assert_eq!(env.ctl(&["check_password", "u2", "localhost", "old"]).code, 0);
    // A bad line: nothing is registered.
    std::fs::write(&file, "u4 localhost p4\nu5 nowhere p5\n").unwrap();
    let o = env.ctl(&["register-bulk", file.to_str().unwrap()]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains(":2: Unknown virtual host: nowhere"), "{o:?}");
    assert_eq!(env.ctl(&["check_account", "u4", "localhost"]).code, 1);
    let o = env.ctl(&["register_bulk", "/nonexistent/file"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.starts_with("Error: cannot read /nonexistent/file"), "{o:?}");
}

// --------------------------------------------------- daemon up, in-process

/// Run the binary without blocking the runtime the server runs on.
async fn ctl_async(config: &Path, args: &[&str]) -> Out {
    let config = config.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || ctl_with(&config, &args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

/// Start an in-process server and wait for its admin socket (bound when
/// `Server::run` starts).
async fn start() -> TestServer {
    let srv = start_server().await;
    let sock = srv.dir.path().join("data/admin.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::UnixStream::connect(&sock).await.is_err() {
        assert!(Instant::now() < deadline, "admin socket never appeared");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    srv
}

/// A config file pointing at an in-process server's data_dir.
fn config_for(srv: &TestServer) -> PathBuf {
    let path = srv.dir.path().join("ctl.toml");
    std::fs::write(
        &path,
        format!(
            "hosts = [\"localhost\", \"example.org\"]\ndata_dir = \"{}\"\n\
             [[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n",
            srv.dir.path().join("data").display()
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_socket_is_private() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let srv = start().await;
    let sock = srv.dir.path().join("data/admin.sock");
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    srv.stop().await;
    assert!(!sock.exists(), "the socket is removed at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_sessions_through_the_daemon() {
    let srv = start().await;
    let cfg = config_for(&srv);

    let o = ctl_async(&cfg, &["status"]).await;
    assert_eq!(
        ok(&o),
        (0, "The node xmppd is started with status: started\nxmppd 0.1.0 is running in that node\n"),
        "{o:?}"
    );
    let o = ctl_async(&cfg, &["register", "alice", "localhost", "secret"]).await;
    assert_eq!(ok(&o), (0, "User alice@localhost successfully registered\n"), "{o:?}");
    let o = ctl_async(&cfg, &["register", "alice", "localhost", "secret"]).await;
    assert_eq!((o.code, o.stderr.as_str()), (1, "Error: conflict: User alice@localhost already registered\n"));
    assert_eq!(ok(&ctl_async(&cfg, &["connected_users"]).await), (0, ""));
    assert_eq!(ok(&ctl_async(&cfg, &["connected_users_number"]).await), (0, "0\n"));

    // The account works at once; sessions are listed.
    let mut phone = TestClient::login(&srv, "alice", "secret", "phone").await;
    let mut laptop = TestClient::login(&srv, "alice", "secret", "laptop").await;
    assert_eq!(
        ok(&ctl_async(&cfg, &["connected_users"]).await),
        (0, "alice@localhost/laptop\nalice@localhost/phone\n")
    );
    assert_eq!(ok(&ctl_async(&cfg, &["connected-users-number"]).await), (0, "2\n"));

    // kick_session ends that session only, with the reason as text.
    let o = ctl_async(&cfg, &["kick_session", "alice", "localhost", "phone", "Go away"]).await;
    assert_eq!(ok(&o), (0, ""), "{o:?}");
    let got = phone.expect_closed().await;
    assert!(got.contains(&format!("<policy-violation xmlns='{STREAMS}'/>")), "{got}");
    assert!(got.contains(">Go away</text>"), "{got}");
    let o = ctl_async(&cfg, &["kick_session", "alice", "localhost", "phone", "again"]).await;
    assert_eq!((o.code, o.stderr.as_str()), (1, "Error: not_found: No active session for alice@localhost/phone\n"));
    assert_eq!(ok(&ctl_async(&cfg, &["connected_users"]).await), (0, "alice@localhost/laptop\n"));

    // change_password ends the remaining session.
    assert_eq!(ok(&ctl_async(&cfg, &["change_password", "alice", "localhost", "new"]).await), (0, ""));
    let got = laptop.expect_closed().await;
    assert!(got.contains(&format!("<not-authorized xmlns='{STREAMS}'/>")), "{got}");
    assert!(got.contains(">password changed</text>"), "{got}");
    assert_eq!(ctl_async(&cfg, &["check_password", "alice", "localhost", "secret"]).await.code, 1);
    assert_eq!(ctl_async(&cfg, &["check_password", "alice", "localhost", "new"]).await.code, 0);

    // unregister ends sessions too, and forgets what was cached for the
    // account: a new account of the same name starts with no blocklist.
    let mut c = TestClient::login(&srv, "alice", "new", "tablet").await;
    c.send("<iq type='set' id='bl'><block xmlns='urn:xmpp:blocking'><item jid='eve@localhost'/></block></iq>").await;
    assert!(c.expect("id='bl'").await.contains("type='result'"));
    assert_eq!(ok(&ctl_async(&cfg, &["unregister", "alice", "localhost"]).await), (0, ""));
    let got = c.expect_closed().await;
    assert!(got.contains(">account removed</text>"), "{got}");
    srv.register("alice", "fresh");
    let mut c = TestClient::login(&srv, "alice", "fresh", "tablet").await;
    c.send("<iq type='get' id='bl2'><blocklist xmlns='urn:xmpp:blocking'/></iq>").await;
    let got = c.expect_stanza("id='bl2'").await;
    assert!(!got.contains("eve@localhost"), "{got}");
    drop(c);
    assert_eq!(ok(&ctl_async(&cfg, &["unregister", "alice", "localhost"]).await), (0, ""));
    assert_eq!(ctl_async(&cfg, &["check_account", "alice", "localhost"]).await.code, 1);
    assert_eq!(ok(&ctl_async(&cfg, &["connected_users_number"]).await), (0, "0\n"));

    // register_bulk goes through the daemon (one batch with the CLI, several
    // with a small batch size; PBKDF2 is slow in debug builds, so few users).
    srv.register("b3", "taken");
    let file = srv.dir.path().join("bulk.txt");
    std::fs::write(&file, (0..12).map(|i| format!("b{i} localhost pw{i}\n")).collect::<String>()).unwrap();
    let o = ctl_async(&cfg, &["register_bulk", file.to_str().unwrap()]).await;
    assert_eq!(ok(&o), (0, "11 users registered, 1 already existed\n"), "{o:?}");
    std::fs::write(&file, (5..25).map(|i| format!("b{i} localhost pw{i}\n")).collect::<String>()).unwrap();
    let config = xmppd::config::Config::load(Some(&cfg)).unwrap().0;
    let batched = file.clone();
    let o = tokio::task::spawn_blocking(move || xmppd::ctl::client::register_bulk_via_daemon(&batched, &config, 3))
        .await
        .unwrap();
    assert_eq!(o, xmppd::ctl::Outcome::ok("13 users registered, 7 already existed\n"));
    assert_eq!(srv.shared.store.count_users("localhost").unwrap(), 25);
    assert_eq!(ctl_async(&cfg, &["check_password", "b20", "localhost", "pw20"]).await.code, 0);
    // A bad line is named by its line number, and nothing reaches the daemon.
    std::fs::write(&file, "b30 localhost pw30\n\nb31 localhost\n").unwrap();
    let o = ctl_async(&cfg, &["register_bulk", file.to_str().unwrap()]).await;
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("bulk.txt:3: expected `user host password`"), "{o:?}");
    assert!(o.stderr.ends_with("No account was registered (1 bad line).\n"), "{o:?}");
    assert_eq!(ctl_async(&cfg, &["check_account", "b30", "localhost"]).await.code, 1);

    // stop shuts the daemon down.
    assert_eq!(ok(&ctl_async(&cfg, &["stop"]).await), (0, ""));
    tokio::time::timeout(Duration::from_secs(10), srv.task).await.expect("server stopped").unwrap();
    assert_eq!(ctl_async(&cfg, &["status"]).await.code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_admin_socket_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = start().await;
    let sock = srv.dir.path().join("data/admin.sock");
    // An oversized command request is answered with an error, not read.
    let mut s = tokio::net::UnixStream::connect(&sock).await.unwrap();
    s.write_all(&[b'C', 0x7f, 0xff, 0xff, 0xff]).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let o = xmppd::ctl::protocol::read_response(&mut &resp[..]).unwrap();
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("request too large"), "{o:?}");
    // A silent client is dropped after the request timeout; the daemon still answers others.
    let _idle = tokio::net::UnixStream::connect(&sock).await.unwrap();
    let o = ctl_async(&config_for(&srv), &["connected_users_number"]).await;
    assert_eq!(ok(&o), (0, "0\n"));
    srv.stop().await;
}

// ------------------------------------------------ daemon up, child process

/// `xmppd serve` as a child process; killed on drop if still running.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_daemon(env: &Env) -> Daemon {
    let log = std::fs::File::create(env.dir.path().join("serve.log")).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&env.config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut d = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::os::unix::net::UnixStream::connect(env.socket()).is_err() {
        if let Some(st) = d.0.try_wait().unwrap() {
            panic!("xmppd serve exited with {st}: {}", serve_log(env));
        }
        assert!(Instant::now() < deadline, "admin socket never appeared: {}", serve_log(env));
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

fn serve_log(env: &Env) -> String {
    std::fs::read_to_string(env.dir.path().join("serve.log")).unwrap_or_default()
}

fn wait_exit(d: &mut Daemon, env: &Env) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = d.0.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "xmppd serve did not exit: {}", serve_log(env));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_child_process_status_register_stop() {
    let env = Env::new();
    // An account created while the daemon is down is there when it runs.
    assert_eq!(env.ctl(&["register", "early", "localhost", "pw"]).code, 0);
    let mut d = start_daemon(&env);

    let o = env.ctl(&["status"]);
    assert_eq!(
        ok(&o),
        (0, "The node xmppd is started with status: started\nxmppd 0.1.0 is running in that node\n"),
        "{o:?}"
    );
    assert_eq!(ok(&env.ctl(&["connected_users"])), (0, ""));
    assert_eq!(ok(&env.ctl(&["connected_users_number"])), (0, "0\n"));
    let o = env.ctl(&["register", "alice", "localhost", "secret"]);
    assert_eq!(ok(&o), (0, "User alice@localhost successfully registered\n"), "{o:?}");
    let o = env.ctl(&["register", "alice", "localhost", "secret"]);
    assert_eq!((o.code, o.stderr.as_str()), (1, "Error: conflict: User alice@localhost already registered\n"));
    assert_eq!(ok(&env.ctl(&["registered_users", "localhost"])), (0, "alice\nearly\n"));
    assert_eq!(env.ctl(&["check_password", "early", "localhost", "pw"]).code, 0);

    // A second daemon on the same data_dir refuses to start.
    let second = Command::new(BIN).args(["serve", "--config"]).arg(&env.config).output().unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another xmppd is running with this data_dir"), "{err}");
    assert_eq!(env.ctl(&["status"]).code, 0, "the first daemon is unaffected");

    assert_eq!(ok(&env.ctl(&["stop"])), (0, ""));
    let st = wait_exit(&mut d, &env);
    assert_eq!(st.code(), Some(0), "{}", serve_log(&env));
    assert!(!env.socket().exists());
    assert_eq!(env.ctl(&["status"]).code, 3);
    // Accounts are still there, read directly from the store.
    assert_eq!(ok(&env.ctl(&["registered_users", "localhost"])), (0, "alice\nearly\n"));
}

#[test]
fn serve_replaces_a_stale_socket() {
    let env = Env::new();
    std::fs::create_dir_all(env.dir.path().join("data")).unwrap();
    drop(std::os::unix::net::UnixListener::bind(env.socket()).unwrap());
    let mut d = start_daemon(&env);
    assert_eq!(env.ctl(&["status"]).code, 0);
    assert_eq!(env.ctl(&["stop"]).code, 0);
    assert_eq!(wait_exit(&mut d, &env).code(), Some(0));
}
