//! The routing table: bare JID → bound sessions, and the RFC 6121 §8.5
//! delivery rules for stanzas addressed to local users.
//!
//! The table holds only cheap handles; no map guard is held across an
//! `.await` (nothing here awaits). Stanzas for other domains go to a
//! [`Remote`] seam: federation (RFC 6120 s2s) or another cluster node plug in
//! there; today's implementation answers `remote-server-not-found`.

use crate::jid::Jid;
use crate::session::SessionHandle;
use crate::stanza::{StanzaError, StreamError};
use bytes::Bytes;
use dashmap::DashMap;
use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    /// Reused buffer for table keys, so a lookup allocates nothing.
    static KEY: RefCell<String> = RefCell::new(String::with_capacity(64));
}

/// Call `f` with the bare part of `jid` as written in the routing table
/// (`node@domain` or `domain`, the `Display` of `to_bare()`), built in a
/// per-thread buffer (a nested call falls back to a fresh `String`).
pub fn with_bare_key<R>(jid: &Jid, f: impl FnOnce(&str) -> R) -> R {
    fn fill(k: &mut String, jid: &Jid) {
        // push_str, not write!: the formatting machinery cost more than the
        // rest of a look-up (callgrind: ~200-400 instructions a call).
        k.clear();
        if let Some(n) = jid.node() {
            k.push_str(n);
            k.push('@');
        }
        k.push_str(jid.domain());
    }
    KEY.with(|cell| match cell.try_borrow_mut() {
        Ok(mut k) => {
            fill(&mut k, jid);
            f(&k)
        }
        Err(_) => {
            let mut k = String::new();
            fill(&mut k, jid);
            f(&k)
        }
    })
}

/// Whether two JIDs have the same bare part (no allocation).
pub fn same_bare(a: &Jid, b: &Jid) -> bool {
    a.node() == b.node() && a.domain() == b.domain()
}

/// The three stanza kinds (RFC 6120 §8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `<message/>`.
    Message,
    /// `<presence/>`.
    Presence,
    /// `<iq/>`.
    Iq,
}

impl Kind {
    /// From the element name.
    pub fn from_name(name: &str) -> Option<Kind> {
        match name {
            "message" => Some(Kind::Message),
            "presence" => Some(Kind::Presence),
            "iq" => Some(Kind::Iq),
            _ => None,
        }
    }
}

/// What happened to a routed stanza.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queued to these sessions (by id).
    Delivered(Vec<u64>),
    /// A chat or normal message found no available resource: the caller
    /// stores it offline (XEP-0160) or, for no such account, bounces
    /// `service-unavailable` (RFC 6121 §8.5.2.2.1, §8.5.1).
    Offline,
    /// Not delivered: bounce this error to the sender.
    Bounce(StanzaError),
    /// Silently dropped, as the RFC says for this case.
    Dropped,
}

/// Where stanzas for non-local domains go (federation, cluster nodes).
pub trait Remote: Send + Sync {
    /// Route `bytes` (already stamped with `from`) to `to`.
    fn route(&self, kind: Kind, ty: &str, to: &Jid, bytes: Bytes) -> Delivery;
}

/// No federation yet: RFC 6120 §8.3.3.15 `remote-server-not-found` for
/// messages and requests; presence and responses are dropped.
pub struct NoFederation;

impl Remote for NoFederation {
    fn route(&self, kind: Kind, ty: &str, _to: &Jid, _bytes: Bytes) -> Delivery {
        match (kind, ty) {
            (Kind::Presence, _) | (_, "error") | (Kind::Iq, "result") => Delivery::Dropped,
            _ => Delivery::Bounce(StanzaError::RemoteServerNotFound),
        }
    }
}

/// The routing table.
pub struct Router {
    /// Bare JID string → sessions of that account.
    table: DashMap<String, Vec<Arc<SessionHandle>>>,
    /// Served domains (normalised).
    hosts: Vec<String>,
    /// Non-local destinations.
    remote: Box<dyn Remote>,
}

