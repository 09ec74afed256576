//! xmppd-load: an XMPP client load generator (login, idle, chat, presence).
//!
//! Shape: one tokio task per client connection, which logs in (STARTTLS,
//! SASL, bind, roster get, initial presence) and then serves the scenario:
//! it writes what the scenario's dispatcher hands it through a small
//! channel and reads with a per-thread scratch buffer straight into an
//! [`xmppd::xml::Framer`], so an idle connection holds no read buffer.
//! Received stanzas are classified with byte searches, never parsed into
//! trees. Latencies go into a log-linear histogram ([`hist`]).
//!
//! Traffic goes only to loopback: `--server` must be a 127.0.0.0/8 or ::1
//! address, and client sockets are bound to 127.0.0.2.. so that more
//! connections than one source address has ephemeral ports can be opened.

pub mod conn;
pub mod hist;
pub mod procstat;
pub mod provision;
pub mod pwcache;
pub mod report;
pub mod scenario;
pub mod tlsconf;

use clap::{Parser, ValueEnum};
use hist::Hist;
use pwcache::PasswordCache;
use report::Report;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most client connections one run may open.
pub const MAX_USERS: u64 = 200_000;
/// Longest a timed phase (`--duration`, `--hold`) may last, seconds.
pub const MAX_SECS: u64 = 3_600;

/// What the run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScenarioKind {
    /// N users log in (concurrency C, optional rate): logins/s and login time.
    Login,
    /// N users connect and stay idle: the server's RSS per connection.
    Idle,
    /// N users send chat messages to random online users: msgs/s, latency.
    Chat,
    /// Users with rosters log in and change presence: presence stanzas/s.
    Presence,
    /// Not a load: register the users in a stopped xmppd's --data-dir
    /// (stopgap where `xmppd ctl register_bulk` is unavailable).
    Provision,
}

/// SASL mechanism to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mech {
    /// SCRAM-SHA-256 if offered, else SCRAM-SHA-1, else PLAIN.
    Auto,
    #[value(name = "scram-sha-256")]
    ScramSha256,
    #[value(name = "scram-sha-1")]
    ScramSha1,
    Plain,
}

impl Mech {
    /// The SASL name of a fixed mechanism ("" for `Auto`, decided from the features).
    pub fn name(self) -> &'static str {
        match self {
            Mech::Auto => "",
            Mech::ScramSha256 => "SCRAM-SHA-256",
            Mech::ScramSha1 => "SCRAM-SHA-1",
            Mech::Plain => "PLAIN",
        }
    }
}

