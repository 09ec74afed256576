//! The real `xmppd` binary as a child process, for tests that kill it
//! (`kill -9`) or start it against a damaged store: spawn, wait for the
//! listener, run `xmppd ctl`, log in, and read its store from outside.

use super::TestClient;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use xmppd::storage::sqlite::SqliteStore;

/// A running daemon.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub ca: PathBuf,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Write `dir/xmppd.toml` with `data_dir` and a c2s listener on `port`.
pub fn write_config(dir: &Path, data_dir: &Path, port: u16) -> PathBuf {
    let cfg = dir.join("xmppd.toml");
    let toml = format!(
        "hosts = [\"localhost\"]\ndata_dir = \"{}\"\n[[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:{port}\"\n",
        data_dir.display()
    );
    std::fs::write(&cfg, toml).unwrap();
    cfg
}

/// Start `xmppd serve` with `dir/data` and wait until it accepts connections.
pub fn spawn(dir: &Path, port: u16) -> Daemon {
    let cfg = write_config(dir, &dir.join("data"), port);
    let mut child = Command::new(env!("CARGO_BIN_EXE_xmppd"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("xmppd exited at start: {status}");
        }
        assert!(Instant::now() < deadline, "xmppd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Daemon { child, port, ca: dir.join("data/tls/ca.pem") }
}

impl Daemon {
    /// SIGKILL, no chance to flush anything.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// STARTTLS, SCRAM-SHA-256, restart, bind `res`.
    pub async fn login(&self, user: &str, pass: &str, res: &str) -> TestClient {
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let (mut c, _) = TestClient::connect_starttls(addr, &self.ca).await;
        c.scram("SCRAM-SHA-256", user, pass).await.unwrap();
        c.open().await;
        c.bind(Some(res)).await;
        c
    }
}

/// `xmppd ctl ARGS` against the config in `dir`; the exit code.
pub fn ctl(dir: &Path, args: &[&str]) -> i32 {
    let cfg = dir.join("xmppd.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_xmppd"))
        .args(["ctl", "--config", cfg.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    out.status.code().unwrap_or(-1)
}

/// The daemon's store opened by a second process-like handle (a separate
/// SQLite connection): what it shows is what is committed to the file.
pub fn store(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("data")).unwrap()
}

/// Run `xmppd serve --config cfg` expecting it to fail at start: waits at
/// most 30 s (then kills it and panics) and returns its output.
pub fn serve_expecting_failure(cfg: &Path, uid: Option<u32>) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xmppd"));
    cmd.args(["serve", "--config", cfg.to_str().unwrap()])
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("xmppd kept running on a store it cannot use: {:?}", child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
