//! The handle a bound client session registers with the router: cheap to
//! clone (an `Arc`), holding only the full JID, presence state and the
//! sending half of the session's bounded outbound queue.

use crate::jid::Jid;
use crate::metrics::Metrics;
use crate::stanza::StreamError;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicI8, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};

/// What is sent to a session's task.
#[derive(Debug)]
pub enum Outbound {
    /// Serialised stanza bytes, written as they are.
    Stanza(Bytes),
}

/// Why a session was told to close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReason {
    /// The stream error to send.
    pub error: StreamError,
    /// Descriptive text (§4.9.2), if any.
    pub text: Option<String>,
}

/// A bound session as the router sees it.
#[derive(Debug)]
pub struct SessionHandle {
    /// Unique id of the connection (distinguishes a takeover from its victim).
    pub id: u64,
    /// The bound full JID.
    pub jid: Jid,
    /// `jid` as a string: the `from` stamped on everything it sends.
    pub jid_str: String,
    /// The outbound queue (bounded: `limits.outbound_queue`).
    pub tx: mpsc::Sender<Outbound>,
    /// RFC 6121 §4.2: the session has sent available presence.
    available: AtomicBool,
    /// RFC 6121 §4.7.2.3: presence priority, -128..=127.
    priority: AtomicI8,
    /// RFC 6121 §2.1.6: the session requested the roster (gets pushes).
    interested: AtomicBool,
    /// XEP-0280: message carbons enabled.
    carbons: AtomicBool,
    /// The last broadcast available presence, stamped, without `to`
    /// (answers probes, RFC 6121 §4.3.2).
    last_presence: Mutex<Option<Bytes>>,
    /// Set when the session must close; `closing` wakes its task.
    close: Mutex<Option<CloseReason>>,
    /// Wakes the session's task to close.
    pub closing: Notify,
    /// Where a stanza refused by the full queue is counted.
    metrics: Option<Arc<Metrics>>,
}

impl SessionHandle {
    /// A new, unavailable handle.
    pub fn new(id: u64, jid: Jid, tx: mpsc::Sender<Outbound>) -> SessionHandle {
        SessionHandle {
            id,
            jid_str: jid.to_string(),
            jid,
            tx,
            available: AtomicBool::new(false),
            priority: AtomicI8::new(0),
            interested: AtomicBool::new(false),
            carbons: AtomicBool::new(false),
            last_presence: Mutex::new(None),
            close: Mutex::new(None),
            closing: Notify::new(),
            metrics: None,
        }
    }

    /// Count stanzas refused by the full queue in `m` (`xmppd_queue_drops`).
    pub fn with_metrics(mut self, m: Arc<Metrics>) -> SessionHandle {
        self.metrics = Some(m);
        self
    }

    /// Whether the session is available (sent initial presence, not unavailable).
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }

    /// Its current priority.
    pub fn priority(&self) -> i8 {
        self.priority.load(Ordering::Relaxed)
    }

    /// Record broadcast presence (RFC 6121 §4.2, §4.5).
    pub fn set_presence(&self, available: bool, priority: i8) {
        self.priority.store(priority, Ordering::Relaxed);
        self.available.store(available, Ordering::Relaxed);
    }

    /// Whether the session requested the roster.
    pub fn is_interested(&self) -> bool {
        self.interested.load(Ordering::Relaxed)
    }

    /// Mark the session as having requested the roster.
    pub fn set_interested(&self) {
        self.interested.store(true, Ordering::Relaxed);
    }

    /// Whether message carbons are enabled (XEP-0280).
    pub fn carbons(&self) -> bool {
        self.carbons.load(Ordering::Relaxed)
    }

    /// Enable or disable message carbons.
    pub fn set_carbons(&self, on: bool) {
        self.carbons.store(on, Ordering::Relaxed);
    }

    /// The last broadcast available presence (stamped, without `to`).
    pub fn last_presence(&self) -> Option<Bytes> {
        self.last_presence.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Remember (or forget) the last broadcast presence.
    pub fn set_last_presence(&self, p: Option<Bytes>) {
        *self.last_presence.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }

    /// Ask the session to close with a stream error; the first reason wins.
    pub fn request_close(&self, error: StreamError, text: Option<String>) {
        let mut c = self.close.lock().unwrap_or_else(|e| e.into_inner());
        if c.is_none() {
            *c = Some(CloseReason { error, text });
        }
        drop(c);
        self.closing.notify_one();
    }

    /// The close reason, once requested.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Queue stanza bytes; `false` if the queue is full or the session gone.
    pub fn send(&self, bytes: Bytes) -> bool {
        let ok = self.tx.try_send(Outbound::Stanza(bytes)).is_ok();
        if !ok {
            if let Some(m) = &self.metrics {
                Metrics::inc(&m.queue_drops_total);
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_counts_a_drop() {
        let m = Arc::new(Metrics::new(&["localhost".into()]));
        let (tx, _rx) = mpsc::channel(1);
        let h = SessionHandle::new(1, Jid::parse("a@localhost/r").unwrap(), tx).with_metrics(m.clone());
        assert!(h.send(Bytes::from_static(b"<message/>")));
        assert!(!h.send(Bytes::from_static(b"<message/>")));
        assert_eq!(m.queue_drops_total.load(Ordering::Relaxed), 1);
    }
}
