//! XEP-0191 Blocking Command (urn:xmpp:blocking).
//!
//! The module answers the user's own blocklist requests (§3.1 get, §3.2
//! block, §3.3 unblock, §3.4 unblock all) and pushes changes to the user's
//! resources that requested the blocklist (§3.2, §3.3, §3.4).
//!
//! [`Blocklists`] (in `Shared::blocklists`) is the in-memory cache the
//! routing code consults through [`Blocklists::is_blocked`]; lists are
//! loaded lazily from the user-data key `blocklist` (normalised JIDs, one
//! per line) and replaced on every change.
//!
//! Left to the routing/presence (IM) code, which owns those paths:
//! - §3.2 inbound from a blocked JID: presence dropped silently; message
//!   and iq get/set answered `<service-unavailable/>`; other iqs dropped.
//! - §3.2 outbound to a blocked JID: not routed; error `<not-acceptable/>`
//!   with `<blocked xmlns='urn:xmpp:blocking:errors'/>` ([`blocked_error`]).
//! - §3.2 on block, unavailable presence to the newly blocked JIDs that may
//!   see the user's presence; §3.3 on unblock, the current presence to them
//!   ([`matches`] tells which roster contacts an item covers).

use super::{Ctx, IqAnswer, IqRequest, Module};
use crate::jid::Jid;
use crate::server::Shared;
use crate::session::SessionHandle;
use crate::stanza::StanzaError;
use crate::xml::{ns, Element};
use bytes::Bytes;
use dashmap::DashMap;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The `urn:xmpp:blocking` namespace.
pub const NS: &str = "urn:xmpp:blocking";
/// The application error namespace (§3.2, §9.2).
pub const NS_ERRORS: &str = "urn:xmpp:blocking:errors";
/// Most items in one blocklist; a block beyond it is `<not-acceptable/>`.
pub const MAX_ITEMS: usize = 1000;
/// Cached lists beyond which the empty ones are dropped (they reload
/// cheaply), so that lookups for many names cannot grow the cache without
/// bound.
const MAX_CACHED: usize = 100_000;

const KEY: &str = "blocklist";

/// One user's blocklist: items in the order they were added, and a set for
/// matching.
#[derive(Debug, Default)]
pub struct List {
    items: Vec<String>,
    set: HashSet<String>,
}

impl List {
    fn from_items(items: Vec<String>) -> List {
        let set = items.iter().cloned().collect();
        List { items, set }
    }

    /// The blocked JIDs (normalised strings), oldest first.
    pub fn items(&self) -> &[String] {
        &self.items
    }

    /// Whether any item matches `other` (§5).
    pub fn blocks(&self, other: &Jid) -> bool {
        !self.set.is_empty() && candidates(other).iter().any(|c| self.set.contains(c))
    }
}

/// Blocklists of all users: a cache over the store, and which sessions
/// requested their blocklist (the targets of pushes).
#[derive(Default)]
pub struct Blocklists {
    /// Bare JID → list, loaded on first use.
    lists: DashMap<String, Arc<List>>,
    /// Bare JID → ids of sessions that sent a blocklist get (§3.2 pushes go
    /// to them). Ids of ended sessions are pruned on the account's next get.
    requested: DashMap<String, Vec<u64>>,
    /// Serialises changes (read-modify-write of the stored list).
    write: Mutex<()>,
    /// Ids for push iqs.
    push_id: AtomicU64,
}

impl Blocklists {
    /// An empty cache.
    pub fn new() -> Blocklists {
        Blocklists::default()
    }

    /// Whether `owner`'s blocklist blocks `other` (XEP-0191 §5 matching).
    /// Never true between resources of the same account (§7's note). A store
    /// failure is logged and counts as not blocked (fail open: a broken
    /// store must not silence every conversation).
    pub fn is_blocked(&self, shared: &Shared, owner: &Jid, other: &Jid) -> bool {
        if owner.node().is_none() || crate::router::same_bare(owner, other) {
            return false;
        }
        // The routing hot path: a cached list, looked up without allocating.
        if let Some(hit) = crate::router::with_bare_key(owner, |k| self.lists.get(k).map(|l| l.blocks(other))) {
            return hit;
        }
        match self.get(shared, &owner.to_bare()) {
            Ok(list) => list.blocks(other),
            Err(_) => false,
        }
    }

