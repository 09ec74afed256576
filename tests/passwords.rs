//! Passwords are PRECIS OpaqueString (RFC 8265 §4.2, replacing the SASLprep
//! RFC 5802 §2.2 and RFC 4616 §2 call for): equivalent forms log in with
//! SCRAM and PLAIN, what the profile rejects is refused at every entry point.

mod common;

use common::*;
use std::process::Command;

const NFC: &str = "caf\u{e9} cr\u{e8}me"; // é, è precomposed
const NFD: &str = "cafe\u{301}\u{a0}cre\u{300}me"; // decomposed, no-break space

#[tokio::test]
async fn equivalent_forms_log_in_and_rejected_ones_do_not() {
    let srv = start_server_with("[auth]\nfailure_delay_ms = 0").await;
    srv.register("eve", NFD);
    srv.register("wide", "ｐａｓｓ");
    for (mech, pass) in [("SCRAM-SHA-256", NFC), ("SCRAM-SHA-1", NFD), ("SCRAM-SHA-256-PLUS", NFC)] {
        let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
        c.scram(mech, "eve", pass).await.unwrap_or_else(|e| panic!("{mech} {pass:?}: {e}"));
    }
    // PLAIN sends the password as typed; the server prepares it (RFC 4616 §2).
    for pass in [NFC, NFD, "cafe\u{301}\u{3000}cr\u{e8}me"] {
        let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
        let got = c.plain("eve", pass).await;
        assert!(got.contains("<success"), "{pass:?}: {got}");
    }
    // §4.2.1: width is not mapped, so full-width and ASCII stay different.
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    assert!(c.plain("wide", "ｐａｓｓ").await.contains("<success"));
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    assert!(c.plain("wide", "pass").await.contains("<not-authorized/>"));
    // A control character is no password (§4.2.2): not-authorized
    // (RFC 6120 §6.5.10), the syntax being valid PLAIN.
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    let got = c.plain("eve", &format!("{NFC}\u{7}")).await;
    assert!(got.contains("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>"), "{got}");
    srv.stop().await;
}

/// XEP-0077 §3.1 / §3.3: a password the profile rejects is not-acceptable.
#[tokio::test]
async fn in_band_registration_prepares_passwords() {
    let srv = start_server_with("[registration]\nenabled = true\nallow_from = [\"127.0.0.0/8\"]").await;
    let (mut c, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    let q = |id: &str, user: &str, pw: &str| {
        format!("<iq type='set' id='{id}'><query xmlns='jabber:iq:register'><username>{user}</username><password>{pw}</password></query></iq>")
    };
    // U+0085 (NEL) is a C1 control: valid XML, not an OpaqueString.
    c.send(&q("r1", "nel", "pass\u{85}word")).await;
    let got = c.expect("</iq>").await;
    assert!(got.contains("type='error'") && got.contains("<not-acceptable "), "{got}");
    // RFC 6120 §8.3.3.9 (as in XEP-0077's not-acceptable examples): type modify.
    assert!(got.contains("<error type='modify'><not-acceptable "), "{got}");
    c.send(&q("r2", "newbie", NFD)).await;
    let got = c.expect_any(&["/>", "</iq>"]).await;
    assert!(got.contains("type='result'") && got.contains("id='r2'"), "{got}");
    c.scram("SCRAM-SHA-256", "newbie", NFC).await.unwrap();
    srv.stop().await;
}

/// `xmppd ctl` with the daemon down: a rejected password is an error that
/// names the argument, exit code 1 (ejabberdctl's convention).
#[test]
fn ctl_refuses_passwords_the_profile_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = daemon::write_config(dir.path(), &dir.path().join("data"), 0);
    let ctl = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_xmppd")).arg("ctl").arg("--config").arg(&cfg).args(args).output();
        let out = out.unwrap();
        (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, err) = ctl(&["register", "bell", "localhost", "ring\u{7}"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        "Error: cannot_register: Can't register user bell@localhost: Invalid password: control character U+0007\n"
    );
    assert_eq!(ctl(&["check_account", "bell", "localhost"]).0, 1, "nothing was registered");
    assert_eq!(ctl(&["register", "eve", "localhost", NFD]), (0, String::new()));
    assert_eq!(ctl(&["check_password", "eve", "localhost", NFC]).0, 0);
    let (code, err) = ctl(&["change_password", "eve", "localhost", "\u{1b}[0m"]);
    assert_eq!((code, err.as_str()), (1, "Error: bad_argument: newpass: Invalid password: control character U+001B\n"));
    assert_eq!(ctl(&["check_password", "eve", "localhost", NFD]).0, 0, "password unchanged");
}
