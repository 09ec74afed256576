//! Counters for `/metrics` and `xmppd ctl stats`.
//!
//! The hot path only does relaxed atomic increments on fixed fields (no
//! locks, no allocation per stanza). A scrape takes a [`Snapshot`] and
//! encodes it in the OpenMetrics text format (which Prometheus scrapes)
//! with the `prometheus-client` crate.

use crate::router::Kind;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Stanza kinds in label order.
const KINDS: [&str; 3] = ["message", "presence", "iq"];

fn kind_index(k: Kind) -> usize {
    match k {
        Kind::Message => 0,
        Kind::Presence => 1,
        Kind::Iq => 2,
    }
}

/// Server-wide counters, one per process (held in `Shared`).
#[derive(Debug)]
pub struct Metrics {
    /// Process start, for uptime.
    started: Instant,
    /// Client connections accepted (including refused ones).
    pub connections_accepted_total: AtomicU64,
    /// Stanzas received from bound clients, by kind.
    stanzas_in: [AtomicU64; 3],
    /// Stanzas written to bound clients, by kind.
    stanzas_out: [AtomicU64; 3],
    /// Authentication failures, SASL or XEP-0078 (not counting aborts).
    pub auth_failures_total: AtomicU64,
    /// Successful authentications, SASL or XEP-0078.
    pub auth_successes_total: AtomicU64,
    /// Stanzas not queued because a session's outbound queue was full.
    pub queue_drops_total: AtomicU64,
    /// Configuration reloads applied.
    pub config_reloads_total: AtomicU64,
    /// Configuration reloads refused (the old configuration stays).
    pub config_reload_failures_total: AtomicU64,
    /// Connections refused by `max_connections` or `max_connections_per_ip`.
    pub connections_refused_total: AtomicU64,
    /// Source addresses banned for too many SASL failures.
    pub bans_total: AtomicU64,
    /// Streams closed because their source address was banned.
    pub banned_streams_total: AtomicU64,
    /// Streams closed for bad XML (not-well-formed, restricted-xml, or a
    /// size, depth or attribute limit).
    pub xml_errors_total: AtomicU64,
    /// Sessions closed because their outbound queue was full (not reading).
    pub slow_consumers_closed_total: AtomicU64,
    /// Times a connection's reading was paused by the byte or stanza shaper.
    pub shaper_pauses_total: AtomicU64,
    /// Streams closed for missing the authentication deadline.
    pub auth_timeouts_total: AtomicU64,
    /// Binds beyond `max_sessions_per_account` (oldest replaced or refused).
    pub session_limit_hits_total: AtomicU64,
    /// Bound sessions per served host, in `hosts` order.
    sessions: Box<[(String, AtomicI64)]>,
}

impl Metrics {
    /// Zeroed counters for these hosts.
    pub fn new(hosts: &[String]) -> Metrics {
        Metrics {
            started: Instant::now(),
            connections_accepted_total: AtomicU64::new(0),
            stanzas_in: Default::default(),
            stanzas_out: Default::default(),
            auth_failures_total: AtomicU64::new(0),
            auth_successes_total: AtomicU64::new(0),
            queue_drops_total: AtomicU64::new(0),
            config_reloads_total: AtomicU64::new(0),
            config_reload_failures_total: AtomicU64::new(0),
            connections_refused_total: AtomicU64::new(0),
            bans_total: AtomicU64::new(0),
            banned_streams_total: AtomicU64::new(0),
            xml_errors_total: AtomicU64::new(0),
            slow_consumers_closed_total: AtomicU64::new(0),
            shaper_pauses_total: AtomicU64::new(0),
            auth_timeouts_total: AtomicU64::new(0),
            session_limit_hits_total: AtomicU64::new(0),
            sessions: hosts.iter().map(|h| (h.to_ascii_lowercase(), AtomicI64::new(0))).collect(),
        }
    }

