//! RFC 6121 §4 presence: initial presence with probes (§4.2–§4.3),
//! updates (§4.4), unavailable presence (§4.5, also for dropped
//! connections) and directed presence (§4.6).

use super::{presence_xml, send_presence};
use crate::jid::Jid;
use crate::server::Shared;
use crate::session::SessionHandle;
use crate::storage::{RosterItem, StoreError};
use crate::xml::{ns, StanzaHead};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// `bytes` (a stamped presence) addressed to `to`.
pub(crate) fn addressed(bytes: &[u8], to: &str) -> Bytes {
    match StanzaHead::parse(bytes, ns::CLIENT) {
        Ok(h) => {
            let from = h.attr("from").unwrap_or("").to_string();
            Bytes::from(h.rewrite(bytes, &from, Some(to)))
        }
        Err(_) => Bytes::copy_from_slice(bytes),
    }
}

/// How long a cached roster is trusted. Every roster write through this
/// server drops the cached copy at once ([`forget_roster`]); this bounds how
/// stale it can be after a write from outside the process (`xmppd ctl
/// import` on the store file).
const ROSTER_TTL: Duration = Duration::from_secs(60);

/// `session`'s roster for a presence broadcast: cached in the state its
/// account's sessions share, since every broadcast needs it (a store read
/// each time was a transaction of two statements per presence change). A
/// store failure is logged, answered with an empty roster, and not cached.
fn roster_of(shared: &Shared, session: &SessionHandle) -> Arc<Vec<RosterItem>> {
    if let Some(hit) = session.account().and_then(|a| a.roster.get(ROSTER_TTL)) {
        return hit;
    }
    match read_roster(shared, session) {
        Ok((_, items)) => items,
        Err(e) => {
            tracing::error!(error = %e, owner = %session.jid.to_bare(), "reading roster");
            Arc::default()
        }
    }
}

/// Read `session`'s roster (version and items) from the store, and cache
/// the items for its account's presence broadcasts (the roster get at login
/// fills the cache for the initial presence that follows).
pub(crate) fn read_roster(shared: &Shared, session: &SessionHandle) -> Result<(u64, Arc<Vec<RosterItem>>), StoreError> {
    let account = session.account();
    let gen = account.as_ref().map(|a| a.roster.generation());
    let (ver, items) = shared.store.roster(session.jid.node().unwrap_or(""), session.jid.domain())?;
    let items = Arc::new(items);
    if let (Some(a), Some(g)) = (account, gen) {
        a.roster.fill(g, items.clone());
    }
    Ok((ver, items))
}

/// `owner`'s roster changed in the store (every write goes through here
/// after it is made): its sessions' cached copy is dropped.
pub fn forget_roster(shared: &Shared, owner: &Jid) {
    if let Some(a) = shared.router.account(owner) {
        a.roster.clear();
    }
}

fn parse_bare(s: &str) -> Option<Jid> {
    Jid::parse(s).ok().map(|j| j.to_bare())
}