    /// `owner`'s blocklist (cached; loaded from the store on first use).
    pub fn get(&self, shared: &Shared, owner: &Jid) -> Result<Arc<List>, StanzaError> {
        let key = owner.to_bare().to_string();
        if let Some(l) = self.lists.get(&key) {
            return Ok(l.clone());
        }
        let (user, host) = (owner.node().unwrap_or_default(), owner.domain());
        let stored = shared.store.get_data(user, host, KEY).map_err(|e| {
            tracing::error!(error = %e, user, host, "loading blocklist");
            StanzaError::InternalServerError
        })?;
        let list = Arc::new(List::from_items(parse_stored(stored.as_deref().unwrap_or(""))));
        if self.lists.len() >= MAX_CACHED {
            self.lists.retain(|_, l| !l.items.is_empty());
        }
        // A concurrent change may have inserted a newer list meanwhile: keep it.
        Ok(self.lists.entry(key).or_insert(list).clone())
    }

    /// Drop what is cached for an account (call when the account is
    /// removed, so that a new account of the same name starts unblocked).
    pub fn forget(&self, owner: &Jid) {
        let key = owner.to_bare().to_string();
        self.lists.remove(&key);
        self.requested.remove(&key);
    }

    /// Replace `owner`'s list with `f(current)`: store, then cache (nothing
    /// is written when the list is unchanged).
    fn update(
        &self,
        shared: &Shared,
        owner: &Jid,
        f: impl FnOnce(&[String]) -> Result<Vec<String>, StanzaError>,
    ) -> Result<(), StanzaError> {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.get(shared, owner)?;
        let next = f(current.items())?;
        if next == current.items() {
            return Ok(());
        }
        let (user, host) = (owner.node().unwrap_or_default(), owner.domain());
        let value = next.join("\n");
        let value = (!next.is_empty()).then_some(value.as_str());
        shared.store.set_data(user, host, KEY, value).map_err(|e| {
            tracing::error!(error = %e, user, host, "storing blocklist");
            StanzaError::InternalServerError
        })?;
        self.lists.insert(owner.to_bare().to_string(), Arc::new(List::from_items(next)));
        Ok(())
    }

    /// Remember that `session` requested its blocklist (§3.1), pruning ids
    /// of the account's sessions that have ended.
    fn mark_requested(&self, shared: &Shared, session: &SessionHandle) {
        let bare = session.jid.to_bare();
        let live: Vec<u64> = shared.router.sessions_of(&bare).iter().map(|s| s.id).collect();
        let mut ids = self.requested.entry(bare.to_string()).or_default();
        ids.retain(|id| live.contains(id));
        if !ids.contains(&session.id) {
            ids.push(session.id);
        }
    }

    /// Send `payload` as an iq set to each of `owner`'s sessions that
    /// requested the blocklist (§3.2, §3.3, §3.4 pushes).
    fn push(&self, shared: &Shared, owner: &Jid, payload: &Element) {
        let Some(ids) = self.requested.get(&owner.to_string()).map(|v| v.clone()) else { return };
        for s in shared.router.sessions_of(owner).iter().filter(|s| ids.contains(&s.id)) {
            let id = self.push_id.fetch_add(1, Ordering::Relaxed);
            let iq = Element::new("iq", ns::CLIENT)
                .with_attr("type", "set")
                .with_attr("id", format!("block-push-{id}"))
                .with_attr("to", s.jid.to_string())
                .with_child(payload.clone());
            // A full queue closes that session (the router's policy); a
            // session that misses a push re-reads the list on reconnect.
            let _ = s.send(Bytes::from(iq.to_client_string()));
        }
    }
}

/// Whether a blocklist item (a normalised JID string) matches `other`,
/// following §5: `user@domain/resource` only that resource;
/// `user@domain` any resource; `domain/resource` only that resource of the
/// domain; `domain` the domain and every JID at it.
pub fn matches(item: &str, other: &Jid) -> bool {
    candidates(other).iter().any(|c| c == item)
}

