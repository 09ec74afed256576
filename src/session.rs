//! The handle a bound client session registers with the router: cheap to
//! clone (an `Arc`), holding only the full JID, presence state and the
//! sending side of the session's bounded outbound queue.

use crate::jid::Jid;
use crate::metrics::Metrics;
use crate::stanza::StreamError;
use crate::storage::RosterItem;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::Notify;

/// What is sent to a session's task.
#[derive(Debug)]
pub enum Outbound {
    /// Serialised stanza bytes, written as they are.
    Stanza(Bytes),
}

/// The close text of a session whose outbound queue overflowed (a
/// recipient that stopped reading).
pub const QUEUE_FULL: &str = "outbound queue full";

/// A session's outbound queue, shared by its [`SessionHandle`] (the
/// sending side) and its [`OutboundRx`]. A `VecDeque` under a mutex rather
/// than a channel: an empty `VecDeque` holds no allocation, where a tokio
/// `mpsc` channel allocates its first 32-slot block (about 1 KB) and its
/// shared state (about 0.5 KB) up front, for every idle session (measured
/// with heaptrack, see `bench/README.md`).
#[derive(Debug, Default)]
struct Queue {
    inner: Mutex<QueueInner>,
    /// Bytes queued and not yet taken.
    queued: AtomicUsize,
}

#[derive(Debug, Default)]
struct QueueInner {
    items: VecDeque<Bytes>,
    /// The task waiting in [`OutboundRx::poll_recv`].
    waker: Option<Waker>,
    /// The sending side is gone, or the receiver closed or dropped: no
    /// stanza is accepted any more.
    closed: bool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The receiving half of a session's outbound queue: stanzas bounded in
/// number and in bytes by the [`SessionHandle`], the byte count given back
/// as stanzas are taken.
#[derive(Debug)]
pub struct OutboundRx {
    queue: Arc<Queue>,
}

impl OutboundRx {
    fn pop(&self, q: &mut QueueInner) -> Option<Outbound> {
        let b = q.items.pop_front()?;
        self.queue.queued.fetch_sub(b.len(), Ordering::Relaxed);
        if q.items.is_empty() && q.items.capacity() > 0 {
            // Idle sessions keep no buffer.
            q.items = VecDeque::new();
        }
        Some(Outbound::Stanza(b))
    }

    /// The next stanza; `None` when the sending side is gone.
    pub async fn recv(&mut self) -> Option<Outbound> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll for the next stanza (for a connection loop's `poll_fn`).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        let mut q = self.queue.lock();
        if let Some(m) = self.pop(&mut q) {
            return Poll::Ready(Some(m));
        }
        if q.closed {
            return Poll::Ready(None);
        }
        match &mut q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Refuse further stanzas ([`SessionHandle::send`] fails); those
    /// already queued can still be taken with `try_recv`.
    pub fn close(&mut self) {
        self.queue.lock().closed = true;
    }

    /// The next stanza if one is queued.
    pub fn try_recv(&mut self) -> Result<Outbound, TryRecvError> {
        let mut q = self.queue.lock();
        match self.pop(&mut q) {
            Some(m) => Ok(m),
            None if q.closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }
}

/// Why a session was told to close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReason {
    /// The stream error to send.
    pub error: StreamError,
    /// Descriptive text (§4.9.2), if any.
    pub text: Option<String>,
}

/// A value cached from the store, with when it was read and a generation
/// that every write bumps: a read begun before a write must not cache what
/// it read ([`Cached::fill`]), while the write's own value may
/// ([`Cached::set`]).
#[derive(Debug)]
pub struct Cached<T> {
    value: Mutex<Option<(T, std::time::Instant)>>,
    gen: AtomicU64,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Cached { value: Mutex::new(None), gen: AtomicU64::new(0) }
    }
}

impl<T: Clone> Cached<T> {
    /// The value cached less than `max_age` ago.
    pub fn get(&self, max_age: std::time::Duration) -> Option<T> {
        let v = self.value.lock().unwrap_or_else(|e| e.into_inner());
        v.as_ref().filter(|(_, at)| at.elapsed() < max_age).map(|(v, _)| v.clone())
    }

    /// The generation, to pass to [`Cached::fill`] with what a store read
    /// begun after this call returned.
    pub fn generation(&self) -> u64 {
        self.gen.load(Ordering::Acquire)
    }

    /// Cache a store read, unless a write came since `gen` was taken.
    pub fn fill(&self, gen: u64, value: T) {
        let mut v = self.value.lock().unwrap_or_else(|e| e.into_inner());
        if self.gen.load(Ordering::Acquire) == gen {
            *v = Some((value, std::time::Instant::now()));
        }
    }

    /// A write made here: cache its value (reads begun before it do not).
    pub fn set(&self, value: T) {
        let mut v = self.value.lock().unwrap_or_else(|e| e.into_inner());
        self.gen.fetch_add(1, Ordering::AcqRel);
        *v = Some((value, std::time::Instant::now()));
    }