/// Broadcast available presence from `session` (`stamped`: from its full
/// JID, no `to`). Returns true when this was the initial presence (§4.2),
/// which also probes contacts (§4.3) and redelivers pending subscription
/// requests (§3.1.3).
pub fn broadcast_available(shared: &Shared, session: &Arc<SessionHandle>, stamped: Bytes, priority: i8) -> bool {
    let initial = !session.is_available();
    session.set_last_presence(Some(stamped.clone()));
    session.set_presence(true, priority);
    let me = session.jid.to_bare();
    let items = roster_of(shared, session);
    // §4.2.2 / §4.4.2: to every contact with a subscription `from` or `both`.
    for it in items.iter().filter(|i| i.subscription.has_from()) {
        if let Some(c) = parse_bare(&it.jid) {
            // XEP-0191 §3.4: no presence to blocked contacts.
            if !shared.blocklists.is_blocked(shared, &me, &c) {
                send_presence(shared, &c, addressed(&stamped, &it.jid));
            }
        }
    }
    // ... and to all of the user's available resources, "including the
    // resource that generated the presence notification" (§4.2.2, §4.4.2).
    for other in shared.router.sessions_of(&me) {
        if other.is_available() {
            let _ = other.send(addressed(&stamped, &other.jid.to_string()));
        }
    }
    if initial {
        let full = session.jid.to_string();
        // §4.3: probes. For local contacts the server answers at once with
        // the last presence of each available resource (§4.3.2).
        for it in items.iter().filter(|i| i.subscription.has_to()) {
            let Some(c) = parse_bare(&it.jid) else { continue };
            if !shared.router.is_local(c.domain()) {
                continue; // remote probes need federation
            }
            for s in shared.router.sessions_of(&c) {
                if let (true, Some(p)) = (s.is_available(), s.last_presence()) {
                    let _ = session.send(addressed(&p, &full));
                }
            }
        }
        for other in shared.router.sessions_of(&me) {
            if let (true, Some(p)) = (other.id != session.id && other.is_available(), other.last_presence()) {
                let _ = session.send(addressed(&p, &full));
            }
        }
        // §3.1.3: subscription requests received while offline.
        for it in items.iter().filter(|i| i.pending_in) {
            if let Some(s) = &it.pending_in_stanza {
                let _ = session.send(Bytes::from(s.clone()));
            }
        }
    }
    initial
}

/// Unavailable presence from `session` (§4.5): to subscribers, the user's
/// other resources and everyone that got directed presence (§4.6.3).
/// `stamped` is the client's unavailable presence, or None when the
/// connection dropped (§4.5.3: the server generates it).
pub fn broadcast_unavailable(shared: &Shared, session: &Arc<SessionHandle>, stamped: Option<Bytes>, directed: &[Jid]) {
    let was = session.is_available();
    session.set_presence(false, 0);
    session.set_last_presence(None);
    if !was && directed.is_empty() {
        return;
    }
    let full = session.jid.to_string();
    let explicit = stamped.is_some();
    let bytes = stamped.unwrap_or_else(|| {
        let mut e = crate::xml::Element::new("presence", ns::CLIENT).with_attr("type", "unavailable");
        e.set_attr("from", full.clone());
        Bytes::from(e.to_client_string())
    });
    let me = session.jid.to_bare();
    if was {
        for it in roster_of(shared, session).iter().filter(|i| i.subscription.has_from()) {
            if let Some(c) = parse_bare(&it.jid) {
                send_presence(shared, &c, addressed(&bytes, &it.jid));
            }
        }
        // §4.5.2: the user's other available resources; the sender itself
        // too when it is still connected (an explicit unavailable presence).
        for other in shared.router.sessions_of(&me) {
            if other.is_available() || (other.id == session.id && explicit) {
                let _ = other.send(addressed(&bytes, &other.jid.to_string()));
            }
        }
    }
    for d in directed {
        send_presence(shared, d, addressed(&bytes, &d.to_string()));
    }
}

/// Send the current presence of each of `from`'s available resources to
/// `to` (bare): after `to` gains a subscription (§3.1.5).
pub fn send_current_to(shared: &Shared, from: &Jid, to: &Jid) {
    for s in shared.router.sessions_of(from) {
        if let (true, Some(p)) = (s.is_available(), s.last_presence()) {
            send_presence(shared, to, addressed(&p, &to.to_string()));
        }
    }
}

/// Unavailable presence from each of `from`'s available resources to `to`
/// (bare): after `to` loses its subscription (§3.2.2, §3.3.3).
pub fn send_unavailable_from_all(shared: &Shared, from: &Jid, to: &Jid) {
    for s in shared.router.sessions_of(from) {
        if s.is_available() {
            send_presence(shared, to, presence_xml(&s.jid.to_string(), &to.to_string(), Some("unavailable")));
        }
    }
}

/// Whether `contact` (bare) receives `user`'s presence by subscription.
pub fn is_subscriber(shared: &Shared, user: &Jid, contact: &Jid) -> bool {
    shared
        .store
        .roster_item(user.node().unwrap_or(""), user.domain(), &contact.to_bare().to_string())
        .ok()
        .flatten()
        .is_some_and(|i| i.subscription.has_from())
}