impl Router {
    /// A router for `hosts` with no federation.
    pub fn new(hosts: &[String]) -> Router {
        Router::with_remote(hosts, Box::new(NoFederation))
    }

    /// A router with a given remote seam.
    pub fn with_remote(hosts: &[String], remote: Box<dyn Remote>) -> Router {
        Router { table: DashMap::new(), hosts: hosts.iter().map(|h| h.to_lowercase()).collect(), remote }
    }

    /// Whether `domain` is served here.
    pub fn is_local(&self, domain: &str) -> bool {
        self.hosts.iter().any(|h| h == domain)
    }

    /// Register a bound session. Returns the session it replaced (same full
    /// JID), which the caller closes with `<conflict/>` (RFC 6120 §7.7.2.2).
    pub fn bind(&self, h: Arc<SessionHandle>) -> Option<Arc<SessionHandle>> {
        let mut list = self.table.entry(h.jid.to_bare().to_string()).or_default();
        // One shared state per account (the XEP-0280 carbons count, the
        // XEP-0153 avatar hash), taken before a replaced session leaves the
        // list (it keeps counting in it until its own unbind).
        h.join_account(list.iter().find_map(|s| s.account()).unwrap_or_default());
        let old = list.iter().position(|s| s.jid == h.jid).map(|i| list.swap_remove(i));
        list.push(h);
        old
    }

    /// Remove a session, if it is still the one registered under its JID.
    pub fn unbind(&self, jid: &Jid, id: u64) {
        with_bare_key(jid, |bare| {
            self.table.remove_if_mut(bare, |_, list| {
                list.retain(|s| s.id != id);
                list.is_empty()
            });
        })
    }

    /// Call `f` with the sessions of `jid`'s account, under the table's
    /// read guard: `f` must not call back into the router (and nothing here
    /// awaits).
    pub fn with_sessions<R>(&self, jid: &Jid, f: impl FnOnce(&[Arc<SessionHandle>]) -> R) -> R {
        with_bare_key(jid, |k| match self.table.get(k) {
            Some(list) => f(&list),
            None => f(&[]),
        })
    }

    /// The state `bare`'s bound sessions share, if any is bound.
    pub fn account(&self, bare: &Jid) -> Option<Arc<crate::session::Account>> {
        self.with_sessions(bare, |l| l.iter().find_map(|s| s.account()))
    }

    /// The sessions of an account.
    pub fn sessions_of(&self, bare: &Jid) -> Vec<Arc<SessionHandle>> {
        self.with_sessions(bare, |l| l.to_vec())
    }

    /// Whether the account has a bound session.
    pub fn is_online(&self, bare: &Jid) -> bool {
        self.with_sessions(bare, |l| !l.is_empty())
    }

    /// The session bound to a full JID.
    pub fn get(&self, full: &Jid) -> Option<Arc<SessionHandle>> {
        self.with_sessions(full, |l| l.iter().find(|s| s.jid == *full).cloned())
    }

    /// Full JIDs of every bound session, sorted.
    pub fn connected_full_jids(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.table.iter().flat_map(|e| e.value().iter().map(|s| s.jid.to_string()).collect::<Vec<_>>()).collect();
        v.sort();
        v
    }

    /// Number of bound sessions.
    pub fn session_count(&self) -> usize {
        self.table.iter().map(|e| e.value().len()).sum()
    }

    /// Close the sessions of `bare` (only `resource` if given) with a stream
    /// error; returns how many were told to close.
    pub fn kick(&self, bare: &Jid, resource: Option<&str>, error: StreamError, text: Option<&str>) -> usize {
        let victims: Vec<_> =
            self.sessions_of(bare).into_iter().filter(|s| resource.is_none() || s.jid.resource() == resource).collect();
        for s in &victims {
            s.request_close(error, text.map(str::to_owned));
        }
        victims.len()
    }

    /// Tell every session to close (shutdown).
    pub fn close_all(&self, error: StreamError) {
        for e in self.table.iter() {
            for s in e.value() {
                s.request_close(error, None);
            }
        }
    }

