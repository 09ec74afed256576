//! Memory stays bounded whatever clients send (issue 5 items 1, 5, 9).
//! Its own test binary, so VmRSS measures only this file's servers (the
//! tests in it take a lock so they do not overlap).

mod common;
mod hostile;

use common::{fresh_pair_chats, rss_kib, start_server, start_server_with, TestClient};
use hostile::{attack_stream, with_header};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Samples VmRSS every few milliseconds and keeps the peak.
fn rss_sampler() -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let peak = Arc::new(AtomicU64::new(rss_kib()));
    let p = peak.clone();
    let task = tokio::spawn(async move {
        loop {
            p.fetch_max(rss_kib(), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    (peak, task)
}

/// Many connections each pushing megabytes without a complete stanza:
/// every one is cut at max_stanza_size, and the server's memory stays
/// bounded (each holds at most one partial stanza).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_under_floods() {
    let _one = ONE_AT_A_TIME.lock().await;
    let srv = start_server().await;
    let before = rss_kib();
    let (peak, sampler) = rss_sampler();
    let mut tasks = Vec::new();
    // 40 connections × 4 MiB: 160 MiB if the server buffered it.
    for i in 0..40 {
        let (head, unit) = match i % 3 {
            0 => ("<message><body>", "z"),
            1 => ("<message to='x@y'", " "),
            _ => ("<iq><query>", "<x a='1'/>"),
        };
        let chunk = unit.repeat(8192 / unit.len()).into_bytes();
        tasks.push(tokio::spawn(attack_stream(srv.c2s, with_header(head.as_bytes()), chunk, 512)));
    }
    for t in tasks {
        let got = t.await.unwrap();
        assert!(got.contains("<policy-violation"), "{got}");
    }
    sampler.abort();
    let peak = peak.load(Ordering::Relaxed);
    let growth = peak.saturating_sub(before);
    println!("floods: RSS before {before} KiB, peak {peak} KiB, growth {growth} KiB");
    // 40 × 256 KiB of partial stanzas is 10 MiB (20 with Vec growth).
    assert!(growth < 64 * 1024, "RSS grew by {growth} KiB");
    fresh_pair_chats(&srv, "m").await;
    srv.stop().await;
}

/// A recipient that stops reading while a sender floods it: its queue is
/// bounded in bytes, it is closed with <policy-violation/> (counted in
/// metrics), later messages go to offline storage (RFC 6121 §8.5.2.2.1),
/// the sender is unaffected and memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_cut_and_memory_stays_bounded() {
    let _one = ONE_AT_A_TIME.lock().await;
    let srv =
        // Offline storage large enough for every message alice sends
        // between bob's cut and her seeing it (a few hundred, by timing).
        start_server_with(
            "[limits]\nshaper_bytes_per_sec = 0\nstanzas_per_sec = 0\noutbound_queue_bytes = 262144\n\
             [im]\nmax_offline_messages = 10000\n",
        )
        .await;
    srv.register("alice", "pa");
    srv.register("bob", "pb");
    let mut a = TestClient::online(&srv, "alice", "pa", "a", 0).await;
    let _b = TestClient::online(&srv, "bob", "pb", "b", 0).await; // never reads again
    let before = rss_kib();
    let (peak, sampler) = rss_sampler();
    let body = "q".repeat(16 * 1024);
    let m = &srv.shared.metrics.slow_consumers_closed_total;
    let mut sent = 0;
    while m.load(Ordering::Relaxed) == 0 {
        assert!(sent < 4000, "bob was never cut off after {sent} messages");
        a.send(&format!("<message to='bob@localhost/b' type='chat'><body>{body}</body></message>")).await;
        sent += 1;
    }
    // A few more after the cut: stored, not queued.
    for i in 0..5 {
        a.send(&format!("<message to='bob@localhost' type='chat' id='after{i}'><body>later</body></message>")).await;
    }
    a.send("<iq type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    a.expect_stanza("id='alive'").await;
    sampler.abort();
    let peak = peak.load(Ordering::Relaxed);
    let growth = peak.saturating_sub(before);
    println!("slow consumer: cut after {sent} messages of 16 KiB; RSS growth {growth} KiB");
    assert!(growth < 64 * 1024, "RSS grew by {growth} KiB");
    let bob = xmppd::jid::Jid::parse("bob@localhost").unwrap();
    for _ in 0..50 {
        if srv.shared.router.sessions_of(&bob).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(srv.shared.router.sessions_of(&bob).is_empty(), "bob's session is gone");
    let stored = srv.shared.store.offline("bob", "localhost").unwrap();
    assert!(stored.iter().any(|m| m.stanza.contains("later")), "{}", stored.len());
    fresh_pair_chats(&srv, "s").await;
    srv.stop().await;
}
