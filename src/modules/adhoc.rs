//! XEP-0050 Ad-Hoc Commands: discovery of the commands (§2), execution with
//! sessions (§3.3–§3.5: execute, complete, cancel), and the errors of §4.6.
//! The commands themselves (XEP-0133 service administration) are in
//! [`super::admin`]; each decides who may see and run it.
//!
//! Sessions: a command that answers with a form keeps a session, bound to
//! the requesting full JID and the node (§4.3: a sessionid is only valid
//! for the entity that started it), for [`SESSION_TTL`]; at most
//! [`MAX_SESSIONS`] in all and [`MAX_SESSIONS_PER_JID`] per requester.

use super::admin;
use super::{to_server, Ctx, Disco, IqAnswer, IqRequest, Module, NodeAnswer};
use crate::jid::Jid;
use crate::stanza::StanzaError;
use crate::xml::{ns, Element};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The `http://jabber.org/protocol/commands` namespace (and disco node).
pub const NS: &str = "http://jabber.org/protocol/commands";
/// How long a session waits for the next stage.
pub const SESSION_TTL: Duration = Duration::from_secs(600);
/// Open sessions in all.
pub const MAX_SESSIONS: usize = 1000;
/// Open sessions per requesting full JID.
pub const MAX_SESSIONS_PER_JID: usize = 10;

/// What a stage produced.
pub enum Stage {
    /// More input needed: this form (`status='executing'`).
    Form(Element),
    /// Finished (`status='completed'`), with an optional result form and note.
    Done {
        /// A `type='result'` form.
        form: Option<Element>,
        /// A `<note type='info'/>` text.
        note: Option<String>,
    },
}

