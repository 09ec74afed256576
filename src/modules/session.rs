//! RFC 3921 §3 session establishment, a no-op kept for old clients
//! (RFC 6121 appendix E): advertised as `<optional/>`, answered with a result.

use super::{Ctx, IqAnswer, IqRequest, Module};
use crate::stanza::StanzaError;
use crate::xml::ns;

/// urn:ietf:params:xml:ns:xmpp-session.
pub struct Session;

impl Module for Session {
    fn namespaces(&self) -> &'static [&'static str] {
        &[ns::SESSION]
    }

    fn features(&self) -> &'static [&'static str] {
        &[] // a stream feature, not a disco feature
    }

    fn handle(&self, req: &IqRequest<'_>, _ctx: &Ctx<'_>) -> IqAnswer {
        // Only the user's own session, addressed to the server or to itself.
        if req.to.node().is_some() && req.to.to_bare() != req.from.to_bare() {
            return Err(StanzaError::ServiceUnavailable);
        }
        if req.set {
            Ok(None)
        } else {
            Err(StanzaError::BadRequest)
        }
    }
}
