//! RFC 6121 §2 roster iq; the logic is in [`crate::im::roster`].

use super::{Ctx, IqAnswer, IqRequest, Module};
use crate::stanza::StanzaError;
use crate::xml::ns;

/// jabber:iq:roster.
pub struct Roster;

impl Module for Roster {
    fn namespaces(&self) -> &'static [&'static str] {
        &[ns::ROSTER]
    }

    fn features(&self) -> &'static [&'static str] {
        // The roster is a stream-level service (RFC 6121 §2), not a disco feature.
        &[]
    }

    fn handle(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> IqAnswer {
        // RFC 6121 §2.1.5: only the user's own roster, addressed to the bare
        // JID or with no `to` (which the caller maps to the bare JID).
        if req.to.node().is_some() && req.to.to_bare() != req.from.to_bare() {
            return Err(StanzaError::Forbidden);
        }
        crate::im::roster::handle(ctx, req.set, req.payload)
    }
}
