//! Stanzas from a bound session (RFC 6120 §8, RFC 6121 §8): stamp `from`,
//! answer what is addressed to the server, route the rest.

use super::{Conn, Exit};
use crate::jid::Jid;
use crate::modules::IqRequest;
use crate::router::{Delivery, Kind};
use crate::stanza::{error_reply, iq_result, StanzaError, StreamError};
use crate::xml::{ns, Element, StanzaHead};
use bytes::Bytes;

impl Conn {
    /// One stanza from the bound client.
    pub(super) async fn on_bound_stanza(&mut self, bytes: Vec<u8>) -> Result<(), Exit> {
        let head = StanzaHead::parse(&bytes, ns::CLIENT)?;
        let kind = match (head.ns.as_str(), Kind::from_name(&head.name)) {
            (ns::CLIENT, Some(k)) => k,
            // RFC 6120 §4.9.3.21: a first-level element we do not support.
            _ => {
                return Err(Exit::Error(StreamError::UnsupportedStanzaType, Some(format!("unexpected <{}/>", head.name))))
            }
        };
        let session = self.session.clone().ok_or(Exit::Io)?;
        let me = &session.jid;
        let ty = head.attr("type").unwrap_or("").to_string();
        // RFC 6120 §8.2.3: an iq has a type of get, set, result or error.
        if kind == Kind::Iq && !matches!(ty.as_str(), "get" | "set" | "result" | "error") {
            return self.bounce(&head, me, None, StanzaError::BadRequest).await;
        }
        // RFC 6120 §8.1.1.1 / §8.3.3.8: a `to` that is not a JID.
        let to = match head.attr("to").map(Jid::parse) {
            None => None,
            Some(Ok(j)) => Some(j),
            Some(Err(_)) => return self.bounce(&head, me, None, StanzaError::JidMalformed).await,
        };
        match (kind, &to) {
            // RFC 6120 §10.3.3 / RFC 6121 §8.5.1: an iq with no `to`, to the
            // user's bare JID, or to the server is answered by the server.
            (Kind::Iq, None) => self.server_iq(&bytes, &head, &me.to_bare(), None).await,
            (Kind::Iq, Some(t)) if t.resource().is_none() && (t.node().is_none() || *t == me.to_bare()) => {
                if self.shared.router.is_local(t.domain()) || t.node().is_some() {
                    self.server_iq(&bytes, &head, t, Some(t)).await
                } else {
                    self.route(kind, &ty, t, &bytes, &head).await
                }
            }
            // RFC 6121 §4.2 / §4.5: presence with no `to` is broadcast presence.
            (Kind::Presence, None) => self.broadcast_presence(&bytes, &head, &ty).await,
            // RFC 6120 §10.3.1: a message with no `to` is for the sender's bare JID.
            (Kind::Message, None) => self.route(kind, &ty, &me.to_bare(), &bytes, &head).await,
            // Messages and presence for the server itself are not processed.
            (Kind::Message | Kind::Presence, Some(t)) if t.node().is_none() && self.shared.router.is_local(t.domain()) => {
                Ok(())
            }
            (_, Some(t)) => {
                let t = t.clone();
                self.route(kind, &ty, &t, &bytes, &head).await
            }
        }
    }

    /// Route to another entity, bouncing what the router cannot deliver.
    async fn route(&mut self, kind: Kind, ty: &str, to: &Jid, bytes: &[u8], head: &StanzaHead) -> Result<(), Exit> {
        let me = self.session.as_ref().map(|s| s.jid.to_string()).unwrap_or_default();
        let stamped = Bytes::from(head.rewrite(bytes, &me, None));
        match self.shared.router.route(kind, ty, to, stamped) {
            Delivery::Delivered(_) | Delivery::Dropped => Ok(()),
            // RFC 6120 §8.3.1: never answer an error with an error.
            Delivery::Bounce(_) if ty == "error" => Ok(()),
            Delivery::Bounce(err) => {
                let reply = error_reply(head, &to.to_string(), &me, err);
                self.write(&reply).await
            }
        }
    }