/// One command.
pub trait Command: Send + Sync {
    /// Its node.
    fn node(&self) -> &'static str;
    /// Its name in disco#items.
    fn name(&self) -> &'static str;
    /// Whether the requester (`req.from`) may see and run it on `req.to`.
    fn allowed(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> bool;
    /// The first stage (`action='execute'` without a session).
    fn start(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> Result<Stage, StanzaError>;
    /// A submitted form (`execute` or `complete` within the session).
    fn submit(&self, form: &Element, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> Result<Stage, StanzaError>;
}

/// A session waiting for its next stage.
struct Pending {
    /// The requester that started it.
    owner: Jid,
    /// The command's node.
    node: &'static str,
    /// When it started.
    started: Instant,
}

/// The ad-hoc commands module.
pub struct AdHoc {
    /// The commands, in disco order.
    commands: Vec<Box<dyn Command>>,
    /// Open sessions by sessionid.
    sessions: Mutex<HashMap<String, Pending>>,
}

impl Default for AdHoc {
    fn default() -> Self {
        AdHoc::new()
    }
}

impl AdHoc {
    /// With the XEP-0133 commands.
    pub fn new() -> AdHoc {
        AdHoc { commands: admin::commands(), sessions: Mutex::new(HashMap::new()) }
    }

    fn command(&self, node: &str) -> Option<&dyn Command> {
        self.commands.iter().find(|c| c.node() == node).map(|c| c.as_ref())
    }

    /// Open a session (`id`: keep that sessionid for a further stage).
    fn open_session(&self, owner: &Jid, node: &'static str, id: Option<&str>) -> Result<String, StanzaError> {
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        s.retain(|_, p| p.started.elapsed() < SESSION_TTL);
        if s.len() >= MAX_SESSIONS || s.values().filter(|p| &p.owner == owner).count() >= MAX_SESSIONS_PER_JID {
            return Err(StanzaError::ResourceConstraint);
        }
        let id = id.map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_string);
        s.insert(id.clone(), Pending { owner: owner.clone(), node, started: Instant::now() });
        Ok(id)
    }

    /// Take the session `id` of `owner` for `node` out of the table.
    fn take_session(&self, id: &str, owner: &Jid, node: &str) -> Result<(), StanzaError> {
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match s.get(id) {
            Some(p) if &p.owner == owner && p.node == node => {
                let expired = p.started.elapsed() >= SESSION_TTL;
                s.remove(id);
                if expired {
                    return Err(StanzaError::AdHoc("session-expired"));
                }
                Ok(())
            }
            _ => Err(StanzaError::AdHoc("bad-sessionid")),
        }
    }

    /// disco#items for the commands node (§2.2): what `from` may run.
    pub fn items(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> Vec<Element> {
        self.commands
            .iter()
            .filter(|c| c.allowed(req, ctx))
            .map(|c| {
                Element::new("item", ns::DISCO_ITEMS)
                    .with_attr("jid", req.to.to_string())
                    .with_attr("node", c.node())
                    .with_attr("name", c.name())
            })
            .collect()
    }

    /// disco#info for a command node (§2.3).
    pub fn info(&self, node: &str, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> Option<Result<Vec<Element>, StanzaError>> {
        let c = self.command(node)?;
        if !c.allowed(req, ctx) {
            return Some(Err(StanzaError::Forbidden));
        }
        let f = |v: &str| Element::new("feature", ns::DISCO_INFO).with_attr("var", v);
        Some(Ok(vec![
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "automation")
                .with_attr("type", "command-node")
                .with_attr("name", c.name()),
            f(NS),
            f(super::dataform::NS),
        ]))
    }
}

fn reply(node: &str, sessionid: &str, status: &str) -> Element {
    Element::new("command", NS).with_attr("node", node).with_attr("sessionid", sessionid).with_attr("status", status)
}

fn answer(node: &str, sessionid: &str, stage: Stage) -> Element {
    match stage {
        Stage::Form(x) => reply(node, sessionid, "executing")
            .with_child(
                Element::new("actions", NS).with_attr("execute", "complete").with_child(Element::new("complete", NS)),
            )
            .with_child(x),
        Stage::Done { form, note } => {
            let mut c = reply(node, sessionid, "completed");
            if let Some(n) = note {
                c = c.with_child(Element::new("note", NS).with_attr("type", "info").with_text(n));
            }
            if let Some(x) = form {
                c = c.with_child(x);
            }
            c
        }
    }
}

impl Module for AdHoc {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn disco_node(&self, kind: Disco, node: &str, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> NodeAnswer {
        if !to_server(req) {
            return None;
        }
        match kind {
            Disco::Items => (node == NS).then(|| Ok(self.items(req, ctx))),
            Disco::Info => self.info(node, req, ctx),
        }
    }

    fn handle(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> IqAnswer {
        // §3.1: commands are run with iq set on the entity offering them.
        if !req.set || req.payload.name != "command" {
            return Err(StanzaError::BadRequest);
        }
        if !to_server(req) {
            return Err(StanzaError::ServiceUnavailable);
        }
        let node = req.payload.attr("node").ok_or(StanzaError::BadRequest)?;
        let cmd = self.command(node).ok_or(StanzaError::ItemNotFound)?;
        // XEP-0133 §5: only service administrators.
        if !cmd.allowed(req, ctx) {
            return Err(StanzaError::Forbidden);
        }
        let action = req.payload.attr("action").unwrap_or("execute");
        let Some(sid) = req.payload.attr("sessionid") else {
            if action != "execute" {
                return Err(StanzaError::AdHoc("bad-sessionid"));
            }
            return Ok(Some(match cmd.start(req, ctx)? {
                form @ Stage::Form(_) => answer(cmd.node(), &self.open_session(req.from, cmd.node(), None)?, form),
                done => answer(cmd.node(), &format!("{:016x}", rand::random::<u64>()), done),
            }));
        };
        match action {
            "cancel" => {
                // §3.5: the session ends.
                self.take_session(sid, req.from, node)?;
                Ok(Some(reply(node, sid, "canceled")))
            }
            "execute" | "complete" => {
                let form = req
                    .payload
                    .elements()
                    .find(|e| e.is("x", super::dataform::NS))
                    .ok_or(StanzaError::AdHoc("bad-payload"))?;
                self.take_session(sid, req.from, node)?;
                match cmd.submit(form, req, ctx)? {
                    // Another stage: the session goes on.
                    f @ Stage::Form(_) => {
                        Ok(Some(answer(node, &self.open_session(req.from, cmd.node(), Some(sid))?, f)))
                    }
                    done => Ok(Some(answer(node, sid, done))),
                }
            }
            // Single-stage commands: no previous or next stage (§4.6).
            "next" | "prev" => Err(StanzaError::AdHoc("bad-action")),
            _ => Err(StanzaError::AdHoc("malformed-action")),
        }
    }
}
