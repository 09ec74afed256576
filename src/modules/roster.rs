//! RFC 6121 §2 roster. Rosters are stored by the IM issue; until then the
//! roster is empty: a get returns it (§2.1.3), a set is not yet possible.

use super::{IqAnswer, IqRequest, Module, Modules};
use crate::stanza::StanzaError;
use crate::xml::{ns, Element};

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

    fn handle(&self, req: &IqRequest<'_>, _ctx: &Modules) -> IqAnswer {
        // RFC 6121 §2.1.5: only the user's own roster, addressed to the bare
        // JID or with no `to` (which the caller maps to the bare JID).
        if req.to.node().is_some() && req.to.to_bare() != req.from.to_bare() {
            return Err(StanzaError::Forbidden);
        }
        if req.set {
            return Err(StanzaError::FeatureNotImplemented);
        }
        Ok(Some(Element::new("query", ns::ROSTER)))
    }
}
