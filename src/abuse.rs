//! Abuse control shared by every connection: connections per source
//! address, and SASL failures per source address and per account with
//! growing delays and a temporary ban of the address (like ejabberd's
//! mod_fail2ban). Accounts are never locked (that would let anyone lock a
//! user out); their failures only slow further attempts down.
//!
//! Addresses are keyed by [`source_key`]: IPv4 (also IPv4-mapped IPv6) as
//! is, IPv6 by its /64, since one host usually owns a whole /64.

use crate::config::Auth;
use dashmap::DashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;
use tokio::time::Instant;

/// Entries kept per table before expired ones are pruned.
const PRUNE_AT: usize = 65_536;

/// Failures of one address or account within the current window.
#[derive(Clone, Copy, Debug)]
struct Record {
    /// Failures since `since`.
    failures: u32,
    /// Start of the counting window.
    since: Instant,
    /// The address is banned until then.
    banned_until: Option<Instant>,
}

/// What a SASL failure leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Wait this long before answering `<failure/>`.
    pub delay: Duration,
    /// This failure got the address banned.
    pub banned: bool,
}

/// The shared abuse-control state.
#[derive(Default)]
pub struct Guard {
    /// Open connections per source key.
    conns: DashMap<IpAddr, usize>,
    /// SASL failures and bans per source key.
    ips: DashMap<IpAddr, Record>,
    /// SASL failures per account (`user@host`).
    accounts: DashMap<String, Record>,
}

/// The key an address is counted under (see the module documentation).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
}

impl Guard {
    /// Count a new connection from `ip`; `false` (and nothing counted) when
    /// `max` (0 = no limit) connections from it are already open.
    pub fn connect(&self, ip: IpAddr, max: usize) -> bool {
        let mut n = self.conns.entry(source_key(ip)).or_insert(0);
        if max != 0 && *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection counted by [`Guard::connect`] ended.
    pub fn disconnect(&self, ip: IpAddr) {
        self.conns.remove_if_mut(&source_key(ip), |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }

    /// Open connections from `ip`'s source key.
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        self.conns.get(&source_key(ip)).map(|n| *n).unwrap_or(0)
    }

    /// How much longer `ip` is banned, if it is.
    pub fn banned(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.ips.get(&source_key(ip))?.banned_until?;
        (until > now).then(|| until - now)
    }

    /// Record a SASL failure from `ip` for `account` (`user@host`, when the
    /// mechanism got that far). `ip` is `None` for an address in
    /// `limits.exempt_networks`: only the account's failures count.
    pub fn failure(&self, cfg: &Auth, ip: Option<IpAddr>, account: Option<&str>, now: Instant) -> FailureOutcome {
        let window = Duration::from_secs(cfg.ban_secs.max(1));
        let bump = |r: &mut Record| {
            if now.duration_since(r.since) > window {
                r.failures = 0;
                r.since = now;
            }
            r.failures += 1;
            r.failures
        };
        prune(&self.ips, now, window);
        let (ip_n, banned) = match ip {
            None => (0, false),
            Some(ip) => {
                let mut r =
                    self.ips.entry(source_key(ip)).or_insert(Record { failures: 0, since: now, banned_until: None });
                let n = bump(&mut r);
                let ban = cfg.max_failures_per_ip != 0 && n >= cfg.max_failures_per_ip;
                if ban {
                    r.banned_until = Some(now + Duration::from_secs(cfg.ban_secs));
                    r.failures = 0;
                    r.since = now;
                }
                (n, ban)
            }
        };
        let acct_n = match account {
            Some(a) => {
                prune(&self.accounts, now, window);
                let mut r =
                    self.accounts.entry(a.to_owned()).or_insert(Record { failures: 0, since: now, banned_until: None });
                bump(&mut r)
            }
            None => 0,
        };
        FailureOutcome { delay: delay_for(cfg.failure_delay_ms, ip_n.max(acct_n)), banned }
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn success(&self, account: &str) {
        self.accounts.remove(account);
    }
}

/// No delay for the first failure, then `base`, doubling, capped at 10×`base`.
fn delay_for(base_ms: u64, n: u32) -> Duration {
    if n < 2 || base_ms == 0 {
        return Duration::ZERO;
    }
    let ms = base_ms.saturating_mul(1u64 << (n - 2).min(20)).min(base_ms.saturating_mul(10));
    Duration::from_millis(ms)
}

/// Drop expired entries once a table is large (bounded memory whatever the
/// number of attacking addresses or names).
fn prune<K: std::hash::Hash + Eq + Clone>(map: &DashMap<K, Record>, now: Instant, window: Duration) {
    if map.len() >= PRUNE_AT {
        map.retain(|_, r| now.duration_since(r.since) <= window || r.banned_until.is_some_and(|u| u > now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: u32) -> Auth {
        Auth { max_failures_per_ip: max, ban_secs: 60, failure_delay_ms: 100, ..Auth::default() }
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let d: Vec<u64> = (1..=8).map(|n| delay_for(100, n).as_millis() as u64).collect();
        assert_eq!(d, [0, 100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(delay_for(0, 9), Duration::ZERO);
    }

    #[tokio::test]
    async fn ban_after_max_failures_then_expiry() {
        let g = Guard::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        for i in 1..3 {
            let o = g.failure(&cfg(3), Some(ip), Some("a@x"), now);
            assert!(!o.banned, "{i}");
        }
        assert!(g.banned(ip, now).is_none());
        assert!(g.failure(&cfg(3), Some(ip), None, now).banned);
        assert!(g.banned(ip, now).is_some());
        assert!(g.banned("192.0.2.2".parse().unwrap(), now).is_none());
        assert!(g.banned(ip, now + Duration::from_secs(61)).is_none());
    }

    #[tokio::test]
    async fn account_failures_count_across_addresses_and_reset_on_success() {
        let g = Guard::default();
        let now = Instant::now();
        let c = cfg(0);
        for i in 0..3u8 {
            g.failure(&c, Some(IpAddr::from([10, 0, 0, i])), Some("alice@x"), now);
        }
        let o = g.failure(&c, Some("10.0.0.9".parse().unwrap()), Some("alice@x"), now);
        assert_eq!(o.delay, Duration::from_millis(400));
        assert!(!o.banned, "banning disabled");
        g.success("alice@x");
        let o = g.failure(&c, Some("10.0.0.10".parse().unwrap()), Some("alice@x"), now);
        assert_eq!(o.delay, Duration::ZERO);
    }

    #[tokio::test]
    async fn an_exempt_address_counts_only_for_the_account() {
        let g = Guard::default();
        let now = Instant::now();
        let c = cfg(2);
        for _ in 0..5 {
            assert!(!g.failure(&c, None, Some("bob@x"), now).banned);
        }
        assert!(g.ips.is_empty(), "no address recorded");
        // The account's own count still slows it down: 6th failure, 5 before.
        assert_eq!(g.failure(&c, None, Some("bob@x"), now).delay, Duration::from_millis(1000));
        assert_eq!(g.failure(&c, None, None, now).delay, Duration::ZERO);
    }

    #[test]
    fn per_address_connection_limit() {
        let g = Guard::default();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(g.connect(a, 2) && g.connect(b, 2));
        assert!(!g.connect(a, 2), "same /64");
        g.disconnect(a);
        assert!(g.connect(b, 2));
        assert_eq!(g.connections_from(a), 2);
        assert!(g.connect("127.0.0.1".parse().unwrap(), 0));
        assert_eq!(source_key("::ffff:127.0.0.1".parse().unwrap()), "127.0.0.1".parse::<IpAddr>().unwrap());
    }
}
