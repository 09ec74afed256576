//! RFC 6121 §2 roster management: get (with versioning, §2.6 / XEP-0237),
//! set, remove, and pushes to interested resources (§2.1.6).

use crate::jid::Jid;
use crate::modules::{Ctx, IqAnswer};
use crate::server::Shared;
use crate::stanza::StanzaError;
use crate::storage::{RosterItem, StoreError};
use crate::xml::{ns, Element};
use bytes::Bytes;

/// Longest item name or group name accepted (RFC 6121 §2.3.3: the server
/// may refuse overlong handles and groups with not-acceptable).
const MAX_NAME: usize = 1024;

/// Map a store failure to a stanza error.
pub(crate) fn store_err(e: StoreError) -> StanzaError {
    tracing::error!(error = %e, "store");
    StanzaError::InternalServerError
}

/// The `<item/>` of a roster item (§2.1.2).
pub fn item_element(item: &RosterItem) -> Element {
    let mut e = Element::new("item", ns::ROSTER).with_attr("jid", item.jid.clone());
    if let Some(n) = &item.name {
        e.set_attr("name", n.clone());
    }
    e.set_attr("subscription", item.subscription.as_str());
    if item.ask_out {
        e.set_attr("ask", "subscribe"); // §2.1.2.2
    }
    if item.approved {
        e.set_attr("approved", "true"); // §2.1.2.1
    }
    for g in &item.groups {
        e = e.with_child(Element::new("group", ns::ROSTER).with_text(g.clone()));
    }
    e
}

/// §2.1.6 roster push of `item` to every interested resource of `owner`.
pub fn push(shared: &Shared, owner: &Jid, item: Element, ver: u64) {
    let query = Element::new("query", ns::ROSTER).with_attr("ver", ver.to_string()).with_child(item);
    for s in shared.router.sessions_of(owner) {
        if !s.is_interested() {
            continue;
        }
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", format!("push{ver}"))
            .with_attr("to", s.jid.to_string())
            .with_child(query.clone());
        let _ = s.send(Bytes::from(iq.to_client_string()));
    }
}

/// Push the current state of `owner`'s item for `jid` (or its removal).
pub fn push_item(shared: &Shared, owner: &Jid, item: Option<&RosterItem>, jid: &str, ver: u64) {
    let el = match item {
        Some(i) if i.visible => item_element(i),
        Some(_) => return,
        None => Element::new("item", ns::ROSTER).with_attr("jid", jid).with_attr("subscription", "remove"),
    };
    push(shared, owner, el, ver);
}

/// Answer a roster get or set from `ctx.session` (RFC 6121 §2.1.3, §2.3).
pub fn handle(ctx: &Ctx<'_>, set: bool, query: &Element) -> IqAnswer {
    let owner = ctx.session.jid.to_bare();
    let (user, host) = (owner.node().unwrap_or(""), owner.domain());
    if !set {
        ctx.session.set_interested();
        let (ver, items) = super::presence::read_roster(ctx.shared, ctx.session).map_err(store_err)?;
        // §2.6.3: an unchanged version gets an empty result; changes would
        // come as pushes, and there are none since that version.
        if query.attr("ver") == Some(ver.to_string().as_str()) {
            return Ok(None);
        }
        let mut q = Element::new("query", ns::ROSTER).with_attr("ver", ver.to_string());
        for i in items.iter().filter(|i| i.visible) {
            q = q.with_child(item_element(i));
        }
        return Ok(Some(q));
    }
    // §2.3.3: exactly one item.
    let items: Vec<&Element> = query.elements().filter(|e| e.is("item", ns::ROSTER)).collect();
    let [item] = items.as_slice() else { return Err(StanzaError::BadRequest) };
    let jid = item
        .attr("jid")
        .ok_or(StanzaError::BadRequest)
        .and_then(|j| Jid::parse(j).map_err(|_| StanzaError::JidMalformed))?;
    let jid = jid.to_bare();
    if item.attr("subscription") == Some("remove") {
        return remove(ctx.shared, &owner, &jid);
    }
    let name = item.attr("name").map(str::to_owned).filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.len() > MAX_NAME) {
        return Err(StanzaError::NotAcceptable);
    }
    let mut groups: Vec<String> = Vec::new();
    for g in item.elements().filter(|e| e.is("group", ns::ROSTER)) {
        let g = g.text();
        // §2.3.3: empty or overlong groups are not acceptable; duplicates are a bad request.
        if g.is_empty() || g.len() > MAX_NAME {
            return Err(StanzaError::NotAcceptable);
        }
        if groups.contains(&g) {
            return Err(StanzaError::BadRequest);
        }
        groups.push(g);
    }
    groups.sort();
    let store = &ctx.shared.store;
    let existing = store.roster_item(user, host, &jid.to_string()).map_err(store_err)?;
    let visible_before = existing.as_ref().is_some_and(|i| i.visible);
    if !visible_before {
        let (_, all) = store.roster(user, host).map_err(store_err)?;
        if all.iter().filter(|i| i.visible).count() >= ctx.shared.config().im.max_roster_items {
            return Err(StanzaError::NotAllowed);
        }
    }
    // §2.1.5: `subscription` (other than remove) and `ask` from the client are ignored.
    let mut it = existing.unwrap_or_else(|| RosterItem { jid: jid.to_string(), ..Default::default() });
    it.name = name;
    it.groups = groups;
    it.visible = true;
    let ver = store.put_roster_item(user, host, &it);
    super::presence::forget_roster(ctx.shared, &owner);
    let ver = ver.map_err(store_err)?;
    push_item(ctx.shared, &owner, Some(&it), &it.jid, ver);
    Ok(None)
}

/// §2.5: remove an item, cancelling subscriptions both ways first (§2.5.2).
fn remove(shared: &Shared, owner: &Jid, jid: &Jid) -> IqAnswer {
    let (user, host) = (owner.node().unwrap_or(""), owner.domain());
    let Some(item) = shared.store.roster_item(user, host, &jid.to_string()).map_err(store_err)? else {
        return Err(StanzaError::ItemNotFound);
    };
    let ver = shared.store.remove_roster_item(user, host, &item.jid);
    super::presence::forget_roster(shared, owner);
    let ver = ver.map_err(store_err)?;
    push_item(shared, owner, None, &item.jid, ver);
    let me = owner.to_string();
    let cancel = item.subscription.has_from() || item.pending_in;
    let unsubscribe = item.subscription.has_to() || item.ask_out;
    for (due, ty) in [(cancel, "unsubscribed"), (unsubscribe, "unsubscribe")] {
        if due {
            let stanza = super::presence_xml(&me, &item.jid, Some(ty));
            super::subscription::deliver_inbound(shared, jid, owner, ty, stanza);
        }
    }
    if cancel {
        super::presence::send_unavailable_from_all(shared, owner, jid);
    }
    Ok(None)
}
