//! `[auth] scram_hashes`: which SCRAM families new passwords are stored as
//! and which mechanisms are offered (RFC 6120 §6.4.1: the server lists what
//! it supports; §6.5.8: anything else is invalid-mechanism).

mod common;

use common::*;
use std::process::Command;

/// SHA-256 only: register_bulk (daemon down) stores no SHA-1 keys, the
/// server offers no SCRAM-SHA-1[-PLUS], and the accounts log in with
/// SCRAM-SHA-256, its -PLUS and PLAIN.
#[tokio::test]
async fn sha256_only_stores_and_offers_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "hosts = [\"localhost\"]\ndata_dir = \"{}\"\n[auth]\nscram_hashes = [\"sha-256\"]\nfailure_delay_ms = 0\n\
         [[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n\
         [[listen]]\nkind = \"c2s_direct_tls\"\naddress = \"127.0.0.1:0\"\n",
        dir.path().join("data").display()
    );
    let cfg = dir.path().join("xmppd.toml");
    std::fs::write(&cfg, &toml).unwrap();
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "ann localhost pw-ann\nben localhost pw-ben\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xmppd"))
        .args(["ctl", "--config", cfg.to_str().unwrap(), "register_bulk", users.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let srv = start_server_file(dir, &toml).await;
    let creds = srv.shared.store.get_credentials("ann", "localhost").unwrap().unwrap();
    assert!(creds.sha1.stored_key.is_empty() && creds.sha1.salt.is_empty(), "no SHA-1 keys: {creds:?}");
    assert_eq!(creds.sha256.stored_key.len(), 32);

    let (mut c, f) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    for m in ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"] {
        assert!(f.contains(&format!("<mechanism>{m}</mechanism>")), "{m} offered: {f}");
    }
    assert!(!f.contains("SCRAM-SHA-1"), "SCRAM-SHA-1 not offered: {f}");
    c.scram("SCRAM-SHA-256", "ann", "pw-ann").await.unwrap();
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    c.scram("SCRAM-SHA-256-PLUS", "ben", "pw-ben").await.unwrap();
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    assert!(c.plain("ben", "pw-ben").await.contains("<success"));

    // RFC 6120 §6.5.8: a mechanism not offered is invalid-mechanism.
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>biwsbj1hbm4scj1hYmM=</auth>").await;
    let got = c.expect("</failure>").await;
    assert!(got.contains("<invalid-mechanism/>"), "{got}");
    srv.stop().await;
}

/// The default stores and offers both families.
#[tokio::test]
async fn default_offers_both() {
    let srv = start_server().await;
    srv.register("cat", "pw");
    let (_, f) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    for m in ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"] {
        assert!(f.contains(&format!("<mechanism>{m}</mechanism>")), "{m}: {f}");
    }
    let policy = srv.shared.config().auth.key_policy();
    assert!(policy.sha1 && policy.sha256 && policy.iterations == 4096, "{policy:?}");
    srv.stop().await;
}

const LISTEN: &str = "[[listen]]\nkind = 'c2s'\naddress = '127.0.0.1:5222'\n";

/// Bad values name the key; the process exits non-zero.
#[test]
fn bad_scram_hashes_name_the_key() {
    let parse = |v: &str| {
        let text = format!("hosts = ['localhost']\n{LISTEN}[auth]\nscram_hashes = {v}\n");
        xmppd::config::Config::parse(&text, "x.toml").map(|_| ()).unwrap_err().to_string()
    };
    let e = parse("[]");
    assert!(e.contains("auth.scram_hashes") && e.contains("at least one"), "{e}");
    let e = parse("['md5']");
    assert!(e.contains("scram_hashes") && e.contains("md5"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("x.toml");
    std::fs::write(&cfg, format!("hosts = ['localhost']\n{LISTEN}[auth]\nscram_hashes = []\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xmppd")).args(["check-config", "--config"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.scram_hashes"));
}