    /// Route a stanza stamped with `from` to `to`, by RFC 6121 §8.5.
    /// `ty` is the stanza's `type` attribute ("" when absent). Stanzas the
    /// server answers itself (to a domain, iq to a bare JID) never reach here.
    pub fn route(&self, kind: Kind, ty: &str, to: &Jid, bytes: Bytes) -> Delivery {
        self.route_noting_carbons(kind, ty, to, bytes).0
    }

    /// [`Router::route`], and whether another session of a local recipient's
    /// account enabled carbons and did not get the message (XEP-0280 §6: it
    /// gets a copy). Found in the same look-up as the delivery; always false
    /// for presence and iq, which are not copied.
    pub fn route_noting_carbons(&self, kind: Kind, ty: &str, to: &Jid, bytes: Bytes) -> (Delivery, bool) {
        if !self.is_local(to.domain()) {
            return (self.remote.route(kind, ty, to, bytes), false);
        }
        self.with_sessions(to, |sessions| {
            let d = route_to(kind, ty, to, sessions, &bytes);
            let carbons = match &d {
                Delivery::Delivered(ids) if kind == Kind::Message => {
                    sessions.iter().any(|s| s.carbons() && !ids.contains(&s.id))
                }
                _ => false,
            };
            (d, carbons)
        })
    }
}

/// RFC 6121 §8.5: delivery to a local account with these `sessions`.
fn route_to(kind: Kind, ty: &str, to: &Jid, sessions: &[Arc<SessionHandle>], bytes: &Bytes) -> Delivery {
    if to.resource().is_some() {
        if let Some(s) = sessions.iter().find(|s| s.jid == *to) {
            return deliver(std::iter::once(s), bytes, storable(kind, ty));
        }
        // §8.5.3.2: no such resource.
        return match (kind, ty) {
            // §8.5.3.2.1: chat and normal are treated as if sent to the bare JID.
            (Kind::Message, "chat" | "normal" | "") => to_bare(kind, ty, sessions, bytes),
            (Kind::Message, "groupchat") => Delivery::Bounce(StanzaError::ServiceUnavailable),
            // §8.5.3.2.1 headline, and errors: silently ignore.
            (Kind::Message, _) => Delivery::Dropped,
            // §8.5.3.2.2: an iq request gets service-unavailable.
            (Kind::Iq, "get" | "set") => Delivery::Bounce(StanzaError::ServiceUnavailable),
            (Kind::Iq, _) => Delivery::Dropped,
            // §8.5.3.2.3: subscription requests are handled as for the
            // bare JID; other presence is ignored.
            (Kind::Presence, "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed") => {
                to_bare(kind, ty, sessions, bytes)
            }
            (Kind::Presence, _) => Delivery::Dropped,
        };
    }
    to_bare(kind, ty, sessions, bytes)
}

/// RFC 6121 §8.5.2: delivery to a bare JID, choosing among `sessions`
/// without collecting them.
fn to_bare(kind: Kind, ty: &str, sessions: &[Arc<SessionHandle>], bytes: &Bytes) -> Delivery {
    let available = || sessions.iter().filter(|s| s.is_available());
    match kind {
        Kind::Message => {
            if ty == "groupchat" {
                // §8.5.2.1.1: groupchat to a bare JID is an error.
                return Delivery::Bounce(StanzaError::ServiceUnavailable);
            }
            let nonneg = || available().filter(|s| s.priority() >= 0);
            let Some(top) = nonneg().map(|s| s.priority()).max() else {
                // §8.5.2.2.1: no available resource: offline storage.
                return match ty {
                    "headline" | "error" => Delivery::Dropped,
                    _ => Delivery::Offline,
                };
            };
            if ty == "headline" {
                // §8.5.2.1.1: headline goes to all non-negative resources.
                return deliver(nonneg(), bytes, false);
            }
            // §8.5.2.1.1: chat/normal go to the highest-priority resource(s).
            deliver(nonneg().filter(|s| s.priority() == top), bytes, storable(kind, ty))
        }
        // §8.5.2.1.2: presence goes to every available resource.
        Kind::Presence => match available().next() {
            None => Delivery::Dropped,
            Some(_) => deliver(available(), bytes, false),
        },
        // §8.5.2.1.3 / §8.5.2.2.3: an iq to a bare JID is the server's to
        // answer; the caller handles what it implements.
        Kind::Iq => match ty {
            "get" | "set" => Delivery::Bounce(StanzaError::ServiceUnavailable),
            _ => Delivery::Dropped,
        },
    }
}

