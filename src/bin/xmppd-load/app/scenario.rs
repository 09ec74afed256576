//! The scenarios: log a fleet of users in, then measure.

use super::conn::{self, Cmd, LoginResult};
use super::report::Report;
use super::{procstat, secs, Ctx};
use rand::{Rng, SeedableRng};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

/// Commands queued per connection before the dispatcher picks another.
const CMD_QUEUE: usize = 32;

/// A logged-in user the scenario can drive.
pub struct Online {
    pub idx: u64,
    pub tx: mpsc::Sender<Cmd>,
    pub roster: u64,
}

/// The logged-in connections.
pub struct Fleet {
    pub online: Vec<Online>,
    tasks: JoinSet<()>,
}

impl Fleet {
    /// Close every connection (the tasks send `</stream:stream>`) and wait.
    pub async fn close(mut self) {
        self.online.clear();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, self.tasks.join_next()).await {}
        self.tasks.abort_all();
    }
}

/// Log `--users` users in with `--concurrency` logins at once and at most
/// `--login-rate` starts per second; login statistics go into `report`.
pub async fn login_all(ctx: &Arc<Ctx>, report: &mut Report) -> Fleet {
    let a = &ctx.args;
    let n = a.users;
    let slots = Arc::new(Semaphore::new(a.concurrency));
    let (res_tx, mut res_rx) = mpsc::unbounded_channel::<LoginResult>();
    let mut tasks = JoinSet::new();
    let mut senders = Vec::with_capacity(n as usize);
    let start = tokio::time::Instant::now();
    for k in 0..n {
        if a.login_rate > 0.0 {
            tokio::time::sleep_until(start + secs(k as f64 / a.login_rate)).await;
        }
        let permit = slots.clone().acquire_owned().await.expect("semaphore open");
        let (tx, rx) = mpsc::channel(CMD_QUEUE);
        senders.push(Some(tx));
        tasks.spawn(conn::connection(ctx.clone(), a.first + k, k, rx, res_tx.clone(), permit));
    }
    drop(res_tx);
    let mut online = Vec::with_capacity(n as usize);
    while let Some((k, r)) = res_rx.recv().await {
        if let (Ok(ok), Some(tx)) = (r, senders[k as usize].take()) {
            online.push(Online { idx: a.first + k, tx, roster: ok.roster_items });
        }
    }
    let took = start.elapsed().as_secs_f64();
    online.sort_by_key(|o| o.idx);
    let s = &ctx.stats;
    let ok = s.logins_ok.load(Relaxed);
    let h = s.login_hist.lock().unwrap().clone();
    report.set("logins_ok", ok);
    report.set("logins_failed", s.logins_failed.load(Relaxed));
    report.set("login_phase_s", took);
    report.set("logins_per_s", ok as f64 / took.max(1e-9));
    report.set("login_ms_p50", h.quantile(0.5) as f64 / 1000.0);
    report.set("login_ms_p99", h.quantile(0.99) as f64 / 1000.0);
    report.set("login_ms_max", h.max() as f64 / 1000.0);
    report.set("roster_items_avg", if ok > 0 { s.roster_items.load(Relaxed) as f64 / ok as f64 } else { 0.0 });
    Fleet { online, tasks }
}

/// login: logins/s and login time (connect to roster result).
pub async fn login(ctx: &Arc<Ctx>, report: &mut Report) {
    report.set("login_rate_target", ctx.args.login_rate);
    report.set("concurrency", ctx.args.concurrency);
    let pid = ctx.args.server_pid;
    let cpu0 = pid.and_then(procstat::cpu_secs);
    let fleet = login_all(ctx, report).await;
    let cpu1 = pid.and_then(procstat::cpu_secs);
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        let ok = fleet.online.len().max(1) as f64;
        report.set("server_cpu_s", b - a);
        report.set("server_cpu_ms_per_login", (b - a) * 1000.0 / ok);
    }
    fleet.close().await;
}

