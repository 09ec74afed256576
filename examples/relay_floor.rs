//! The machine's floor for the paced chat scenario: a relay that does what
//! xmppd does with a routed message minus TLS, XML, SASL and storage, and
//! a client that loads it the way `xmppd-load chat --rate` does.
//!
//! The server gives each connection a reader task and a writer task (as
//! xmppd does); the reader looks the destination up in a concurrent table
//! and queues the frame on the destination's channel; the writer writes
//! what is queued. The client opens USERS connections, and a pacer thread
//! (sleeping 100 µs to 1 ms, as xmppd-load's does) hands frames to
//! random connections at RATE per second; each frame carries its intended
//! send time, and latency is measured from it (no coordinated omission).
//!
//! ```text
//! cargo run --release --example relay_floor -- serve 127.0.0.1:16000
//! cargo run --release --example relay_floor -- load 127.0.0.1:16000 USERS RATE SECS [SERVER_PID]
//! ```
//! Run the two in separate processes, as the server and the tool are.

use dashmap::DashMap;
use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Bytes per frame: about what xmppd delivers for xmppd-load's chat
/// message (136 bytes sent, ~170 delivered with `from`).
const FRAME: usize = 160;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    match args.first().map(String::as_str) {
        Some("serve") => rt.block_on(serve(&args[1])),
        Some("load") => {
            let n: u32 = args[2].parse().unwrap();
            let rate: f64 = args[3].parse().unwrap();
            let secs: f64 = args[4].parse().unwrap();
            let pid: Option<u32> = args.get(5).and_then(|p| p.parse().ok());
            rt.block_on(load(&args[1], n, rate, secs, pid));
        }
        _ => eprintln!("usage: relay_floor serve ADDR | load ADDR USERS RATE SECS [SERVER_PID]"),
    }
}

type Table = Arc<DashMap<u32, mpsc::UnboundedSender<Vec<u8>>>>;

async fn serve(addr: &str) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let table: Table = Arc::default();
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tcp.set_nodelay(true);
        tokio::spawn(relay(tcp, table.clone()));
    }
}

async fn relay(tcp: TcpStream, table: Table) {
    let (mut rd, mut wr) = tcp.into_split();
    let Ok(id) = rd.read_u32().await else { return };
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    table.insert(id, tx);
    tokio::spawn(async move {
        let mut out = Vec::with_capacity(4 * FRAME);
        while let Some(f) = rx.recv().await {
            out.clear();
            out.extend_from_slice(&f);
            while let Ok(f) = rx.try_recv() {
                out.extend_from_slice(&f);
            }
            if wr.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 16 * 1024];
    let mut have = 0;
    loop {
        match rd.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => have += n,
        }
        let mut at = 0;
        while have - at >= FRAME {
            let f = &buf[at..at + FRAME];
            let to = u32::from_be_bytes(f[..4].try_into().unwrap());
            if let Some(dest) = table.get(&to) {
                let _ = dest.send(f.to_vec());
            }
            at += FRAME;
        }
        buf.copy_within(at..have, 0);
        have -= at;
    }
    table.remove(&id);
}

struct Stats {
    start: Instant,
    delivered: AtomicU64,
    latencies: Mutex<Vec<u32>>,
}

async fn load(addr: &str, n: u32, rate: f64, secs: f64, pid: Option<u32>) {
    let stats = Arc::new(Stats { start: Instant::now(), delivered: AtomicU64::new(0), latencies: Mutex::default() });
    let mut senders = Vec::with_capacity(n as usize);
    for id in 0..n {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        tcp.write_u32(id).await.unwrap();
        let (mut rd, mut wr) = tcp.into_split();
        let (tx, mut rx) = mpsc::channel::<(u32, u64)>(64);
        senders.push(tx);
        tokio::spawn(async move {
            let mut f = [b'x'; FRAME];
            while let Some((to, ts)) = rx.recv().await {
                f[..4].copy_from_slice(&to.to_be_bytes());
                f[4..12].copy_from_slice(&ts.to_be_bytes());
                if wr.write_all(&f).await.is_err() {
                    return;
                }
            }
        });
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut f = [0u8; FRAME];
            while rd.read_exact(&mut f).await.is_ok() {
                let ts = u64::from_be_bytes(f[4..12].try_into().unwrap());
                let now = stats.start.elapsed().as_micros() as u64;
                stats.latencies.lock().unwrap().push(now.saturating_sub(ts) as u32);
                stats.delivered.fetch_add(1, Relaxed);
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = || (pid.and_then(cpu_secs), cpu_secs(std::process::id()));
    let (s0, c0) = cpu();
    let st = stats.clone();
    // The pacer: item i is due at t0 + i/rate and carries that time.
    let sent = tokio::task::spawn_blocking(move || {
        let mut rng = rand::thread_rng();
        let t0 = st.start.elapsed();
        let (mut seq, dur) = (0u64, Duration::from_secs_f64(secs));
        loop {
            let el = st.start.elapsed() - t0;
            if el >= dur {
                return seq;
            }
            let due = (el.as_secs_f64() * rate) as u64 + 1;
            while seq < due {
                let ts = (t0.as_secs_f64() * 1e6 + seq as f64 * 1e6 / rate) as u64;
                let from = rng.gen_range(0..n);
                let to = (from + rng.gen_range(1..n)) % n;
                if senders[from as usize].try_send((to, ts)).is_err() {
                    eprintln!("a sender's queue is full");
                }
                seq += 1;
            }
            let next = Duration::from_secs_f64(seq as f64 / rate);
            let wait = next.saturating_sub(st.start.elapsed() - t0);
            std::thread::sleep(wait.clamp(Duration::from_micros(100), Duration::from_millis(1)));
        }
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats.delivered.load(Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (s1, c1) = cpu();
    let mut l = stats.latencies.lock().unwrap().clone();
    l.sort_unstable();
    let q = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1))).copied().unwrap_or(0) as f64 / 1000.0
    };
    let per100k = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.3}", (b - a) * 100_000.0 / sent.max(1) as f64),
        _ => "-".into(),
    };
    println!(
        "users {n} rate {rate} sent {sent} delivered {} p50_ms {:.3} p99_ms {:.3} p999_ms {:.3} server_cpu_s_per_100k {} client_cpu_s_per_100k {}",
        l.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        per100k(s0, s1),
        per100k(c0, c1)
    );
}

/// User plus system CPU seconds of a process (proc(5): utime and stime are
/// fields 14 and 15, counted after the command name's closing parenthesis).
fn cpu_secs(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    Some(ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}
