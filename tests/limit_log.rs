//! The log line of a refused connection names the setting that refused it
//! (`limits.max_connections_per_ip` or `limits.max_connections`) and its
//! value, so an admin whose load test stalls at 1,000 connections from one
//! address finds what to raise. Its own test binary: it installs a global
//! log subscriber that writes to memory.

mod common;
use common::*;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn refused_connection_log_names_the_setting() {
    let out = Captured::default();
    let writer = out.clone();
    tracing_subscriber::fmt().json().with_writer(move || writer.clone()).init();
    let srv = start_server_with("[limits]\nmax_connections_per_ip = 1\nexempt_networks = []\n").await;
    let mut held = TestClient::connect_from(srv.c2s, "127.0.0.3").await;
    held.open().await;
    let mut over = TestClient::connect_from(srv.c2s, "127.0.0.3").await;
    assert!(over.expect_closed().await.contains("too many connections from your address"));
    let log = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
    let line = log.lines().find(|l| l.contains("connection limit reached")).unwrap_or_else(|| panic!("{log}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["fields"]["setting"], "limits.max_connections_per_ip", "{line}");
    assert_eq!(v["fields"]["limit"], 1, "{line}");
    assert_eq!(v["level"], "WARN", "{line}");
    srv.stop().await;
}
