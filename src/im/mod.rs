//! Instant messaging (RFC 6121): rosters, subscriptions, presence and
//! offline messages. Functions here are synchronous: they read and write the
//! store and queue stanzas to sessions through the router.

pub mod carbons;
pub mod offline;
pub mod presence;
pub mod roster;
pub mod subscription;

use crate::jid::Jid;
use crate::server::Shared;
use bytes::Bytes;

/// Deliver a presence stanza to `to`: a local account's available resources
/// (RFC 6121 §8.5.2.1.2), or the remote seam.
pub(crate) fn send_presence(shared: &Shared, to: &Jid, bytes: Bytes) {
    let ty = "";
    let _ = shared.router.route(crate::router::Kind::Presence, ty, to, bytes);
}

/// `<presence from=.. to=.. type=../>`.
pub(crate) fn presence_xml(from: &str, to: &str, ty: Option<&str>) -> Bytes {
    let mut e =
        crate::xml::Element::new("presence", crate::xml::ns::CLIENT).with_attr("from", from).with_attr("to", to);
    if let Some(t) = ty {
        e.set_attr("type", t);
    }
    Bytes::from(e.to_client_string())
}
