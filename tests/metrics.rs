//! The HTTP listener: `/metrics` in the OpenMetrics text format, parsed
//! strictly here; counters move with traffic; `xmppd ctl stats`.

mod common;

use common::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "hosts = [\"localhost\", \"example.org\"]\ndata_dir = {:?}\n\
         [[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n\
         [[listen]]\nkind = \"c2s_direct_tls\"\naddress = \"127.0.0.1:0\"\n\
         [[listen]]\nkind = \"http\"\naddress = \"127.0.0.1:0\"\n",
        dir.path().join("data")
    );
    start_server_file(dir, &toml).await
}

/// One HTTP/1.1 request; returns (status line, headers, body).
async fn http(addr: SocketAddr, method: &str, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_string(&mut out)).await.unwrap().unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_ascii_lowercase(), body.to_string())
}

/// Parse the OpenMetrics text format strictly enough to catch mistakes:
/// every sample belongs to a family declared by `# TYPE` before it, names
/// and labels are well formed, values are numbers, and `# EOF` ends it.
/// Returns `name{labels}` → value.
fn parse(text: &str) -> HashMap<String, f64> {
    let ident = |s: &str| {
        !s.is_empty()
            && s.chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
    };
    let mut families: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, value) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
            assert!(ident(name), "bad family name in {line:?}");
            match kind {
                "TYPE" => {
                    assert!(["counter", "gauge", "histogram", "info", "summary", "unknown"].contains(&value), "{line}");
                    assert!(families.insert(name.into(), value.into()).is_none(), "family declared twice: {name}");
                }
                "HELP" | "UNIT" => {}
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(ident(name), "bad metric name in {line:?}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).expect(line);
                for pair in inner.split(',') {
                    let (k, v) = pair.split_once('=').expect(line);
                    assert!(
                        ident(k) && v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "bad label in {line:?}"
                    );
                }
            }
        }
        let family = families
            .iter()
            .find(|(f, t)| {
                let suffixes: &[&str] = match t.as_str() {
                    "counter" => &["_total", "_created"],
                    "histogram" => &["_bucket", "_sum", "_count", "_created"],
                    _ => &[""],
                };
                suffixes.iter().any(|s| name == format!("{f}{s}"))
            })
            .unwrap_or_else(|| panic!("sample {name} before its # TYPE"));
        assert!(family.1 != "counter" || v >= 0.0, "negative counter {line}");
        assert!(samples.insert(series.to_string(), v).is_none(), "duplicate series {series}");
    }
    samples
}

async fn scrape(srv: &TestServer) -> HashMap<String, f64> {
    let (status, headers, body) = http(srv.http.unwrap(), "GET", "/metrics").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(headers.contains("content-type: application/openmetrics-text; version=1.0.0"), "{headers}");
    parse(&body)
}

