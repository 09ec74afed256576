//! What happens to stanzas still in a session's outbound queue when the
//! session ends (logout, dropped connection, takeover, a reader too slow,
//! shutdown): they were accepted for delivery but never written, so they are
//! routed again to their original `to`, as ejabberd does with a dead
//! session's mailbox. That full JID is gone now, so RFC 6121 §8.5.3.2 applies:
//! a chat or normal message goes to the account's other resources or to
//! offline storage (§8.5.2.2.1, XEP-0160), an iq request bounces with
//! `service-unavailable` (§8.5.3.2.2), other presence and errors are dropped.
//! Carbon copies (XEP-0280) are not routed again: the original has its own
//! copy elsewhere.

use super::Shared;
use crate::im;
use crate::jid::Jid;
use crate::router::{Delivery, Kind};
use crate::session::{OutboundRx, SessionHandle};
use crate::stanza::error_reply;
use crate::xml::{ns, StanzaHead};
use bytes::Bytes;

/// XEP-0280 §5 wrappers.
const CARBONS: &str = "urn:xmpp:carbons:2";

/// Route `unsent` (a batch whose write failed), then close `rx` to new
/// stanzas and route what it still holds, in order. `session` has already
/// left the routing table. Returns how many stanzas were handled.
pub(super) fn reroute_queued(
    shared: &Shared,
    session: &SessionHandle,
    unsent: Vec<Bytes>,
    mut rx: OutboundRx,
) -> usize {
    let mut n = unsent.len();
    for bytes in unsent {
        reroute(shared, session, bytes);
    }
    rx.close();
    while let Ok(crate::session::Outbound::Stanza(bytes)) = rx.try_recv() {
        reroute(shared, session, bytes);
        n += 1;
    }
    n
}

fn reroute(shared: &Shared, session: &SessionHandle, bytes: Bytes) {
    let Ok(head) = StanzaHead::parse(&bytes, ns::CLIENT) else { return };
    let Some(kind) = Kind::from_name(&head.name) else { return };
    let ty = head.attr("type").unwrap_or("").to_string();
    if kind == Kind::Message && is_carbon(&bytes) {
        return;
    }
    let err = match shared.router.route(kind, &ty, &session.jid, bytes.clone()) {
        Delivery::Delivered(_) | Delivery::Dropped => return,
        Delivery::Offline => match im::offline::store(shared, &session.jid.to_bare(), &bytes) {
            Ok(_) => return,
            Err(e) => e,
        },
        Delivery::Bounce(e) => e,
    };
    // RFC 6120 §8.3.1: never answer an error with an error.
    if ty == "error" {
        return;
    }
    let Some(from) = head.attr("from").and_then(|f| Jid::parse(f).ok()) else { return };
    let reply = error_reply(&head, &session.jid_str, &from.to_string(), err);
    // The sender may be gone as well: then the error is dropped (§8.3.1).
    let _ = shared.router.route(kind, "error", &from, Bytes::from(reply));
}

/// A carbon copy: `<sent/>` or `<received/>` in the carbons namespace.
fn is_carbon(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    (text.contains("<sent") || text.contains("<received")) && text.contains(CARBONS)
}