/// idle: the server's resident memory per idle connection.
pub async fn idle(ctx: &Arc<Ctx>, report: &mut Report) {
    let pid = ctx.args.server_pid;
    let rss0 = pid.and_then(procstat::rss_kb);
    let self0 = procstat::self_rss_kb();
    let fleet = login_all(ctx, report).await;
    let n = fleet.online.len() as f64;
    let rss1 = pid.and_then(procstat::rss_kb);
    tokio::time::sleep(Duration::from_secs(ctx.args.hold)).await;
    let rss2 = pid.and_then(procstat::rss_kb);
    let self2 = procstat::self_rss_kb();
    report.set("connected", fleet.online.len());
    report.set("hold_s", ctx.args.hold);
    report.set("server_rss_before_kb", rss0);
    report.set("server_rss_after_login_kb", rss1);
    report.set("server_rss_after_hold_kb", rss2);
    if let (Some(a), Some(b)) = (rss0, rss2) {
        report.set("server_kb_per_conn", (b as f64 - a as f64) / n.max(1.0));
    }
    if let (Some(a), Some(b)) = (self0, self2) {
        report.set("tool_kb_per_conn", (b as f64 - a as f64) / n.max(1.0));
    }
    fleet.close().await;
}

/// A full flat-out window is refilled once 1/LOW_WATER of it is free.
const LOW_WATER: u64 = 8;

/// Shortest pause of the paced sender: bounds its wake-ups to 10,000/s.
const PACE_MIN: Duration = Duration::from_micros(100);

/// Sends what `next` produces at `--rate` per second, or flat out while
/// fewer than `--window` deliveries are outstanding, for `--duration`
/// seconds, then waits for what is in flight. `next(seq, ts)` dispatches
/// one item and returns how many deliveries it expects (0: not sent).
/// Returns (items dispatched, deliveries expected, seconds of sending).
async fn drive(
    ctx: &Arc<Ctx>,
    limit: u64,
    mut next: impl FnMut(u64, u64) -> u64,
    delivered: impl Fn() -> u64,
) -> (u64, u64, f64) {
    let a = &ctx.args;
    let start = Instant::now();
    let start_us = ctx.now_us();
    let dur = secs(a.duration);
    let (mut seq, mut expected) = (0u64, 0u64);
    if a.rate > 0.0 {
        // Open loop: item i is due at start + i/rate and carries that
        // intended time, so a stalled server is not hidden (coordinated omission).
        // The pacer sleeps on this thread (block_in_place hands the worker's
        // other tasks over) until the next item is due, at least PACE_MIN
        // apart: tokio's 1 ms timer wheel added ~1-2 ms to every latency and
        // sent items in bursts of rate/1000.
        tokio::task::block_in_place(|| loop {
            let el = start.elapsed();
            if el >= dur || seq >= limit {
                break;
            }
            let due = ((el.as_secs_f64() * a.rate) as u64 + 1).min(limit);
            while seq < due {
                let ts = start_us + (seq as f64 * 1e6 / a.rate) as u64;
                expected += next(seq, ts);
                seq += 1;
            }
            let next_at = Duration::from_secs_f64(seq as f64 / a.rate);
            let wait = next_at.saturating_sub(start.elapsed());
            std::thread::sleep(wait.clamp(PACE_MIN, Duration::from_millis(1)));
        });
    } else {
        // Closed loop: keep up to --window deliveries outstanding.
        while start.elapsed() < dur && seq < limit {
            let mut burst = 0;
            while expected.saturating_sub(delivered()) < a.window && burst < 256 && seq < limit {
                expected += next(seq, ctx.now_us());
                seq += 1;
                burst += 1;
            }
            if burst == 0 {
                // The window is full: sleep until a batch of it is free
                // (LOW_WATER), not after every delivery, so that commands
                // reach the connections in batches.
                let s = &ctx.stats;
                let free_at = a.window - (a.window / LOW_WATER).max(1);
                let need = expected.saturating_sub(delivered()).saturating_sub(free_at);
                s.wake_at.store(s.events.load(Relaxed) + need, Relaxed);
                let _ = tokio::time::timeout(Duration::from_millis(5), s.progress.notified()).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
    }
    ctx.stats.wake_at.store(0, Relaxed);
    let sending = start.elapsed().as_secs_f64();
    // Wait for what is in flight.
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    while delivered() < expected && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(20), ctx.stats.progress.notified()).await;
    }
    (seq, expected, sending)
}

