//! RFC 6121 §3 presence subscriptions: the outbound and inbound state
//! machine of Appendix A (none/to/from/both, pending-in, pending-out,
//! pre-approval §3.4), with roster pushes on every state change.

use super::roster::push_item;
use super::{presence, presence_xml, send_presence};
use crate::jid::Jid;
use crate::server::Shared;
use crate::storage::{RosterItem, Subscription};
use bytes::Bytes;

fn add_to(s: Subscription) -> Subscription {
    match s {
        Subscription::None | Subscription::To => Subscription::To,
        Subscription::From | Subscription::Both => Subscription::Both,
    }
}

fn add_from(s: Subscription) -> Subscription {
    match s {
        Subscription::None | Subscription::From => Subscription::From,
        Subscription::To | Subscription::Both => Subscription::Both,
    }
}

fn remove_to(s: Subscription) -> Subscription {
    match s {
        Subscription::None | Subscription::To => Subscription::None,
        Subscription::From | Subscription::Both => Subscription::From,
    }
}

fn remove_from(s: Subscription) -> Subscription {
    match s {
        Subscription::None | Subscription::From => Subscription::None,
        Subscription::To | Subscription::Both => Subscription::To,
    }
}

fn split(j: &Jid) -> (&str, &str) {
    (j.node().unwrap_or(""), j.domain())
}

/// Store `item` for `owner` and push it; an item that only existed for a
/// pending request and no longer carries any state is deleted.
fn save(shared: &Shared, owner: &Jid, item: &RosterItem) {
    let (user, host) = split(owner);
    let empty =
        !item.visible && item.subscription == Subscription::None && !item.pending_in && !item.ask_out && !item.approved;
    let r = if empty {
        shared.store.remove_roster_item(user, host, &item.jid)
    } else {
        shared.store.put_roster_item(user, host, item)
    };
    super::presence::forget_roster(shared, owner);
    match r {
        Ok(ver) if item.visible => push_item(shared, owner, Some(item), &item.jid, ver),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, owner = %owner, "storing roster item"),
    }
}

fn load(shared: &Shared, owner: &Jid, contact: &Jid) -> Option<RosterItem> {
    let (user, host) = split(owner);
    shared.store.roster_item(user, host, &contact.to_string()).ok().flatten()
}

/// A subscription stanza sent by `user` (bare) to `contact` (bare), already
/// stamped with the user's bare JID (§3.1.2): update the user's roster as
/// Appendix A.2 says, then hand it to the contact's side.
pub fn outbound(shared: &Shared, user: &Jid, contact: &Jid, ty: &str, stamped: Bytes) {
    let existing = load(shared, user, contact);
    let mut item = existing.clone().unwrap_or_else(|| RosterItem { jid: contact.to_string(), ..Default::default() });
    match ty {
        // §3.1.2: pending-out, unless already subscribed; the item becomes visible.
        "subscribe" => {
            if !item.subscription.has_to() {
                item.ask_out = true;
            }
            item.visible = true;
            if existing.as_ref() != Some(&item) {
                save(shared, user, &item);
            }
            deliver_inbound(shared, contact, user, ty, stamped);
        }
        "subscribed" => {
            if item.pending_in {
                // §3.1.5: approval of a pending request.
                item.subscription = add_from(item.subscription);
                item.pending_in = false;
                item.pending_in_stanza = None;
                item.approved = false;
                item.visible = true;
                save(shared, user, &item);
                deliver_inbound(shared, contact, user, ty, stamped);
                presence::send_current_to(shared, user, contact);
            } else if !item.subscription.has_from() && !item.approved {
                // §3.4: pre-approval, not routed.
                item.approved = true;
                item.visible = true;
                save(shared, user, &item);
            }
        }
        // §3.3.2: the user unsubscribes from the contact's presence.
        "unsubscribe" => {
            if item.subscription.has_to() || item.ask_out {
                item.subscription = remove_to(item.subscription);
                item.ask_out = false;
                save(shared, user, &item);
            }
            deliver_inbound(shared, contact, user, ty, stamped);
        }
        // §3.2.2: the user cancels (or denies) the contact's subscription.
        "unsubscribed" => {
            let had = item.subscription.has_from();
            if had || item.pending_in || item.approved {
                item.subscription = remove_from(item.subscription);
                item.pending_in = false;
                item.pending_in_stanza = None;
                item.approved = false;
                save(shared, user, &item);
            }
            deliver_inbound(shared, contact, user, ty, stamped);
            if had {
                presence::send_unavailable_from_all(shared, user, contact);
            }
        }
        _ => {}
    }
}

/// A subscription stanza from `contact` arriving for `user` (both bare):
/// Appendix A.3 inbound processing, delivery to the user's available
/// resources, and the automatic replies of §3.1.3.
pub fn deliver_inbound(shared: &Shared, user: &Jid, contact: &Jid, ty: &str, stanza: Bytes) {
    if !shared.router.is_local(user.domain()) {
        let _ = shared.router.route(crate::router::Kind::Presence, ty, user, stanza);
        return;
    }
    let (u, h) = split(user);
    if !matches!(shared.store.get_credentials(u, h), Ok(Some(_))) {
        // §3.1.3: no such user: answer a request with `unsubscribed`.
        if ty == "subscribe" {
            let reply = presence_xml(&user.to_string(), &contact.to_string(), Some("unsubscribed"));
            deliver_inbound(shared, contact, user, "unsubscribed", reply);
        }
        return;
    }
    let existing = load(shared, user, contact);
    let mut item = existing.clone().unwrap_or_else(|| RosterItem { jid: contact.to_string(), ..Default::default() });
    match ty {
        "subscribe" => {
            if item.subscription.has_from() {
                // §3.1.3: already subscribed: reply `subscribed` at once.
                let reply = presence_xml(&user.to_string(), &contact.to_string(), Some("subscribed"));
                deliver_inbound(shared, contact, user, "subscribed", reply);
            } else if item.approved {
                // §3.4: pre-approved.
                item.subscription = add_from(item.subscription);
                item.approved = false;
                save(shared, user, &item);
                let reply = presence_xml(&user.to_string(), &contact.to_string(), Some("subscribed"));
                deliver_inbound(shared, contact, user, "subscribed", reply);
                presence::send_current_to(shared, user, contact);
            } else {
                // §3.1.3: pending-in, kept for redelivery at the next login.
                item.pending_in = true;
                item.pending_in_stanza = Some(String::from_utf8_lossy(&stanza).into_owned());
                if existing.as_ref() != Some(&item) {
                    save(shared, user, &item);
                }
                send_presence(shared, user, stanza);
            }
        }
        // §3.1.6: only meaningful when pending-out.
        "subscribed" if item.ask_out => {
            item.subscription = add_to(item.subscription);
            item.ask_out = false;
            save(shared, user, &item);
            send_presence(shared, user, stanza);
        }
        // §3.3.3: the contact no longer wants the user's presence.
        "unsubscribe" if item.subscription.has_from() || item.pending_in => {
            let had = item.subscription.has_from();
            item.subscription = remove_from(item.subscription);
            item.pending_in = false;
            item.pending_in_stanza = None;
            save(shared, user, &item);
            send_presence(shared, user, stanza);
            if had {
                presence::send_unavailable_from_all(shared, user, contact);
            }
        }
        // §3.2.3: the user's subscription to the contact is cancelled.
        "unsubscribed" if item.subscription.has_to() || item.ask_out => {
            item.subscription = remove_to(item.subscription);
            item.ask_out = false;
            save(shared, user, &item);
            send_presence(shared, user, stanza);
        }
        _ => {}
    }
}