/// Command line.
#[derive(Clone, Debug, Parser)]
#[command(name = "xmppd-load", version, about = "XMPP client load generator (loopback only)")]
pub struct Args {
    /// Scenario to run.
    #[arg(value_enum)]
    pub scenario: ScenarioKind,
    /// Server address (a loopback IP and port; `localhost:PORT` means 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1:5222")]
    pub server: String,
    /// XMPP domain of the accounts (the stream's `to`).
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// TLS server name to verify (default: the domain).
    #[arg(long)]
    pub tls_name: Option<String>,
    /// PEM file with the CA that signed the server's certificate (xmppd: DATA_DIR/tls/ca.pem).
    #[arg(long, conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Do not verify the server's certificate.
    #[arg(long)]
    pub insecure: bool,
    /// Allow TLS session resumption between this run's connections (off: every login is a full handshake).
    #[arg(long)]
    pub tls_resume: bool,
    /// Wait for each answer before the next request during login (off: pipeline
    /// where the protocol allows, as fast clients do; needs a fixed --mech).
    #[arg(long)]
    pub no_pipeline: bool,
    /// Number of users (connections).
    #[arg(long, short = 'n', default_value_t = 100)]
    pub users: u64,
    /// Index of the first user.
    #[arg(long, default_value_t = 1)]
    pub first: u64,
    /// User names are PREFIX{i}.
    #[arg(long, default_value = "u")]
    pub prefix: String,
    /// Passwords are PWPREFIX{i} ...
    #[arg(long, default_value = "pw")]
    pub password_prefix: String,
    /// ... unless one shared password is given.
    #[arg(long)]
    pub password: Option<String>,
    /// SASL mechanism.
    #[arg(long, value_enum, default_value = "scram-sha-256")]
    pub mech: Mech,
    /// Resource to bind.
    #[arg(long, default_value = "load")]
    pub resource: String,
    /// Client source addresses 127.0.0.2 .. 127.0.0.(K+1), round robin (0: let the kernel choose).
    #[arg(long, default_value_t = 4)]
    pub sources: u8,
    /// Logins in progress at once.
    #[arg(long, short = 'c', default_value_t = 50)]
    pub concurrency: usize,
    /// Logins started per second (0: as fast as the concurrency allows).
    #[arg(long, default_value_t = 0.0)]
    pub login_rate: f64,
    /// Server process id, for RSS (idle) and CPU time (chat, presence).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Idle: seconds to hold the connections.
    #[arg(long, default_value_t = 10)]
    pub hold: u64,
    /// Chat/presence: aggregate stanzas per second (0: flat out, bounded by --window).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Chat/presence: seconds of sending.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Most deliveries outstanding at once in flat-out mode.
    #[arg(long, default_value_t = 1000)]
    pub window: u64,
    /// Chat: consecutive messages one sender sends (each to its own random
    /// recipient) before the next sender is drawn; more than 1 lets a
    /// connection write several messages at once.
    #[arg(long, default_value_t = 1)]
    pub sender_burst: u64,
    /// Chat: extra body bytes after the sequence number and timestamp.
    #[arg(long, default_value_t = 32)]
    pub body_size: usize,
    /// Presence: expected roster size per user (checked; 0: accept any non-empty roster).
    #[arg(long, default_value_t = 0)]
    pub contacts: u64,
    /// Presence: presence changes per user.
    #[arg(long, default_value_t = 5)]
    pub updates: u64,
    /// File of SCRAM SaltedPasswords kept between runs.
    #[arg(long)]
    pub password_cache: Option<PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Label put in the summary (e.g. the server's name).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Worker threads of the tool (default: CPU count).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seconds a login may take; also the wait for in-flight stanzas at the end.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Provision: the xmppd data directory (the server must be stopped).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Provision: PBKDF2 iterations of the stored credentials.
    #[arg(long, default_value_t = 4096)]
    pub iterations: u32,
}

impl Args {
    /// The server address, checked to be loopback.
    pub fn server_addr(&self) -> anyhow::Result<SocketAddr> {
        let s = self.server.replace("localhost:", "127.0.0.1:");
        let addr: SocketAddr = s.parse().map_err(|_| anyhow::anyhow!("--server {}: not IP:PORT", self.server))?;
        if !addr.ip().is_loopback() {
            anyhow::bail!("--server {}: only loopback addresses (127.0.0.0/8, ::1) may be loaded", self.server);
        }
        Ok(addr)
    }

    /// Local part of user `i`.
    pub fn user(&self, i: u64) -> String {
        format!("{}{}", self.prefix, i)
    }