fn latency(report: &mut Report, prefix: &str, h: &super::hist::Hist) {
    report.set(&format!("{prefix}_samples"), h.count());
    report.set(&format!("{prefix}_ms_mean"), h.mean() / 1000.0);
    report.set(&format!("{prefix}_ms_p50"), h.quantile(0.5) as f64 / 1000.0);
    report.set(&format!("{prefix}_ms_p99"), h.quantile(0.99) as f64 / 1000.0);
    report.set(&format!("{prefix}_ms_p999"), h.quantile(0.999) as f64 / 1000.0);
    report.set(&format!("{prefix}_ms_max"), h.max() as f64 / 1000.0);
}

/// chat: every online user may send to any other; delivered msgs/s,
/// latency, loss and the server's CPU time per 100k messages.
pub async fn chat(ctx: &Arc<Ctx>, report: &mut Report) {
    let fleet = login_all(ctx, report).await;
    let online = &fleet.online;
    if online.len() < 2 {
        ctx.stats.error("chat needs at least two users online".into());
        fleet.close().await;
        return;
    }
    let s = &ctx.stats;
    let pid = ctx.args.server_pid;
    let cpu0 = pid.and_then(procstat::cpu_secs);
    let t0_us = ctx.now_us();
    let mut rng = rand::rngs::StdRng::from_entropy();
    let n = online.len();
    let mut backpressure = 0u64;
    let burst = ctx.args.sender_burst.max(1);
    // The current sender and how many more of its burst are left.
    let (mut sender, mut left) = (0usize, 0u64);
    let (dispatched, expected, sending) = drive(
        ctx,
        u64::MAX,
        |seq, ts| {
            if left == 0 {
                sender = rng.gen_range(0..n);
                left = burst;
            }
            left -= 1;
            let mut from = sender;
            let mut to = rng.gen_range(0..n - 1);
            if to >= from {
                to += 1;
            }
            // A full queue means that connection is still writing: pick another sender.
            for _ in 0..8 {
                match online[from].tx.try_send(Cmd::Chat { to: online[to].idx, seq, ts }) {
                    Ok(()) => return 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        backpressure += 1;
                        from = (from + 1) % n;
                        if from == to {
                            from = (from + 1) % n;
                        }
                        // The burst goes on from the sender that had room.
                        sender = from;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        s.undeliverable_cmds.fetch_add(1, Relaxed);
                        return 0;
                    }
                }
            }
            0
        },
        || s.delivered.load(Relaxed) + s.bounced.load(Relaxed),
    )
    .await;
    let cpu1 = pid.and_then(procstat::cpu_secs);
    let delivered = s.delivered.load(Relaxed);
    let bounced = s.bounced.load(Relaxed);
    let sent = s.sent.load(Relaxed);
    let last = s.last_delivery_us.load(Relaxed).max(t0_us + 1);
    let secs_to_last = (last - t0_us) as f64 / 1e6;
    report.set("rate_target", ctx.args.rate);
    report.set("window", if ctx.args.rate > 0.0 { None } else { Some(ctx.args.window) });
    report.set("duration_s", sending);
    report.set("msgs_dispatched", dispatched);
    report.set("msgs_expected", expected);
    report.set("msgs_sent", sent);
    report.set("msgs_delivered", delivered);
    report.set("msgs_bounced", bounced);
    // Every message handed to a connection must come back (delivered or
    // bounced); `sent` (counted after the write returns) can lag behind.
    report.set("msgs_lost", expected as i64 - delivered as i64 - bounced as i64);
    report.set("dispatch_backpressure", backpressure);
    report.set("msgs_per_s", delivered as f64 / secs_to_last.max(1e-9));
    latency(report, "latency", &s.msg_hist.lock().unwrap().clone());
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        report.set("server_cpu_s", b - a);
        report.set(
            "server_cpu_s_per_100k",
            if delivered > 0 { (b - a) * 100_000.0 / delivered as f64 } else { f64::NAN },
        );
    }
    fleet.close().await;
}

