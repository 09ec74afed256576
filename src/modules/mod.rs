//! Handlers for iq requests the server answers itself (RFC 6120 §10.3.3 for
//! the server's domain, RFC 6121 §8.5.1 / §8.5.2 for an account's bare JID).
//! One XEP one file, registered in [`Modules::new`]; disco#info is generated
//! from the registered list, so it lists exactly what is implemented.

pub mod adhoc;
pub mod admin;
pub mod blocking;
pub mod dataform;
pub mod disco;
pub mod last;
mod ping;
pub mod private;
pub mod register;
mod roster;
mod session;
pub mod time;
pub mod vcard;
mod version;

use crate::jid::Jid;
use crate::server::Shared;
use crate::session::SessionHandle;
use crate::stanza::StanzaError;
use crate::xml::Element;
use std::sync::Arc;

/// Who asked and whom it was addressed to.
pub struct IqRequest<'a> {
    /// The requesting full JID (stamped by the server).
    pub from: &'a Jid,
    /// The addressee: a served domain or the requester's own bare JID.
    pub to: &'a Jid,
    /// `get` or `set`.
    pub set: bool,
    /// The single payload element (RFC 6120 §8.2.3).
    pub payload: &'a Element,
}

/// What a module answers.
pub type IqAnswer = Result<Option<Element>, StanzaError>;

/// What a module may use: the server's shared state (config, store,
/// router) and the requesting session.
pub struct Ctx<'a> {
    /// Config, store, router, modules.
    pub shared: &'a Shared,
    /// The requesting session.
    pub session: &'a Arc<SessionHandle>,
}

/// Which disco request a node answer is for (XEP-0030).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disco {
    /// disco#info (§3).
    Info,
    /// disco#items (§4).
    Items,
}

/// A module's answer for a disco node: `None` if it does not define the
/// node, else the children of the query (or a stanza error).
pub type NodeAnswer = Option<Result<Vec<Element>, StanzaError>>;

/// A server module.
pub trait Module: Send + Sync {
    /// Namespaces of the payloads it handles.
    fn namespaces(&self) -> &'static [&'static str];
    /// Features to list in the server's disco#info (XEP-0030 §3.1).
    fn features(&self) -> &'static [&'static str] {
        self.namespaces()
    }
    /// Answer a request; `Err` becomes a stanza error.
    fn handle(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> IqAnswer;
    /// The children of a disco answer for `node` (disco#info identities and
    /// features, XEP-0030 §3.2; disco#items items, §4.1), if this module
    /// defines that node.
    fn disco_node(&self, _kind: Disco, _node: &str, _req: &IqRequest<'_>, _ctx: &Ctx<'_>) -> NodeAnswer {
        None
    }
}

/// The registered modules.
pub struct Modules {
    list: Vec<Box<dyn Module>>,
}

impl Default for Modules {
    fn default() -> Self {
        Modules::new()
    }
}

impl Modules {
    /// Every module this server implements.
    pub fn new() -> Modules {
        Modules {
            list: vec![
                Box::new(disco::DiscoInfo),
                Box::new(disco::DiscoItems),
                Box::new(ping::Ping),
                Box::new(version::Version),
                Box::new(roster::Roster),
                Box::new(session::Session),
                Box::new(vcard::VCard),
                Box::new(private::Private),
                Box::new(last::Last::new()),
                Box::new(time::Time),
                Box::new(register::Register),
                Box::new(blocking::Blocking),
                Box::new(adhoc::AdHoc::new()),
                Box::new(crate::im::carbons::Carbons),
                Box::new(crate::im::offline::OfflineFeature),
            ],
        }
    }

    /// Every feature of every module, sorted and deduplicated.
    pub fn features(&self) -> Vec<&'static str> {
        let mut f: Vec<_> = self.list.iter().flat_map(|m| m.features().iter().copied()).collect();
        f.sort_unstable();
        f.dedup();
        f
    }

    /// The first module's answer for a disco node (see [`Module::disco_node`]).
    pub fn disco_node(&self, kind: Disco, node: &str, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> NodeAnswer {
        self.list.iter().find_map(|m| m.disco_node(kind, node, req, ctx))
    }

    /// Answer an iq get/set addressed to the server or to the requester's
    /// bare JID; `service-unavailable` for what no module handles
    /// (RFC 6120 §8.3.3.19).
    pub fn handle(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> IqAnswer {
        let ns = req.payload.ns.as_str();
        match self.list.iter().find(|m| m.namespaces().contains(&ns)) {
            Some(m) => m.handle(req, ctx),
            None => Err(StanzaError::ServiceUnavailable),
        }
    }
}

/// Whether the request is addressed to the server's domain (not an account).
pub fn to_server(req: &IqRequest<'_>) -> bool {
    req.to.node().is_none()
}