    /// Password of user `i`.
    pub fn password_of(&self, i: u64) -> String {
        match &self.password {
            Some(p) => p.clone(),
            None => format!("{}{}", self.password_prefix, i),
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        self.server_addr()?;
        if self.users == 0 || self.users > MAX_USERS {
            anyhow::bail!("--users must be 1..={MAX_USERS}");
        }
        if self.hold > MAX_SECS || !(0.0..=MAX_SECS as f64).contains(&self.duration) {
            anyhow::bail!("--hold and --duration must be at most {MAX_SECS} s");
        }
        if self.concurrency == 0 || self.window == 0 {
            anyhow::bail!("--concurrency and --window must be at least 1");
        }
        if self.ca.is_none() && !self.insecure {
            anyhow::bail!("give --ca FILE (the server's CA, PEM) or --insecure");
        }
        if self.rate < 0.0 || self.login_rate < 0.0 {
            anyhow::bail!("rates must not be negative");
        }
        Ok(())
    }
}

/// Counters shared by every connection task.
#[derive(Default)]
pub struct Stats {
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    pub login_hist: Mutex<Hist>,
    pub roster_items: AtomicU64,
    /// Chat messages written to the server.
    pub sent: AtomicU64,
    /// Chat messages received with a valid timestamp.
    pub delivered: AtomicU64,
    /// Messages bounced with type='error'.
    pub bounced: AtomicU64,
    /// Commands that reached no connection (it had closed).
    pub undeliverable_cmds: AtomicU64,
    pub msg_hist: Mutex<Hist>,
    /// Presence updates written in the presence phase.
    pub presence_sent: AtomicU64,
    /// Presence stanzas from other users received.
    pub presence_rx: AtomicU64,
    /// Presence stanzas from other users carrying a timestamp.
    pub presence_timed: AtomicU64,
    pub presence_hist: Mutex<Hist>,
    /// Connections lost after login.
    pub disconnects: AtomicU64,
    /// Microseconds since the epoch of the last delivery.
    pub last_delivery_us: AtomicU64,
    /// Client-side PBKDF2 runs and their total time.
    pub pbkdf2_runs: AtomicU64,
    pub pbkdf2_us: AtomicU64,
    /// The first few errors, for the report.
    pub errors: Mutex<Vec<String>>,
    /// Signalled on deliveries once `events` reaches `wake_at` (the
    /// flat-out dispatcher waits on it).
    pub progress: tokio::sync::Notify,
    /// Deliveries of any kind (messages, bounces, presence) so far.
    pub events: AtomicU64,
    /// `events` count from which a delivery signals `progress` (0: every one).
    pub wake_at: AtomicU64,
}

impl Stats {
    /// Count one delivery; wake the dispatcher when it asked for this many.
    pub fn progressed(&self) {
        let e = self.events.fetch_add(1, Ordering::Relaxed) + 1;
        if e >= self.wake_at.load(Ordering::Relaxed) {
            self.progress.notify_one();
        }
    }

    /// Record an error message (the first 10 are kept).
    pub fn error(&self, e: String) {
        let mut v = self.errors.lock().unwrap();
        if v.len() < 10 {
            v.push(e);
        }
    }
}

/// What every connection task shares.
pub struct Ctx {
    pub args: Args,
    pub server: SocketAddr,
    pub tls: tokio_rustls::TlsConnector,
    pub tls_name: rustls_pki_types::ServerName<'static>,
    pub pw_cache: PasswordCache,
    /// Bounds PBKDF2 runs in parallel to the CPU count.
    pub pbkdf2_slots: tokio::sync::Semaphore,
    pub stats: Stats,
    /// Time zero for timestamps carried in stanzas.
    pub epoch: Instant,
    /// The mechanism used (set by the first login that chose one).
    pub mech_used: Mutex<Option<String>>,
}

impl Ctx {
    /// Microseconds since the epoch.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Source address for connection number `n`.
    pub fn source(&self, n: u64) -> Option<IpAddr> {
        match (self.args.sources, self.server.ip()) {
            (0, _) | (_, IpAddr::V6(_)) => None,
            (k, IpAddr::V4(_)) => Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % k.min(250) as u64) as u8))),
        }
    }
}