/// presence: users with rosters log in (initial presence, probes), then
/// each changes presence `--updates` times; presence stanzas delivered/s.
pub async fn presence(ctx: &Arc<Ctx>, report: &mut Report) {
    let fleet = login_all(ctx, report).await;
    let s = &ctx.stats;
    let online = &fleet.online;
    let with_roster = online.iter().filter(|o| o.roster > 0).count();
    report.set("users_with_roster", with_roster);
    if let Some(min) = online.iter().map(|o| o.roster).min() {
        report.set("roster_items_min", min);
    }
    if online.is_empty() || with_roster == 0 {
        s.error("presence: the users have empty rosters; provision contacts first (see bench/README.md)".into());
        fleet.close().await;
        return;
    }
    if ctx.args.contacts > 0 && online.iter().any(|o| o.roster != ctx.args.contacts) {
        s.error(format!("presence: some rosters do not have {} items", ctx.args.contacts));
    }
    // Let the login-time presence (broadcasts and probe answers) settle.
    let mut last = s.presence_rx.load(Relaxed);
    let settle = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = s.presence_rx.load(Relaxed);
        if now == last || settle.elapsed() > Duration::from_secs(ctx.args.timeout) {
            break;
        }
        last = now;
    }
    let login_presence = s.presence_rx.load(Relaxed);
    report.set("login_presence_rx", login_presence);
    let pid = ctx.args.server_pid;
    let cpu0 = pid.and_then(procstat::cpu_secs);
    let t0_us = ctx.now_us();
    let n = online.len() as u64;
    let total = n * ctx.args.updates.max(1);
    let (dispatched, expected, sending) = drive(
        ctx,
        total,
        |seq, ts| {
            let o = &online[(seq % n) as usize];
            let away = (seq / n) % 2 == 0;
            match o.tx.try_send(Cmd::Presence { seq, ts, away }) {
                Ok(()) => o.roster,
                Err(_) => 0,
            }
        },
        || s.presence_timed.load(Relaxed),
    )
    .await;
    let cpu1 = pid.and_then(procstat::cpu_secs);
    // Deliveries of the updates are the stamped presences; unstamped ones
    // arriving now are late login-time presence (broadcasts, probe answers).
    let got = s.presence_timed.load(Relaxed);
    report.set("login_presence_late", (s.presence_rx.load(Relaxed) - login_presence).saturating_sub(got));
    let lastd = s.last_delivery_us.load(Relaxed).max(t0_us + 1);
    let secs_to_last = (lastd - t0_us) as f64 / 1e6;
    report.set("updates_dispatched", dispatched.min(total));
    report.set("updates_sent", s.presence_sent.load(Relaxed));
    report.set("duration_s", sending);
    report.set("presence_expected", expected);
    report.set("presence_delivered", got);
    report.set("presence_lost", expected as i64 - got as i64);
    report.set("presence_per_s", got as f64 / secs_to_last.max(1e-9));
    latency(report, "presence_latency", &s.presence_hist.lock().unwrap().clone());
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        report.set("server_cpu_s", b - a);
        report.set("server_cpu_s_per_100k", if got > 0 { (b - a) * 100_000.0 / got as f64 } else { f64::NAN });
    }
    fleet.close().await;
}
