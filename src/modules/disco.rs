//! XEP-0030 service discovery: disco#info and disco#items.

use super::{to_server, IqAnswer, IqRequest, Module, Modules};
use crate::stanza::StanzaError;
use crate::xml::{ns, Element};

/// disco#info (XEP-0030 §3).
pub struct DiscoInfo;

impl Module for DiscoInfo {
    fn namespaces(&self) -> &'static [&'static str] {
        &[ns::DISCO_INFO]
    }

    fn handle(&self, req: &IqRequest<'_>, ctx: &Modules) -> IqAnswer {
        if req.set {
            return Err(StanzaError::BadRequest);
        }
        // XEP-0030 §3.1: nodes we do not define are item-not-found.
        if req.payload.attr("node").is_some() {
            return Err(StanzaError::ItemNotFound);
        }
        let mut q = Element::new("query", ns::DISCO_INFO);
        if to_server(req) {
            q = q.with_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "server")
                    .with_attr("type", "im")
                    .with_attr("name", "xmppd"),
            );
            for f in ctx.features() {
                q = q.with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
            }
        } else {
            // The account itself (XEP-0030 §3.1, identity account/registered),
            // answered to the account's own resources.
            if req.from.to_bare() != req.to.to_bare() {
                return Err(StanzaError::ServiceUnavailable);
            }
            q = q
                .with_child(
                    Element::new("identity", ns::DISCO_INFO)
                        .with_attr("category", "account")
                        .with_attr("type", "registered"),
                )
                .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", ns::DISCO_INFO));
        }
        Ok(Some(q))
    }
}

/// disco#items (XEP-0030 §4): no items (no components yet).
pub struct DiscoItems;

impl Module for DiscoItems {
    fn namespaces(&self) -> &'static [&'static str] {
        &[ns::DISCO_ITEMS]
    }

    fn handle(&self, req: &IqRequest<'_>, _ctx: &Modules) -> IqAnswer {
        if req.set {
            return Err(StanzaError::BadRequest);
        }
        if req.payload.attr("node").is_some() {
            return Err(StanzaError::ItemNotFound);
        }
        if !to_server(req) && req.from.to_bare() != req.to.to_bare() {
            return Err(StanzaError::ServiceUnavailable);
        }
        Ok(Some(Element::new("query", ns::DISCO_ITEMS)))
    }
}
