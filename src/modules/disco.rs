//! XEP-0030 service discovery: disco#info and disco#items.

use super::{to_server, Ctx, Disco, IqAnswer, IqRequest, Module, Modules};
use crate::stanza::StanzaError;
use crate::xml::{ns, Element};

/// disco#info (XEP-0030 §3).
pub struct DiscoInfo;

impl Module for DiscoInfo {
    fn namespaces(&self) -> &'static [&'static str] {
        &[ns::DISCO_INFO]
    }

    fn handle(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> IqAnswer {
        if req.set {
            return Err(StanzaError::BadRequest);
        }
        // XEP-0030 §3.1: nodes we do not define are item-not-found; the
        // XEP-0115 §6.2 caps node `NODE#ver` is the server's own info.
        let mut q = Element::new("query", ns::DISCO_INFO);
        if let Some(node) = req.payload.attr("node") {
            // Nodes defined by modules (XEP-0050 §2.3 command nodes).
            if let Some(answer) = ctx.shared.modules.disco_node(Disco::Info, node, req, ctx) {
                q.set_attr("node", node);
                q.children.extend(answer?.into_iter().map(crate::xml::Node::Element));
                return Ok(Some(q));
            }
            if !to_server(req) || node != format!("{CAPS_NODE}#{}", caps_ver(&ctx.shared.modules)) {
                return Err(StanzaError::ItemNotFound);
            }
            q.set_attr("node", node);
        }
        if to_server(req) {
            q = q.with_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "server")
                    .with_attr("type", "im")
                    .with_attr("name", "xmppd"),
            );
            for f in ctx.shared.modules.features() {
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

/// disco#items (XEP-0030 §4): no items at the root (no components yet);
/// nodes come from the modules (XEP-0050 §2.2 the commands node).
pub struct DiscoItems;

impl Module for DiscoItems {
    fn namespaces(&self) -> &'static [&'static str] {
        &[ns::DISCO_ITEMS]
    }

    fn handle(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> IqAnswer {
        if req.set {
            return Err(StanzaError::BadRequest);
        }
        if let Some(node) = req.payload.attr("node") {
            let items =
                ctx.shared.modules.disco_node(Disco::Items, node, req, ctx).ok_or(StanzaError::ItemNotFound)??;
            let mut q = Element::new("query", ns::DISCO_ITEMS).with_attr("node", node);
            q.children.extend(items.into_iter().map(crate::xml::Node::Element));
            return Ok(Some(q));
        }
        if !to_server(req) && req.from.to_bare() != req.to.to_bare() {
            return Err(StanzaError::ServiceUnavailable);
        }
        Ok(Some(Element::new("query", ns::DISCO_ITEMS)))
    }
}

/// XEP-0115 §5.1 verification string of the server's disco#info (one
/// identity, server/im named xmppd, then the sorted features).
pub fn caps_ver(modules: &Modules) -> String {
    use base64::Engine;
    use sha1::Digest;
    let mut s = String::from("server/im//xmppd<");
    for f in modules.features() {
        s.push_str(f);
        s.push('<');
    }
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()))
}

/// The XEP-0115 node of this software.
pub const CAPS_NODE: &str = "https://github.com/xmppd/xmppd";

/// XEP-0115 §6.3 stream feature advertising the server's capabilities.
pub fn caps_element(modules: &Modules) -> String {
    format!("<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='{CAPS_NODE}' ver='{}'/>", caps_ver(modules))
}