    /// Add one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Every plain counter: (metric name without `_total`, help, value).
    /// A new counter is a field above plus one line here.
    fn counters(&self) -> [(&'static str, &'static str, &AtomicU64); 14] {
        [
            ("xmppd_connections_accepted", "Client connections accepted", &self.connections_accepted_total),
            ("xmppd_auth_failures", "Authentication failures (SASL or XEP-0078)", &self.auth_failures_total),
            ("xmppd_auth_successes", "Successful authentications (SASL or XEP-0078)", &self.auth_successes_total),
            ("xmppd_queue_drops", "Stanzas dropped on a full session queue", &self.queue_drops_total),
            ("xmppd_config_reloads", "Configuration reloads applied", &self.config_reloads_total),
            ("xmppd_config_reload_failures", "Configuration reloads refused", &self.config_reload_failures_total),
            ("xmppd_connections_refused", "Connections refused by a connection limit", &self.connections_refused_total),
            ("xmppd_auth_bans", "Source addresses banned for repeated authentication failures", &self.bans_total),
            ("xmppd_banned_streams", "Streams closed because the source address is banned", &self.banned_streams_total),
            ("xmppd_xml_errors", "Streams closed for malformed, restricted or oversized XML", &self.xml_errors_total),
            (
                "xmppd_slow_consumers_closed",
                "Sessions closed because they stopped reading",
                &self.slow_consumers_closed_total,
            ),
            (
                "xmppd_shaper_pauses",
                "Times reading from a connection was paused by a shaper",
                &self.shaper_pauses_total,
            ),
            ("xmppd_auth_timeouts", "Streams closed for not authenticating in time", &self.auth_timeouts_total),
            ("xmppd_session_limit_hits", "Binds beyond max_sessions_per_account", &self.session_limit_hits_total),
        ]
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// One stanza received from a client.
    pub fn stanza_in(&self, k: Kind) {
        self.stanzas_in[kind_index(k)].fetch_add(1, Relaxed);
    }

    /// One stanza written to a client.
    pub fn stanza_out(&self, k: Kind) {
        self.stanzas_out[kind_index(k)].fetch_add(1, Relaxed);
    }

    /// One serialised stanza written to a client, its kind read from the
    /// element name (bytes start with `<message`, `<presence` or `<iq`).
    pub fn stanza_out_bytes(&self, b: &[u8]) {
        let k = if b.starts_with(b"<message") {
            Kind::Message
        } else if b.starts_with(b"<presence") {
            Kind::Presence
        } else if b.starts_with(b"<iq") {
            Kind::Iq
        } else {
            return;
        };
        self.stanza_out(k);
    }

    /// A session on `host` was bound (+1) or ended (-1).
    pub fn session_delta(&self, host: &str, delta: i64) {
        if let Some((_, n)) = self.sessions.iter().find(|(h, _)| h.eq_ignore_ascii_case(host)) {
            n.fetch_add(delta, Relaxed);
        }
    }

    /// Bound sessions on `host`.
    pub fn sessions_on(&self, host: &str) -> i64 {
        self.sessions.iter().find(|(h, _)| h.eq_ignore_ascii_case(host)).map_or(0, |(_, n)| n.load(Relaxed))
    }
}

/// A latency histogram with fixed buckets and atomic counts.
#[derive(Debug)]
pub struct Histogram {
    /// Count per bucket (not cumulative), the last one is +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of observations, nanoseconds.
    sum_ns: AtomicU64,
}

/// Upper bounds, seconds: 50 µs to 1 s.
pub const BUCKETS: [f64; 10] = [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.1, 1.0];

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: Default::default(), sum_ns: AtomicU64::new(0) }
    }
}

impl Histogram {
    /// Record one duration.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS.iter().position(|&b| s <= b).unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// (sum in seconds, count, per-bucket counts), buckets as
    /// prometheus-client encodes them: not cumulative, `f64::MAX` for +Inf.
    pub fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, c)| (BUCKETS.get(i).copied().unwrap_or(f64::MAX), c.load(Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        (self.sum_ns.load(Relaxed) as f64 / 1e9, count, buckets)
    }
}

/// Store operation latency: reads and writes (lock wait included).
#[derive(Debug, Default)]
pub struct StoreLatency {
    /// Reads on the pool connections.
    pub read: Histogram,
    /// Writes on the writer connection.
    pub write: Histogram,
}

/// One store histogram at scrape time: (op, sum, count, buckets).
pub type StoreSnapshot = (&'static str, f64, u64, Vec<(f64, u64)>);

/// Values read at scrape time.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Seconds since start.
    pub uptime: f64,
    /// Open client connections.
    pub connections: i64,
    /// Every plain counter (see [`Metrics::counters`]).
    pub counters: Vec<(&'static str, &'static str, u64)>,
    /// (host, bound sessions, registered accounts).
    pub hosts: Vec<(String, i64, Option<u64>)>,
    /// In and out by kind.
    pub stanzas_in: [u64; 3],
    /// Out by kind.
    pub stanzas_out: [u64; 3],
    /// Store latency per op.
    pub store: Vec<StoreSnapshot>,
}

