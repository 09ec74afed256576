//! Smoke test of the load tool (`xmppd-load`, bench/README.md): an
//! in-process server, 10 users, the login scenario and one second of chat,
//! through the tool's library entry. No timing assertions.

mod common;

#[allow(dead_code)]
#[path = "../src/bin/xmppd-load/app/mod.rs"]
mod app;

use clap::Parser;

fn args(srv: &common::TestServer, scenario: &str, extra: &[&str]) -> app::Args {
    let server = srv.c2s.to_string();
    let ca = srv.ca_path().display().to_string();
    let mut v = vec!["xmppd-load", scenario, "--server", &server, "--ca", &ca, "--users", "10", "--sources", "2"];
    v.extend_from_slice(extra);
    app::Args::parse_from(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_chat_smoke() {
    let srv = common::start_server().await;
    for i in 1..=10 {
        srv.register(&format!("u{i}"), &format!("pw{i}"));
    }

    let r = app::run(args(&srv, "login", &["--concurrency", "5"])).await.unwrap();
    println!("{}", r.to_text());
    assert_eq!(r.int("logins_ok"), 10, "{}", r.to_text());
    assert_eq!(r.int("logins_failed"), 0);
    assert_eq!(r.int("disconnects"), 0);

    // Pipelined login (the default) is above; also the one-request-at-a-time
    // login, the mechanism chosen from the features, and pipelined PLAIN.
    for (extra, mech) in [
        (&["--no-pipeline"][..], "SCRAM-SHA-256"),
        (&["--mech", "auto"], "SCRAM-SHA-256"),
        (&["--mech", "plain"], "PLAIN"),
    ] {
        let r = app::run(args(&srv, "login", extra)).await.unwrap();
        assert_eq!(r.int("logins_ok"), 10, "{extra:?}: {}", r.to_text());
        assert_eq!(r.get("errors"), Some(&app::report::Value::Null), "{extra:?}: {}", r.to_text());
        assert_eq!(r.get("mech"), Some(&app::report::Value::Str(mech.into())), "{extra:?}: {}", r.to_text());
    }

    // --insecure: no chain check (handshake signatures still are).
    let server = srv.c2s.to_string();
    let insecure = ["xmppd-load", "login", "--server", &server, "--insecure", "--users", "10", "--sources", "2"];
    let r = app::run(app::Args::parse_from(insecure)).await.unwrap();
    assert_eq!(r.int("logins_ok"), 10, "--insecure: {}", r.to_text());

    let r = app::run(args(&srv, "chat", &["--duration", "1", "--window", "50", "--body-size", "8"])).await.unwrap();
    println!("{}", r.to_text());
    assert_eq!(r.int("logins_failed"), 0, "{}", r.to_text());
    assert!(r.int("msgs_sent") > 0, "{}", r.to_text());
    let stuck: usize = (1..=10).map(|i| srv.shared.store.offline(&format!("u{i}"), "localhost").unwrap().len()).sum();
    assert_eq!(r.int("msgs_lost"), 0, "{} stored offline: {stuck}", r.to_text());
    assert_eq!(r.int("msgs_bounced"), 0);
    assert_eq!(r.int("msgs_delivered"), r.int("msgs_sent"));
    assert_eq!(r.int("disconnects"), 0);
    assert_eq!(r.get("errors"), Some(&app::report::Value::Null), "{}", r.to_text());

    // Senders in bursts, paced: everything arrives, nothing lost.
    let burst = ["--duration", "1", "--rate", "400", "--sender-burst", "4", "--body-size", "8"];
    let r = app::run(args(&srv, "chat", &burst)).await.unwrap();
    assert!(r.int("msgs_sent") >= 300, "{}", r.to_text());
    assert_eq!(r.int("msgs_lost"), 0, "{}", r.to_text());
    assert_eq!(r.int("msgs_delivered"), r.int("msgs_sent"), "{}", r.to_text());
    assert_eq!(r.get("errors"), Some(&app::report::Value::Null), "{}", r.to_text());

    srv.stop().await;
}
