//! Counters of what the hardening code did, as plain atomics in
//! [`crate::server::Shared`], for logs, ctl and a metrics endpoint. All are
//! monotonic totals (Prometheus `_total` counters); gauges such as open
//! connections come from [`crate::server::Shared::connection_count`] and the
//! router.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters, updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// TCP connections accepted (before any limit is applied).
    pub connections_accepted_total: AtomicU64,
    /// Connections refused by `max_connections` or `max_connections_per_ip`.
    pub connections_refused_total: AtomicU64,
    /// Successful SASL authentications.
    pub auth_successes_total: AtomicU64,
    /// SASL failures (every `<failure/>` except `<aborted/>`).
    pub auth_failures_total: AtomicU64,
    /// Source addresses banned for too many SASL failures.
    pub bans_total: AtomicU64,
    /// Streams closed because their source address was banned.
    pub banned_streams_total: AtomicU64,
    /// Streams closed for bad XML: not-well-formed, restricted-xml, or a
    /// size, depth or attribute limit (policy-violation).
    pub xml_errors_total: AtomicU64,
    /// Sessions closed because their outbound queue was full (not reading).
    pub slow_consumers_closed_total: AtomicU64,
    /// Times a connection's reading was paused by the byte or stanza shaper.
    pub shaper_pauses_total: AtomicU64,
    /// Streams closed for missing the authentication deadline.
    pub auth_timeouts_total: AtomicU64,
    /// Sessions replaced or refused by `max_sessions_per_account`.
    pub session_limit_hits_total: AtomicU64,
}

impl Metrics {
    /// Add one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter with its name, for exporters.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("connections_accepted_total", get(&self.connections_accepted_total)),
            ("connections_refused_total", get(&self.connections_refused_total)),
            ("auth_successes_total", get(&self.auth_successes_total)),
            ("auth_failures_total", get(&self.auth_failures_total)),
            ("bans_total", get(&self.bans_total)),
            ("banned_streams_total", get(&self.banned_streams_total)),
            ("xml_errors_total", get(&self.xml_errors_total)),
            ("slow_consumers_closed_total", get(&self.slow_consumers_closed_total)),
            ("shaper_pauses_total", get(&self.shaper_pauses_total)),
            ("auth_timeouts_total", get(&self.auth_timeouts_total)),
            ("session_limit_hits_total", get(&self.session_limit_hits_total)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_every_counter() {
        let m = Metrics::default();
        Metrics::inc(&m.bans_total);
        Metrics::inc(&m.bans_total);
        let s = m.snapshot();
        assert_eq!(s.len(), 11);
        assert!(s.contains(&("bans_total", 2)));
        assert!(s.iter().all(|(n, _)| n.ends_with("_total")));
    }
}