    /// A write whose value is not at hand: drop the cached one.
    pub fn clear(&self) {
        let mut v = self.value.lock().unwrap_or_else(|e| e.into_inner());
        self.gen.fetch_add(1, Ordering::AcqRel);
        *v = None;
    }
}

/// State shared by an account's bound sessions, created by the first
/// (`Router::bind`) and gone with the last.
#[derive(Debug, Default)]
pub struct Account {
    /// How many of them enabled carbons: a sent message needs no look-up of
    /// the account's other sessions while it shows none (XEP-0280 §7).
    carbons: AtomicUsize,
    /// XEP-0153: the stored avatar hash (`vcard::session_avatar_hash`);
    /// every available presence needs it.
    pub avatar: Cached<Option<String>>,
    /// The roster (`im::presence::roster_of`); every presence broadcast
    /// needs it.
    pub roster: Cached<Arc<Vec<RosterItem>>>,
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
    /// The outbound queue.
    queue: Arc<Queue>,
    /// Most stanzas queued (`limits.outbound_queue`).
    max_stanzas: usize,
    /// Most bytes queued (`limits.outbound_queue_bytes`).
    max_queued: usize,
    /// RFC 6121 §4.2: the session has sent available presence.
    available: AtomicBool,
    /// RFC 6121 §4.7.2.3: presence priority, -128..=127.
    priority: AtomicI8,
    /// RFC 6121 §2.1.6: the session requested the roster (gets pushes).
    interested: AtomicBool,
    /// XEP-0280: message carbons enabled.
    carbons: AtomicBool,
    /// State shared by the account's bound sessions (set by `Router::bind`).
    account: OnceLock<Arc<Account>>,
    /// The last broadcast available presence, stamped, without `to`
    /// (answers probes, RFC 6121 §4.3.2).
    last_presence: Mutex<Option<Bytes>>,
    /// Set when the session must close; `closing` wakes its task.
    close: Mutex<Option<CloseReason>>,
    /// A message was stored offline for this account after it became
    /// available: the session's task delivers offline storage again.
    offline_poke: AtomicBool,
    /// Wakes the session's task to close.
    pub closing: Notify,
    /// Where a stanza refused by the full queue is counted.
    metrics: Option<Arc<Metrics>>,
}

impl SessionHandle {
    /// A new, unavailable handle with its outbound queue of at most
    /// `stanzas` stanzas and `bytes` bytes.
    pub fn with_queue(id: u64, jid: Jid, stanzas: usize, bytes: usize) -> (SessionHandle, OutboundRx) {
        let queue = Arc::new(Queue::default());
        let h = SessionHandle {
            id,
            jid_str: jid.to_string(),
            jid,
            queue: queue.clone(),
            max_stanzas: stanzas.max(1),
            max_queued: bytes,
            available: AtomicBool::new(false),
            priority: AtomicI8::new(0),
            interested: AtomicBool::new(false),
            carbons: AtomicBool::new(false),
            account: OnceLock::new(),
            last_presence: Mutex::new(None),
            close: Mutex::new(None),
            offline_poke: AtomicBool::new(false),
            closing: Notify::new(),
            metrics: None,
        };
        (h, OutboundRx { queue })
    }

    /// Count stanzas refused by the full queue in `m` (`xmppd_queue_drops`).
    pub fn with_metrics(mut self, m: Arc<Metrics>) -> SessionHandle {
        self.metrics = Some(m);
        self
    }