impl Snapshot {
    /// Read the counters; `registered` gives the account count of a host.
    pub fn take(
        m: &Metrics,
        connections: usize,
        store: Option<&StoreLatency>,
        registered: impl Fn(&str) -> Option<u64>,
    ) -> Snapshot {
        let load = |a: &[AtomicU64; 3]| [a[0].load(Relaxed), a[1].load(Relaxed), a[2].load(Relaxed)];
        let mut s = Snapshot {
            uptime: m.uptime().as_secs_f64(),
            connections: connections as i64,
            counters: m.counters().iter().map(|(n, h, v)| (*n, *h, v.load(Relaxed))).collect(),
            hosts: m.sessions.iter().map(|(h, n)| (h.clone(), n.load(Relaxed), registered(h))).collect(),
            stanzas_in: load(&m.stanzas_in),
            stanzas_out: load(&m.stanzas_out),
            store: Vec::new(),
        };
        if let Some(l) = store {
            for (op, h) in [("read", &l.read), ("write", &l.write)] {
                let (sum, count, buckets) = h.read();
                s.store.push((op, sum, count, buckets));
            }
        }
        s
    }

    /// The OpenMetrics text exposition (ends with `# EOF`).
    pub fn encode(self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// OpenMetrics content type for `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Res = Result<(), std::fmt::Error>;

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Res {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Res {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Res {
        gauge(&mut e, "xmppd_uptime_seconds", "Seconds since the server started", self.uptime as i64)?;
        gauge(&mut e, "xmppd_connections", "Open client connections", self.connections)?;
        let mut m = e.encode_descriptor("xmppd_sessions", "Bound client sessions by host", None, MetricType::Gauge)?;
        for (h, n, _) in &self.hosts {
            ConstGauge::new(*n).encode(m.encode_family(&[("host", h.as_str())])?)?;
        }
        let mut m =
            e.encode_descriptor("xmppd_registered_users", "Registered accounts by host", None, MetricType::Gauge)?;
        for (h, _, r) in &self.hosts {
            if let Some(r) = r {
                ConstGauge::new(*r as i64).encode(m.encode_family(&[("host", h.as_str())])?)?;
            }
        }
        for (name, help, v) in [
            ("xmppd_stanzas_received", "Stanzas received from clients by kind", &self.stanzas_in),
            ("xmppd_stanzas_sent", "Stanzas sent to clients by kind", &self.stanzas_out),
        ] {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (k, n) in KINDS.iter().zip(v) {
                ConstCounter::new(*n).encode(m.encode_family(&[("kind", *k)])?)?;
            }
        }
        for (name, help, v) in &self.counters {
            counter(&mut e, name, help, *v)?;
        }
        if !self.store.is_empty() {
            let mut m = e.encode_descriptor(
                "xmppd_store_operation_duration_seconds",
                "Store operation latency, lock wait included",
                None,
                MetricType::Histogram,
            )?;
            for (op, sum, count, buckets) in &self.store {
                m.encode_family(&[("op", *op)])?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(*sum, *count, buckets, None)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_openmetrics() {
        let m = Metrics::new(&["a.example".into(), "b.example".into()]);
        m.stanza_in(Kind::Message);
        m.stanza_out_bytes(b"<presence from='x'/>");
        m.stanza_out_bytes(b"<r xmlns='urn:xmpp:sm:3'/>");
        m.session_delta("A.example", 1);
        Metrics::inc(&m.auth_failures_total);
        Metrics::inc(&m.auth_failures_total);
        let l = StoreLatency::default();
        l.read.observe(Duration::from_micros(70));
        l.read.observe(Duration::from_secs(3));
        let text = Snapshot::take(&m, 5, Some(&l), |h| (h == "a.example").then_some(7)).encode();
        for line in [
            "# TYPE xmppd_sessions gauge",
            "xmppd_sessions{host=\"a.example\"} 1",
            "xmppd_sessions{host=\"b.example\"} 0",
            "xmppd_registered_users{host=\"a.example\"} 7",
            "xmppd_stanzas_received_total{kind=\"message\"} 1",
            "xmppd_stanzas_sent_total{kind=\"presence\"} 1",
            "xmppd_stanzas_sent_total{kind=\"iq\"} 0",
            "xmppd_auth_failures_total 2",
            "xmppd_connections 5",
            "xmppd_store_operation_duration_seconds_bucket{le=\"0.0001\",op=\"read\"} 1",
            "xmppd_store_operation_duration_seconds_bucket{le=\"+Inf\",op=\"read\"} 2",
            "xmppd_store_operation_duration_seconds_count{op=\"read\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
