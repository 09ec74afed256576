//! XEP-0092 Software Version of the server.

use super::{to_server, Ctx, IqAnswer, IqRequest, Module};
use crate::stanza::StanzaError;
use crate::xml::{ns, Element};

/// jabber:iq:version.
pub struct Version;

impl Module for Version {
    fn namespaces(&self) -> &'static [&'static str] {
        &[ns::VERSION]
    }

    fn handle(&self, req: &IqRequest<'_>, _ctx: &Ctx<'_>) -> IqAnswer {
        if req.set || !to_server(req) {
            return Err(if req.set { StanzaError::BadRequest } else { StanzaError::ServiceUnavailable });
        }
        // XEP-0092 §3: name and version; the optional <os/> is left out so as
        // not to tell attackers the platform (§6).
        Ok(Some(
            Element::new("query", ns::VERSION)
                .with_child(Element::new("name", ns::VERSION).with_text("xmppd"))
                .with_child(Element::new("version", ns::VERSION).with_text(env!("CARGO_PKG_VERSION"))),
        ))
    }
}