    /// Whether the session is available (sent initial presence, not unavailable).
    /// SeqCst with [`SessionHandle::set_presence`]: see `im::offline::store`.
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::SeqCst)
    }

    /// Its current priority.
    pub fn priority(&self) -> i8 {
        self.priority.load(Ordering::Relaxed)
    }

    /// Record broadcast presence (RFC 6121 §4.2, §4.5).
    pub fn set_presence(&self, available: bool, priority: i8) {
        self.priority.store(priority, Ordering::Relaxed);
        self.available.store(available, Ordering::SeqCst);
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

    /// Enable or disable message carbons (disabled again when the session
    /// is unbound, so that the account's count stays right).
    pub fn set_carbons(&self, on: bool) {
        if self.carbons.swap(on, Ordering::Relaxed) != on {
            if let Some(a) = self.account.get() {
                if on {
                    a.carbons.fetch_add(1, Ordering::Relaxed);
                } else {
                    a.carbons.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Share the account's state (`Router::bind`), counting this session
    /// in its carbons count if it already enabled them. The first call wins.
    pub(crate) fn join_account(&self, account: Arc<Account>) {
        if self.account.set(account).is_ok() && self.carbons() {
            if let Some(a) = self.account.get() {
                a.carbons.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The account's shared state, for the next session bound to it.
    pub fn account(&self) -> Option<Arc<Account>> {
        self.account.get().cloned()
    }

    /// Whether another session of the account may have enabled carbons
    /// (XEP-0280 §7): false only when the account's count says none has.
    pub fn others_may_have_carbons(&self) -> bool {
        match self.account.get() {
            Some(a) => a.carbons.load(Ordering::Relaxed) > usize::from(self.carbons()),
            None => true,
        }
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

    /// Ask the session's task to deliver offline storage again (XEP-0160).
    pub fn poke_offline(&self) {
        self.offline_poke.store(true, Ordering::SeqCst);
        self.closing.notify_one();
    }

    /// Whether a poke is pending (and clear it).
    pub fn take_offline_poke(&self) -> bool {
        self.offline_poke.load(Ordering::Relaxed) && self.offline_poke.swap(false, Ordering::SeqCst)
    }

    /// The close reason, once requested.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Queue stanza bytes; `false` if the queue is full (in stanzas or in
    /// bytes; one stanza always fits an empty queue) or the session gone.
    pub fn send(&self, bytes: Bytes) -> bool {
        let n = bytes.len();
        let mut q = self.queue.lock();
        let before = self.queue.queued.load(Ordering::Relaxed);
        let full = q.items.len() >= self.max_stanzas || (before > 0 && before.saturating_add(n) > self.max_queued);
        if full || q.closed {
            drop(q);
            if let Some(m) = &self.metrics {
                Metrics::inc(&m.queue_drops_total);
            }
            return false;
        }
        self.queue.queued.fetch_add(n, Ordering::Relaxed);
        q.items.push_back(bytes);
        let waker = q.waker.take();
        drop(q);
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Bytes waiting in the outbound queue.
    pub fn queued_bytes(&self) -> usize {
        self.queue.queued.load(Ordering::Relaxed)
    }
}

impl Drop for OutboundRx {
    /// Nobody reads any more: senders are refused rather than queuing into
    /// the void (the router then stores or bounces).
    fn drop(&mut self) {
        self.queue.lock().closed = true;
    }
}

impl Drop for SessionHandle {
    /// The receiving side sees the end of the queue.
    fn drop(&mut self) {
        let mut q = self.queue.lock();
        q.closed = true;
        let waker = q.waker.take();
        drop(q);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_read_older_than_a_write_is_not_kept() {
        let c: Cached<u32> = Cached::default();
        let long = std::time::Duration::from_secs(60);
        let g = c.generation();
        c.fill(g, 1);
        assert_eq!(c.get(long), Some(1));
        // A read begun before a write (set or clear) must not land after it.
        let g = c.generation();
        c.set(2);
        c.fill(g, 1);
        assert_eq!(c.get(long), Some(2));
        let g = c.generation();
        c.clear();
        c.fill(g, 1);
        assert_eq!(c.get(long), None);
        // A read begun after the write is cached; an old entry expires.
        let g = c.generation();
        c.fill(g, 3);
        assert_eq!(c.get(long), Some(3));
        assert_eq!(c.get(std::time::Duration::ZERO), None);
    }

    #[test]
    fn a_closed_or_dropped_receiver_refuses_stanzas() {
        let (h, mut rx) = SessionHandle::with_queue(1, Jid::parse("a@x/r").unwrap(), 100, usize::MAX);
        assert!(h.send(Bytes::from_static(b"<a/>")));
        rx.close();
        assert!(!h.send(Bytes::from_static(b"<b/>")), "closed");
        assert!(matches!(rx.try_recv(), Ok(Outbound::Stanza(b)) if &b[..] == b"<a/>"));
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
        let (h, rx) = SessionHandle::with_queue(2, Jid::parse("a@x/s").unwrap(), 100, usize::MAX);
        drop(rx);
        assert!(!h.send(Bytes::from_static(b"<c/>")), "dropped");
    }

    #[tokio::test]
    async fn queue_is_bounded_in_bytes() {
        let (h, mut rx) = SessionHandle::with_queue(1, Jid::parse("a@x/r").unwrap(), 100, 10);
        assert!(h.send(Bytes::from_static(b"123456")));
        assert!(!h.send(Bytes::from_static(b"123456")), "12 bytes > 10");
        assert!(h.send(Bytes::from_static(b"1234")));
        assert_eq!(h.queued_bytes(), 10);
        rx.recv().await.unwrap();
        assert_eq!(h.queued_bytes(), 4);
        assert!(rx.try_recv().is_ok());
        assert_eq!(h.queued_bytes(), 0);
        assert!(h.send(Bytes::from(vec![b'x'; 50])), "one big stanza fits an empty queue");
    }

    #[test]
    fn a_full_queue_counts_a_drop() {
        let m = Arc::new(Metrics::new(&["localhost".into()]));
        let (h, _rx) = SessionHandle::with_queue(1, Jid::parse("a@localhost/r").unwrap(), 1, usize::MAX);
        let h = h.with_metrics(m.clone());
        assert!(h.send(Bytes::from_static(b"<message/>")));
        assert!(!h.send(Bytes::from_static(b"<message/>")));
        assert_eq!(m.queue_drops_total.load(Ordering::Relaxed), 1);
    }
}