/// Chat and normal messages are stored offline when no session takes them
/// (RFC 6121 §8.5.2.2.1, XEP-0160).
fn storable(kind: Kind, ty: &str) -> bool {
    kind == Kind::Message && matches!(ty, "chat" | "normal" | "")
}

/// Queue to each session. A session whose queue is full is a consumer that
/// stopped reading: it is closed with `<policy-violation/>` rather than
/// letting the server buffer without limit. If no session took the stanza,
/// a storable message goes offline (`offline_ok`), anything else bounces.
fn deliver<'a>(targets: impl Iterator<Item = &'a Arc<SessionHandle>>, bytes: &Bytes, offline_ok: bool) -> Delivery {
    let mut ids = Vec::with_capacity(1);
    for s in targets {
        if s.send(bytes.clone()) {
            ids.push(s.id);
        } else {
            s.request_close(StreamError::PolicyViolation, Some(crate::session::QUEUE_FULL.into()));
        }
    }
    if ids.is_empty() && offline_ok {
        Delivery::Offline
    } else if ids.is_empty() {
        Delivery::Bounce(StanzaError::ServiceUnavailable)
    } else {
        Delivery::Delivered(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::OutboundRx;

    fn session(r: &Router, id: u64, jid: &str, prio: Option<i8>) -> (Arc<SessionHandle>, OutboundRx) {
        let (h, rx) = SessionHandle::with_queue(id, Jid::parse(jid).unwrap(), 4, usize::MAX);
        let h = Arc::new(h);
        if let Some(p) = prio {
            h.set_presence(true, p);
        }
        r.bind(h.clone());
        (h, rx)
    }

    fn j(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    #[test]
    fn bare_message_goes_to_highest_priority() {
        let r = Router::new(&["x".into()]);
        let (_a, mut ra) = session(&r, 1, "a@x/1", Some(1));
        let (_b, mut rb) = session(&r, 2, "a@x/2", Some(5));
        let (_c, mut rc) = session(&r, 3, "a@x/3", Some(5));
        let (_d, mut rd) = session(&r, 4, "a@x/4", None);
        assert_eq!(
            r.route(Kind::Message, "chat", &j("a@x"), Bytes::from_static(b"m")),
            Delivery::Delivered(vec![2, 3])
        );
        assert!(ra.try_recv().is_err() && rd.try_recv().is_err());
        assert!(rb.try_recv().is_ok() && rc.try_recv().is_ok());
    }

    #[test]
    fn full_jid_rules() {
        let r = Router::new(&["x".into()]);
        let (_a, mut ra) = session(&r, 1, "a@x/1", Some(0));
        assert_eq!(r.route(Kind::Iq, "get", &j("a@x/1"), Bytes::new()), Delivery::Delivered(vec![1]));
        assert_eq!(
            r.route(Kind::Iq, "get", &j("a@x/zz"), Bytes::new()),
            Delivery::Bounce(StanzaError::ServiceUnavailable)
        );
        assert_eq!(r.route(Kind::Message, "chat", &j("a@x/zz"), Bytes::new()), Delivery::Delivered(vec![1]));
        assert_eq!(r.route(Kind::Message, "headline", &j("a@x/zz"), Bytes::new()), Delivery::Dropped);
        assert_eq!(r.route(Kind::Message, "chat", &j("b@x"), Bytes::new()), Delivery::Offline);
        assert_eq!(
            r.route(Kind::Message, "chat", &j("b@y"), Bytes::new()),
            Delivery::Bounce(StanzaError::RemoteServerNotFound)
        );
        assert!(ra.try_recv().is_ok());
    }

    #[test]
    fn negative_priority_gets_no_bare_messages() {
        let r = Router::new(&["x".into()]);
        let (_a, _ra) = session(&r, 1, "a@x/1", Some(-1));
        assert_eq!(r.route(Kind::Message, "chat", &j("a@x"), Bytes::new()), Delivery::Offline);
        assert_eq!(r.route(Kind::Message, "chat", &j("a@x/1"), Bytes::new()), Delivery::Delivered(vec![1]));
    }

    #[test]
    fn takeover_and_unbind() {
        let r = Router::new(&["x".into()]);
        let (old, _r1) = session(&r, 1, "a@x/1", None);
        let (new, _r2) = SessionHandle::with_queue(2, j("a@x/1"), 1, usize::MAX);
        let new = Arc::new(new);
        assert_eq!(r.bind(new).unwrap().id, old.id);
        r.unbind(&j("a@x/1"), 1); // the old session's cleanup must not remove the new one
        assert_eq!(r.session_count(), 1);
        r.unbind(&j("a@x/1"), 2);
        assert_eq!(r.session_count(), 0);
        assert!(r.connected_full_jids().is_empty());
    }

    #[test]
    fn full_queue_closes_slow_consumer() {
        let r = Router::new(&["x".into()]);
        let (a, _ra) = session(&r, 1, "a@x/1", Some(0));
        for _ in 0..4 {
            r.route(Kind::Message, "chat", &j("a@x/1"), Bytes::new());
        }
        assert_eq!(r.route(Kind::Message, "chat", &j("a@x/1"), Bytes::new()), Delivery::Offline);
        assert_eq!(
            r.route(Kind::Iq, "get", &j("a@x/1"), Bytes::new()),
            Delivery::Bounce(StanzaError::ServiceUnavailable)
        );
        assert_eq!(a.close_reason().unwrap().error, StreamError::PolicyViolation);
    }

    /// XEP-0280: the account's carbons count, shared by its sessions, tells
    /// a sender whether to look for copies (§7); the route look-up tells
    /// whether the recipient's other sessions get one (§6).
    #[test]
    fn carbons_counted_per_account() {
        let r = Router::new(&["x".into()]);
        let (a1, _r1) = session(&r, 1, "a@x/1", Some(0));
        let (a2, _r2) = session(&r, 2, "a@x/2", Some(0));
        let (b1, _r3) = session(&r, 3, "b@x/1", Some(0));
        assert!(!a1.others_may_have_carbons() && !a2.others_may_have_carbons());
        a2.set_carbons(true);
        a2.set_carbons(true); // counted once
        assert!(a1.others_may_have_carbons() && !a2.others_may_have_carbons());
        assert!(!b1.others_may_have_carbons(), "another account's count");
        // To a1's full JID: a2 did not get it and enabled carbons.
        let (d, more) = r.route_noting_carbons(Kind::Message, "chat", &j("a@x/1"), Bytes::new());
        assert_eq!((d, more), (Delivery::Delivered(vec![1]), true));
        let (_, more) = r.route_noting_carbons(Kind::Message, "chat", &j("b@x/1"), Bytes::new());
        assert!(!more);
        // Presence is not copied (§6 is about messages).
        let (d, more) = r.route_noting_carbons(Kind::Presence, "", &j("a@x/1"), Bytes::new());
        assert_eq!((d, more), (Delivery::Delivered(vec![1]), false));
        // A session bound later shares the count; one replacing a2 too,
        // and a2's unbind (carbons off first, as the session does) leaves
        // the new one's count alone.
        let (a3, _r4) = session(&r, 4, "a@x/3", Some(0));
        assert!(a3.others_may_have_carbons());
        let (a2b, _r5) = SessionHandle::with_queue(5, j("a@x/2"), 4, usize::MAX);
        let a2b = Arc::new(a2b);
        r.bind(a2b.clone());
        a2b.set_carbons(true);
        a2.set_carbons(false);
        r.unbind(&a2.jid, a2.id);
        assert!(a1.others_may_have_carbons() && a3.others_may_have_carbons());
        a2b.set_carbons(false);
        assert!(!a1.others_may_have_carbons());
    }
}
