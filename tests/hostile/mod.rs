//! Helpers for the hostile-input tests: raw attack connections.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::HEADER;

/// Send `payload` on a new connection while reading what comes back,
/// until the server closes; returns what it sent.
pub async fn attack(addr: SocketAddr, payload: Vec<u8>) -> String {
    attack_stream(addr, payload, Vec::new(), 0).await
}

/// Send `head`, then `chunk` `times` times (without holding it all in
/// memory), reading concurrently until the server closes.
pub async fn attack_stream(addr: SocketAddr, head: Vec<u8>, chunk: Vec<u8>, times: usize) -> String {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = tcp.into_split();
    let writer = tokio::spawn(async move {
        for part in head.chunks(8192) {
            if w.write_all(part).await.is_err() {
                return;
            }
        }
        for _ in 0..times {
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // Keep the socket open: the server must be the one to close.
        tokio::time::sleep(Duration::from_secs(20)).await;
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), r.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("server did not close; got {:?}", String::from_utf8_lossy(&got)),
        }
    }
    writer.abort();
    String::from_utf8_lossy(&got).into_owned()
}

/// The client stream header followed by `rest`.
pub fn with_header(rest: &[u8]) -> Vec<u8> {
    let mut v = HEADER.as_bytes().to_vec();
    v.extend_from_slice(rest);
    v
}

/// `prefix`, `unit` `n` times, `suffix`.
pub fn repeat(prefix: &str, unit: &str, n: usize, suffix: &str) -> Vec<u8> {
    format!("{prefix}{}{suffix}", unit.repeat(n)).into_bytes()
}