/// Build the shared context from the arguments.
pub fn context(args: Args) -> anyhow::Result<Arc<Ctx>> {
    args.check()?;
    let server = args.server_addr()?;
    let tls = tlsconf::connector(&args)?;
    let name = args.tls_name.clone().unwrap_or_else(|| args.domain.clone());
    let tls_name = rustls_pki_types::ServerName::try_from(name.clone())
        .map_err(|_| anyhow::anyhow!("bad TLS server name {name:?}"))?;
    let pw_cache = match &args.password_cache {
        Some(p) => PasswordCache::load(p)?,
        None => PasswordCache::default(),
    };
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    Ok(Arc::new(Ctx {
        server,
        tls,
        tls_name,
        pw_cache,
        pbkdf2_slots: tokio::sync::Semaphore::new(cpus),
        stats: Stats::default(),
        epoch: Instant::now(),
        mech_used: Mutex::new(None),
        args,
    }))
}

/// Run the scenario the arguments name and return its summary. This is the
/// library entry that `main` and `tests/load_smoke.rs` call.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    if args.scenario == ScenarioKind::Provision {
        return tokio::task::spawn_blocking(move || provision::provision(&args)).await?;
    }
    if let Some(limit) = procstat::open_files_limit() {
        if args.users + 64 > limit {
            anyhow::bail!(
                "{} connections need more open files than this process may have ({limit}); raise `ulimit -n`",
                args.users
            );
        }
    }
    let ctx = context(args)?;
    let started = Instant::now();
    let cpu0 = procstat::self_cpu_secs();
    let busy0 = procstat::machine_busy_secs();
    let server0 = ctx.args.server_pid.and_then(procstat::cpu_secs);
    let syn0 = procstat::tcp_ext("TCPSynRetrans");
    let overflow0 = procstat::tcp_ext("ListenOverflows");
    let mut report = Report::default();
    report.set("scenario", format!("{:?}", ctx.args.scenario).to_lowercase());
    if !ctx.args.label.is_empty() {
        report.set("label", ctx.args.label.as_str());
    }
    report.set("server", ctx.server.to_string());
    report.set("users", ctx.args.users);
    match ctx.args.scenario {
        ScenarioKind::Login => scenario::login(&ctx, &mut report).await,
        ScenarioKind::Idle => scenario::idle(&ctx, &mut report).await,
        ScenarioKind::Chat => scenario::chat(&ctx, &mut report).await,
        ScenarioKind::Presence => scenario::presence(&ctx, &mut report).await,
        ScenarioKind::Provision => unreachable!("handled above"),
    }
    let s = &ctx.stats;
    report.set("mech", ctx.mech_used.lock().unwrap().clone());
    report.set("disconnects", s.disconnects.load(Ordering::Relaxed));
    report.set("client_pbkdf2_runs", s.pbkdf2_runs.load(Ordering::Relaxed));
    report.set("client_pbkdf2_ms", s.pbkdf2_us.load(Ordering::Relaxed) as f64 / 1000.0);
    let tool = cpu0.zip(procstat::self_cpu_secs()).map(|(a, b)| b - a);
    let server = server0.zip(ctx.args.server_pid.and_then(procstat::cpu_secs)).map(|(a, b)| b - a);
    let busy = busy0.zip(procstat::machine_busy_secs()).map(|(a, b)| b - a);
    report.set("tool_cpu_s", tool);
    report.set("syn_retransmits", syn0.zip(procstat::tcp_ext("TCPSynRetrans")).map(|(a, b)| b - a));
    report.set("listen_overflows", overflow0.zip(procstat::tcp_ext("ListenOverflows")).map(|(a, b)| b - a));
    report.set("run_server_cpu_s", server);
    // CPU time of everything else on the machine during the run: a busy
    // neighbour (a build, another test) makes the numbers unreliable.
    if let (Some(t), Some(s), Some(b)) = (tool, server, busy) {
        report.set("other_cpu_s", (b - t - s).max(0.0));
    }
    report.set("elapsed_s", started.elapsed().as_secs_f64());
    let errors = s.errors.lock().unwrap().clone();
    report.set("errors", if errors.is_empty() { None } else { Some(errors.join(" | ")) });
    if let Some(p) = &ctx.args.password_cache {
        ctx.pw_cache.save(p)?;
    }
    Ok(report)
}

/// Sleep helper that accepts fractional seconds.
pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}