#[tokio::test]
async fn metrics_parse_and_move_with_traffic() {
    let srv = start().await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let m0 = scrape(&srv).await;
    assert_eq!(m0["xmppd_sessions{host=\"localhost\"}"], 0.0);
    assert_eq!(m0["xmppd_registered_users{host=\"localhost\"}"], 2.0);
    assert_eq!(m0["xmppd_registered_users{host=\"example.org\"}"], 0.0);

    let mut alice = TestClient::online(&srv, "alice", "pa", "a", 0).await;
    let mut bob = TestClient::online(&srv, "bob", "pb", "b", 0).await;
    for i in 0..3 {
        alice.send(&format!("<message to='bob@localhost' type='chat' id='m{i}'><body>hi {i}</body></message>")).await;
        bob.expect_stanza(&format!("hi {i}")).await;
    }
    // A failed authentication.
    let (mut eve, _) = TestClient::connect_starttls(srv.c2s, &srv.ca_path()).await;
    assert!(eve.scram("SCRAM-SHA-256", "alice", "wrong").await.is_err());

    let m1 = scrape(&srv).await;
    let delta = |k: &str| m1[k] - m0.get(k).copied().unwrap_or(0.0);
    assert_eq!(m1["xmppd_sessions{host=\"localhost\"}"], 2.0);
    assert_eq!(m1["xmppd_sessions{host=\"example.org\"}"], 0.0);
    assert!(m1["xmppd_connections"] >= 3.0, "{m1:?}");
    assert!(delta("xmppd_connections_accepted_total") >= 3.0);
    assert_eq!(delta("xmppd_stanzas_received_total{kind=\"message\"}"), 3.0);
    assert!(delta("xmppd_stanzas_sent_total{kind=\"message\"}") >= 3.0);
    // Two presences, two sync pings in; their answers out.
    assert!(delta("xmppd_stanzas_received_total{kind=\"presence\"}") >= 2.0);
    assert!(delta("xmppd_stanzas_sent_total{kind=\"iq\"}") >= 2.0);
    assert_eq!(delta("xmppd_auth_failures_total"), 1.0);
    assert_eq!(delta("xmppd_auth_successes_total"), 2.0);
    assert_eq!(m1["xmppd_queue_drops_total"], 0.0);
    let reads = "xmppd_store_operation_duration_seconds_count{op=\"read\"}";
    assert!(delta(reads) > 0.0, "logins read credentials and rosters");
    assert_eq!(m1[reads], m1["xmppd_store_operation_duration_seconds_bucket{le=\"+Inf\",op=\"read\"}"]);

    // ejabberdctl's stats names.
    let out = tokio::task::spawn_blocking({
        let srv_dir = srv.dir.path().join("xmppd.toml");
        move || {
            let run = |a: &[&str]| {
                let a: Vec<String> = a.iter().map(|x| x.to_string()).collect();
                xmppd::ctl::run(Some(&srv_dir), &a)
            };
            [
                run(&["stats", "onlineusers"]),
                run(&["stats", "onlineusersnode"]),
                run(&["stats", "registeredusers"]),
                run(&["stats_host", "onlineusers", "localhost"]),
                run(&["stats_host", "registeredusers", "example.org"]),
                run(&["stats", "uptimeseconds"]),
                run(&["stats", "bogus"]),
                run(&["stats_host", "onlineusers", "nowhere.test"]),
            ]
        }
    })
    .await
    .unwrap();
    let stdout: Vec<&str> = out.iter().map(|o| o.stdout.as_str()).collect();
    assert_eq!(stdout[..5], ["2\n", "2\n", "2\n", "2\n", "0\n"], "{out:?}");
    assert!(stdout[5].trim().parse::<u64>().is_ok(), "{out:?}");
    assert_eq!(out[6].code, 1);
    assert!(out[6].stderr.contains("unknown statistic 'bogus'"), "{out:?}");
    assert_eq!(out[7].code, 1);
    assert!(out[7].stderr.contains("Unknown virtual host: nowhere.test"), "{out:?}");

    bob.send("</stream:stream>").await;
    bob.expect_closed().await;
    let m2 = scrape(&srv).await;
    assert_eq!(m2["xmppd_sessions{host=\"localhost\"}"], 1.0, "bob's session ended");
    drop(alice);
    srv.stop().await;
}

#[tokio::test]
async fn http_answers_other_paths_and_methods() {
    let srv = start().await;
    let addr = srv.http.unwrap();
    let (status, _, body) = http(addr, "GET", "/health").await;
    assert!(status.starts_with("HTTP/1.1 200") && body == "ok\n", "{status} {body}");
    assert!(http(addr, "GET", "/nope").await.0.starts_with("HTTP/1.1 404"));
    let (status, headers, _) = http(addr, "POST", "/metrics").await;
    assert!(status.starts_with("HTTP/1.1 405") && headers.contains("allow: get, head"), "{status} {headers}");
    // Not HTTP at all: the connection is closed with 400, the server goes on.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x16\x03\x01 garbage\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await.unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400"), "{out:?}");
    assert!(scrape(&srv).await.contains_key("xmppd_uptime_seconds"));
    srv.stop().await;
}