    /// Answer an iq addressed to the server or to the user's bare JID.
    async fn server_iq(&mut self, bytes: &[u8], head: &StanzaHead, to: &Jid, to_attr: Option<&Jid>) -> Result<(), Exit> {
        let ty = head.attr("type").unwrap_or("");
        if !matches!(ty, "get" | "set") {
            return Ok(()); // results and errors addressed to the server
        }
        let me = self.session.as_ref().map(|s| s.jid.clone()).ok_or(Exit::Io)?;
        let el = Element::parse(bytes, ns::CLIENT)?;
        let children: Vec<&Element> = el.elements().collect();
        // RFC 6120 §8.2.3: a get or set has exactly one payload.
        let answer = match children.as_slice() {
            [payload] => {
                self.shared.modules.handle(&IqRequest { from: &me, to, set: ty == "set", payload })
            }
            _ => Err(StanzaError::BadRequest),
        };
        let from = to_attr.map(|t| t.to_string());
        match answer {
            Ok(payload) => {
                let reply = iq_result(head.attr("id").unwrap_or(""), from.as_deref(), &me.to_string(), payload);
                self.write(reply.as_bytes()).await
            }
            Err(e) => self.bounce(head, &me, from.as_deref(), e).await,
        }
    }

    /// Send an error reply for `head` to this client.
    async fn bounce(&mut self, head: &StanzaHead, me: &Jid, from: Option<&str>, err: StanzaError) -> Result<(), Exit> {
        if head.attr("type") == Some("error") {
            return Ok(());
        }
        let from = from.map(str::to_owned).or_else(|| head.attr("to").map(str::to_owned)).unwrap_or_default();
        let reply = error_reply(head, &from, &me.to_string(), err);
        self.write(&reply).await
    }

    /// RFC 6121 §4.2 (initial), §4.4 (update), §4.5 (unavailable): record
    /// availability and priority, and send the presence to the user's other
    /// available resources. Subscribers and probes come with rosters.
    async fn broadcast_presence(&mut self, bytes: &[u8], head: &StanzaHead, ty: &str) -> Result<(), Exit> {
        let Some(session) = self.session.clone() else { return Ok(()) };
        let available = match ty {
            "" => true,
            "unavailable" => false,
            _ => return Ok(()), // probe/subscription types need a `to`
        };
        let priority = if available {
            let el = Element::parse(bytes, ns::CLIENT)?;
            // RFC 6121 §4.7.2.3: an integer in -128..=127; otherwise 0.
            el.child("priority", ns::CLIENT).and_then(|p| p.text().trim().parse::<i8>().ok()).unwrap_or(0)
        } else {
            0
        };
        session.set_presence(available, priority);
        let me = session.jid.to_string();
        for other in self.shared.router.sessions_of(&session.jid) {
            if other.id != session.id && other.is_available() {
                let _ = other.send(Bytes::from(head.rewrite(bytes, &me, Some(&other.jid.to_string()))));
            }
        }
        Ok(())
    }

    /// Unregister the session; if it was available, its other resources get
    /// unavailable presence (RFC 6121 §4.5.2, also for a dropped connection).
    pub(super) fn unbind(&mut self) {
        let Some(session) = self.session.take() else { return };
        self.shared.router.unbind(&session.jid, session.id);
        if session.is_available() {
            session.set_presence(false, 0);
            for other in self.shared.router.sessions_of(&session.jid) {
                if other.is_available() {
                    let p = Element::new("presence", ns::CLIENT)
                        .with_attr("type", "unavailable")
                        .with_attr("from", session.jid.to_string())
                        .with_attr("to", other.jid.to_string());
                    let _ = other.send(Bytes::from(p.to_client_string()));
                }
            }
        }
        self.rx = None;
    }
}