/// The item values that match `other` (§5, the order of XEP-0016 §2.1):
/// its full JID, its bare JID, `domain/resource`, and `domain`.
fn candidates(other: &Jid) -> Vec<String> {
    let mut c = Vec::with_capacity(4);
    let d = other.domain();
    if let Some(r) = other.resource() {
        c.push(other.to_string());
        if other.node().is_some() {
            c.push(format!("{d}/{r}"));
        }
    }
    if other.node().is_some() {
        c.push(other.to_bare().to_string());
    }
    c.push(d.to_string());
    c
}

/// The error for an outbound stanza to a blocked JID (§3.2):
/// `<error type='cancel'><not-acceptable/><blocked xmlns='urn:xmpp:blocking:errors'/></error>`
/// (`cancel` as in the XEP's example, where RFC 6120 §8.3.3.9 would say
/// `modify`: changing the stanza cannot help).
pub fn blocked_error() -> Element {
    let mut e = StanzaError::NotAcceptable.element().with_child(Element::new("blocked", NS_ERRORS));
    e.set_attr("type", "cancel");
    e
}

fn parse_stored(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// The `jid` attributes of a block/unblock's `<item/>` children, normalised
/// and deduplicated; `bad-request` for an item without `jid` (XEP-0191
/// §9.1 makes it required), `jid-malformed` for one that is not a JID.
fn items_of(payload: &Element) -> Result<Vec<String>, StanzaError> {
    let mut out: Vec<String> = Vec::new();
    for item in payload.elements().filter(|e| e.is("item", NS)) {
        let jid = item.attr("jid").ok_or(StanzaError::BadRequest)?;
        let jid = Jid::parse(jid).map_err(|_| StanzaError::JidMalformed)?.to_string();
        if !out.contains(&jid) {
            out.push(jid);
        }
    }
    Ok(out)
}

fn payload_with(name: &str, items: &[String]) -> Element {
    items
        .iter()
        .fold(Element::new(name, NS), |e, j| e.with_child(Element::new("item", NS).with_attr("jid", j.as_str())))
}

/// urn:xmpp:blocking.
pub struct Blocking;

impl Module for Blocking {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn handle(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> IqAnswer {
        // §3: requests carry no `to` (handled by the user's server); another
        // account's list is forbidden.
        let me = req.from.to_bare();
        if req.to.node().is_some() && req.to.to_bare() != me {
            return Err(StanzaError::Forbidden);
        }
        let bl = &ctx.shared.blocklists;
        match (req.set, req.payload.name.as_str()) {
            // §3.1: the list, possibly empty; the session now gets pushes.
            (false, "blocklist") => {
                let list = bl.get(ctx.shared, &me)?;
                bl.mark_requested(ctx.shared, ctx.session);
                Ok(Some(payload_with("blocklist", list.items())))
            }
            // §3.2: at least one item, else bad-request.
            (true, "block") => {
                let items = items_of(req.payload)?;
                if items.is_empty() {
                    return Err(StanzaError::BadRequest);
                }
                bl.update(ctx.shared, &me, |cur| {
                    let mut next = cur.to_vec();
                    next.extend(items.iter().filter(|j| !cur.contains(j)).cloned());
                    if next.len() > MAX_ITEMS {
                        return Err(StanzaError::NotAcceptable);
                    }
                    Ok(next)
                })?;
                bl.push(ctx.shared, &me, &payload_with("block", &items));
                // §3.2: blocked subscribers see the user go unavailable.
                for c in subscribers_matching(ctx.shared, &me, &items) {
                    crate::im::presence::send_unavailable_from_all(ctx.shared, &me, &c);
                }
                Ok(None)
            }
            // §3.3 with items, §3.4 without: unblock those, or all.
            (true, "unblock") => {
                let items = items_of(req.payload)?;
                let before = bl.get(ctx.shared, &me)?;
                bl.update(ctx.shared, &me, |cur| {
                    Ok(if items.is_empty() {
                        Vec::new()
                    } else {
                        cur.iter().filter(|j| !items.contains(j)).cloned().collect()
                    })
                })?;
                bl.push(ctx.shared, &me, &payload_with("unblock", &items));
                // §3.3: unblocked subscribers get the user's current presence.
                let after = bl.get(ctx.shared, &me)?;
                let freed: Vec<String> =
                    before.items().iter().filter(|i| !after.items().contains(i)).cloned().collect();
                for c in subscribers_matching(ctx.shared, &me, &freed) {
                    if !bl.is_blocked(ctx.shared, &me, &c) {
                        crate::im::presence::send_current_to(ctx.shared, &me, &c);
                    }
                }
                Ok(None)
            }
            _ => Err(StanzaError::BadRequest),
        }
    }
}

/// The user's subscribers (`from`/`both`) that any of `items` matches.
fn subscribers_matching(shared: &Shared, me: &Jid, items: &[String]) -> Vec<Jid> {
    let Ok((_, roster)) = shared.store.roster(me.node().unwrap_or(""), me.domain()) else { return Vec::new() };
    roster
        .iter()
        .filter(|i| i.subscription.has_from())
        .filter_map(|i| Jid::parse(&i.jid).ok())
        .filter(|c| items.iter().any(|it| matches(it, c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn list(items: &[&str]) -> List {
        List::from_items(items.iter().map(|s| j(s).to_string()).collect())
    }

    #[test]
    fn matching_rules() {
        // §5 item 1: a full JID matches only that resource.
        let l = list(&["romeo@montague.net/orchard"]);
        assert!(l.blocks(&j("romeo@montague.net/orchard")));
        assert!(!l.blocks(&j("romeo@montague.net/garden")));
        assert!(!l.blocks(&j("romeo@montague.net")));
        // Item 2: a bare JID matches any resource and the bare JID.
        let l = list(&["Romeo@Montague.net"]);
        assert!(l.blocks(&j("romeo@montague.net/orchard")));
        assert!(l.blocks(&j("romeo@montague.net")));
        assert!(!l.blocks(&j("juliet@montague.net/x")));
        assert!(!l.blocks(&j("montague.net")));
        // Item 3: domain/resource matches only that resource.
        let l = list(&["montague.net/orchard"]);
        assert!(l.blocks(&j("montague.net/orchard")));
        assert!(l.blocks(&j("romeo@montague.net/orchard")));
        assert!(!l.blocks(&j("montague.net/garden")));
        assert!(!l.blocks(&j("montague.net")));
        // Item 4: a domain matches itself and every JID at it.
        let l = list(&["montague.net"]);
        for m in ["montague.net", "montague.net/x", "romeo@montague.net", "romeo@montague.net/orchard"] {
            assert!(l.blocks(&j(m)), "{m}");
        }
        assert!(!l.blocks(&j("romeo@capulet.net")));
        assert!(!l.blocks(&j("sub.montague.net")));
        assert!(!List::default().blocks(&j("a@b")));
        assert!(matches("montague.net", &j("romeo@montague.net/orchard")));
        assert!(!matches("romeo@montague.net/garden", &j("romeo@montague.net/orchard")));
    }

    #[test]
    fn items_normalised_and_validated() {
        let p = Element::parse(
            b"<block xmlns='urn:xmpp:blocking'><item jid='Romeo@Montague.NET'/><item jid='romeo@montague.net'/>\
              <item jid='x.org/R'/></block>",
            ns::CLIENT,
        )
        .unwrap();
        assert_eq!(items_of(&p).unwrap(), vec!["romeo@montague.net", "x.org/R"]);
        let p = Element::parse(b"<block xmlns='urn:xmpp:blocking'><item/></block>", ns::CLIENT).unwrap();
        assert_eq!(items_of(&p), Err(StanzaError::BadRequest));
        let p = Element::parse(b"<block xmlns='urn:xmpp:blocking'><item jid='a@'/></block>", ns::CLIENT).unwrap();
        assert_eq!(items_of(&p), Err(StanzaError::JidMalformed));
    }

    #[test]
    fn stored_format_and_errors() {
        assert_eq!(parse_stored("a@b\n\nc/d\n"), vec!["a@b", "c/d"]);
        assert_eq!(
            blocked_error().to_client_string(),
            "<error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <blocked xmlns='urn:xmpp:blocking:errors'/></error>"
        );
        assert_eq!(
            payload_with("unblock", &["a@b".into()]).to_client_string(),
            "<unblock xmlns='urn:xmpp:blocking'><item jid='a@b'/></unblock>"
        );
    }
}
