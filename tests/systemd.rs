//! dist/xmppd.service: the unit's settings, `systemd-analyze verify` where
//! systemd is installed, and Type=notify readiness from the real binary
//! (READY=1 once serving, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1);
//! JSON logs and a `log.level` changed by that SIGHUP.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_xmppd");
const UNIT: &str = include_str!("../dist/xmppd.service");

/// `Key=value` lines of the unit, comments dropped.
fn settings() -> Vec<(String, String)> {
    UNIT.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("not Key=value: {l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn get(key: &str) -> Vec<String> {
    settings().into_iter().filter(|(k, _)| k == key).map(|(_, v)| v).collect()
}

#[test]
fn unit_runs_serve_as_its_own_user_hardened() {
    let one = |k: &str| {
        let v = get(k);
        assert_eq!(v.len(), 1, "{k} set once: {v:?}");
        v[0].clone()
    };
    assert_eq!(one("Type"), "notify");
    assert_eq!(one("User"), "xmppd");
    assert_eq!(one("ExecStart"), "/usr/local/bin/xmppd serve --config /etc/xmppd/xmppd.toml");
    assert_eq!(one("ExecStartPre"), "/usr/local/bin/xmppd check-config --config /etc/xmppd/xmppd.toml");
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("NoNewPrivileges"), "true");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("ReadWritePaths"), "/var/lib/xmppd");
    assert_eq!(one("StateDirectory"), "xmppd");
    assert_eq!(one("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one("LimitNOFILE"), "1048576");
    // The data_dir the unit makes writable is the one the example config
    // documents for a VPS.
    let example = include_str!("../config/xmppd.example.toml");
    assert!(example.contains("/var/lib/xmppd"), "example config mentions /var/lib/xmppd");
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not installed: static checks only");
        return;
    };
    assert!(out.status.success());
    // verify checks that ExecStart's binary exists: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("xmppd.service");
    std::fs::write(&unit, UNIT.replace("/usr/local/bin/xmppd", BIN)).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&unit).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    // Unknown keys and bad values are only warnings to verify: refuse them too.
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("xmppd.service")).collect();
    assert!(warnings.is_empty(), "systemd-analyze verify warnings:\n{text}");
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

fn config_text(dir: &std::path::Path, level: &str) -> String {
    format!(
        "hosts = [\"localhost\"]\ndata_dir = {:?}\n[[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n\
         [log]\nformat = \"json\"\nlevel = \"{level}\"\n",
        dir.join("data")
    )
}

/// The JSON log lines written so far, each parsed.
fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect()
}

fn messages(lines: &[serde_json::Value], level: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["level"] == level)
        .map(|l| l["fields"]["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn notifies_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("xmppd.toml");
    // Warnings only at first: the INFO lines of the start are not written.
    std::fs::write(&config, config_text(dir.path(), "warn")).unwrap();
    let log = dir.path().join("stderr.log");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let ready = recv(&sock);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // Ready means the admin socket answers: the HEALTHCHECK's command works.
    let status = Command::new(BIN).args(["ctl", "--config"]).arg(&config).arg("status").output().unwrap();
    assert!(status.status.success(), "{status:?}");

    assert!(messages(&json_lines(&log), "INFO").is_empty(), "level warn hides INFO");

    // SIGHUP with log.level = "info": the reload's own INFO line is written.
    std::fs::write(&config, config_text(dir.path(), "info")).unwrap();
    signal(child.id(), "-HUP");
    let reloading = recv(&sock);
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading:?}");
    assert!(reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading:?}");
    let again = recv(&sock);
    assert!(again.lines().any(|l| l == "READY=1") && again.contains("configuration reloaded"), "{again:?}");

    signal(child.id(), "-TERM");
    let stopping = recv(&sock);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let code = child.wait().unwrap();
    assert!(code.success(), "{code:?}");
    let info = messages(&json_lines(&log), "INFO");
    assert!(info.iter().any(|m| m == "configuration reloaded"), "{info:?}");
    assert!(info.iter().any(|m| m == "stopped"), "{info:?}");
}
