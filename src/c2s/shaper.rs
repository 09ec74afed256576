//! Traffic shaping of what a client sends, like ejabberd's shapers: a token
//! bucket for bytes and one for stanzas. When a bucket runs dry the
//! connection stops reading from its socket until it refills, so the
//! client is slowed by TCP backpressure, never disconnected, and nothing
//! beyond one read is buffered on its behalf.

use std::time::Duration;
use tokio::time::Instant;

/// A token bucket: `rate` tokens a second, holding at most `capacity`.
/// Tokens may go negative (a read is never split); the debt is waited off.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    /// Tokens per second; 0 means unlimited.
    rate: f64,
    /// Most tokens held.
    capacity: f64,
    /// Tokens now (may be negative after a large read).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
}

impl Bucket {
    /// A full bucket; `rate == 0` disables it.
    pub(crate) fn new(rate: u64, capacity: u64, now: Instant) -> Bucket {
        Bucket { rate: rate as f64, capacity: capacity as f64, tokens: capacity as f64, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.last = now;
    }

    /// Take `n` tokens; returns when the next read may happen if the
    /// bucket is now empty or in debt.
    pub(crate) fn take(&mut self, n: u64, now: Instant) -> Option<Instant> {
        if self.rate == 0.0 {
            return None;
        }
        self.refill(now);
        self.tokens -= n as f64;
        self.ready_at(now)
    }

    /// When the bucket has at least one token again (`None`: it has now).
    pub(crate) fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        if self.rate == 0.0 {
            return None;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            return None;
        }
        Some(now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
    }
}

/// The two buckets of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Shaper {
    /// Bytes read.
    pub(crate) bytes: Bucket,
    /// Top-level elements processed.
    pub(crate) stanzas: Bucket,
}

impl Shaper {
    /// From `[limits]`: the byte bucket holds one maximal stanza plus a
    /// second's worth, the stanza bucket two seconds' worth.
    pub(crate) fn from_limits(l: &crate::config::Limits, now: Instant) -> Shaper {
        Shaper {
            bytes: Bucket::new(l.shaper_bytes_per_sec, l.max_stanza_size as u64 + l.shaper_bytes_per_sec, now),
            stanzas: Bucket::new(l.stanzas_per_sec, 2 * l.stanzas_per_sec, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bucket_pauses_and_refills() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1000, 2000, t0);
        assert_eq!(b.take(1500, t0), None);
        let until = b.take(1000, t0).expect("in debt");
        // 500 tokens of debt plus one: about half a second.
        let wait = until - t0;
        assert!(wait > Duration::from_millis(490) && wait < Duration::from_millis(510), "{wait:?}");
        assert_eq!(b.ready_at(t0 + Duration::from_millis(502)), None);
        // Never more than the capacity, however long it was idle.
        assert_eq!(
            b.take(2000, t0 + Duration::from_secs(100)),
            Some(t0 + Duration::from_secs(100) + Duration::from_millis(1))
        );
    }

    #[tokio::test]
    async fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let mut b = Bucket::new(0, 0, t0);
        assert_eq!(b.take(u64::MAX / 2, t0), None);
        assert_eq!(b.ready_at(t0), None);
    }
}
