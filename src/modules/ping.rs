//! XEP-0199 XMPP Ping: the server answers pings addressed to it (§4.2).

use super::{Ctx, IqAnswer, IqRequest, Module};
use crate::stanza::StanzaError;
use crate::xml::ns;

/// Client-to-server ping.
pub struct Ping;

impl Module for Ping {
    fn namespaces(&self) -> &'static [&'static str] {
        &[ns::PING]
    }

    fn handle(&self, req: &IqRequest<'_>, _ctx: &Ctx<'_>) -> IqAnswer {
        // XEP-0199 §4.2: a ping is an iq get; the result is empty. A ping to
        // the user's bare JID is answered by the server on its behalf (§4.3).
        if req.set {
            return Err(StanzaError::BadRequest);
        }
        Ok(None)
    }
}
