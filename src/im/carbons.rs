//! XEP-0280 message carbons: enabling per session, and copies of sent
//! (§7) and received (§6) messages to the account's other carbons-enabled
//! resources, wrapped in XEP-0297 `<forwarded/>`.

use crate::jid::Jid;
use crate::modules::{Ctx, IqAnswer, IqRequest, Module};
use crate::server::Shared;
use crate::session::SessionHandle;
use crate::stanza::StanzaError;
use bytes::Bytes;
use std::sync::Arc;

/// The carbons namespace.
pub const NS: &str = "urn:xmpp:carbons:2";

/// XEP-0280 §6.1: chat messages, normal messages with a body, and IM
/// payloads (receipts, chat states, markers); never `<private/>` ones,
/// never groupchat.
pub fn eligible(ty: &str, stamped: &[u8]) -> bool {
    let text = String::from_utf8_lossy(stamped);
    if text.contains(NS) && text.contains("<private") {
        return false;
    }
    if text.contains("urn:xmpp:hints") && text.contains("<no-copy") {
        return false;
    }
    match ty {
        "chat" => true,
        "normal" | "" => {
            text.contains("<body")
                || text.contains("urn:xmpp:receipts")
                || text.contains("http://jabber.org/protocol/chatstates")
                || text.contains("urn:xmpp:chat-markers:0")
        }
        _ => false,
    }
}

fn wrap(kind: &str, owner: &str, to: &str, ty: &str, stamped: &[u8]) -> Bytes {
    let inner = String::from_utf8_lossy(stamped);
    let inner = match inner.strip_prefix("<message") {
        Some(rest) => format!("<message xmlns='jabber:client'{rest}"),
        None => inner.into_owned(),
    };
    let ty = if ty.is_empty() { String::new() } else { format!(" type='{}'", crate::xml::escape(ty)) };
    Bytes::from(format!(
        "<message from='{}' to='{}'{ty}><{kind} xmlns='{NS}'><forwarded xmlns='urn:xmpp:forward:0'>{inner}</forwarded></{kind}></message>",
        crate::xml::escape(owner),
        crate::xml::escape(to),
    ))
}

/// §7: a copy of a message the user sent to the user's other enabled
/// resources; `msg_ty` is the message's `type` attribute ("" when absent).
pub fn copy_sent(shared: &Shared, sender: &Arc<SessionHandle>, msg_ty: &str, stamped: &[u8]) {
    // The common case, checked without a look-up, allocating or scanning
    // the stanza: no other enabled resource (the account's count), then
    // the account's sessions.
    if !sender.others_may_have_carbons()
        || !shared.router.with_sessions(&sender.jid, |l| l.iter().any(|s| s.id != sender.id && s.carbons()))
        || !eligible(msg_ty, stamped)
    {
        return;
    }
    let bare = sender.jid.to_bare();
    let others: Vec<_> =
        shared.router.sessions_of(&bare).into_iter().filter(|s| s.id != sender.id && s.carbons()).collect();
    if others.is_empty() {
        return;
    }
    for s in others {
        let _ = s.send(wrap("sent", &bare.to_string(), &s.jid.to_string(), msg_ty, stamped));
    }
}

/// §6: a copy to the recipient's enabled resources that did not get it;
/// `msg_ty` as for [`copy_sent`]. Called when the routing look-up found
/// such a resource (`Router::route_noting_carbons`), so it is not looked
/// for first again.
pub fn copy_received(shared: &Shared, to: &Jid, delivered: &[u64], msg_ty: &str, stamped: &[u8]) {
    if !eligible(msg_ty, stamped) {
        return;
    }
    let bare = to.to_bare();
    let others: Vec<_> =
        shared.router.sessions_of(&bare).into_iter().filter(|s| s.carbons() && !delivered.contains(&s.id)).collect();
    if others.is_empty() {
        return;
    }
    for s in others {
        let _ = s.send(wrap("received", &bare.to_string(), &s.jid.to_string(), msg_ty, stamped));
    }
}

/// The `<enable/>` / `<disable/>` iq (§4, §5).
pub struct Carbons;

impl Module for Carbons {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn features(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn handle(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> IqAnswer {
        // §4: a set to the user's own bare JID or the server.
        if !req.set || (req.to.node().is_some() && req.to.to_bare() != req.from.to_bare()) {
            return Err(StanzaError::BadRequest);
        }
        match req.payload.name.as_str() {
            "enable" => ctx.session.set_carbons(true),
            "disable" => ctx.session.set_carbons(false),
            _ => return Err(StanzaError::BadRequest),
        }
        Ok(None)
    }
}
