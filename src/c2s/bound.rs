//! Stanzas from a bound session (RFC 6120 §8, RFC 6121 §8): stamp `from`,
//! answer what is addressed to the server, route the rest.

use super::{Conn, Exit};
use crate::im;
use crate::jid::Jid;
use crate::modules::IqRequest;
use crate::router::{Delivery, Kind};
use crate::stanza::{error_reply, iq_result, StanzaError, StreamError};
use crate::xml::{ns, Element, StanzaHead};
use bytes::Bytes;

/// XEP-0352 client state indication.
const CSI: &str = "urn:xmpp:csi:0";

impl Conn {
    /// One stanza from the bound client.
    pub(super) async fn on_bound_stanza(&mut self, bytes: Vec<u8>) -> Result<(), Exit> {
        let head = StanzaHead::parse(&bytes, ns::CLIENT)?;
        let kind = match (head.ns.as_str(), Kind::from_name(&head.name)) {
            (ns::CLIENT, Some(k)) => k,
            // XEP-0352 §4: the client tells its state.
            (CSI, None) if head.name == "active" || head.name == "inactive" => {
                return self.set_inactive(head.name == "inactive").await;
            }
            // RFC 6120 §4.9.3.21: a first-level element we do not support.
            _ => {
                return Err(Exit::Error(
                    StreamError::UnsupportedStanzaType,
                    Some(format!("unexpected <{}/>", head.name)),
                ))
            }
        };
        self.shared.metrics.stanza_in(kind);
        let session = self.session.clone().ok_or(Exit::Io)?;
        let me = &session.jid;
        let ty = head.attr("type").unwrap_or("");
        // RFC 6120 §8.2.3: an iq has a type of get, set, result or error.
        if kind == Kind::Iq && !matches!(ty, "get" | "set" | "result" | "error") {
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
            // RFC 6121 §8.5.2.1.3: an iq to a local bare JID (the server, the
            // user, another account) is handled by the server on its behalf.
            (Kind::Iq, Some(t)) if t.resource().is_none() && self.shared.router.is_local(t.domain()) => {
                self.server_iq(&bytes, &head, t, Some(t)).await
            }
            // RFC 6121 §4.2 / §4.4 / §4.5: presence with no `to` is broadcast.
            (Kind::Presence, None) => self.broadcast_presence(&bytes, &head, ty).await,
            // RFC 6121 §3: subscription management, addressed to bare JIDs.
            (Kind::Presence, Some(t)) if matches!(ty, "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed") => {
                let (user, contact) = (me.to_bare(), t.to_bare());
                let blocked = &self.shared.blocklists;
                if blocked.is_blocked(&self.shared, &user, &contact)
                    || (self.shared.router.is_local(contact.domain())
                        && blocked.is_blocked(&self.shared, &contact, &user))
                {
                    return Ok(()); // XEP-0191 §3.5: presence to or from a blocked entity is dropped
                }
                let stamped = Bytes::from(head.rewrite(&bytes, &user.to_string(), Some(&contact.to_string())));
                im::subscription::outbound(&self.shared, &user, &contact, ty, stamped);
                Ok(())
            }
            // RFC 6121 §4.3: probes are the server's business.
            (Kind::Presence, Some(_)) if ty == "probe" => Ok(()),
            // RFC 6120 §10.3.1: a message with no `to` is for the sender's bare JID.
            (Kind::Message, None) => self.route(kind, ty, &me.to_bare(), &bytes, &head).await,
            // Messages and presence for the server itself are not processed.
            (Kind::Message | Kind::Presence, Some(t))
                if t.node().is_none() && self.shared.router.is_local(t.domain()) =>
            {
                Ok(())
            }
            (Kind::Presence, Some(t)) => {
                // RFC 6121 §4.6: directed presence, remembered so the
                // recipient learns of our unavailability later (§4.6.3).
                let t = t.clone();
                if ty.is_empty() && !im::presence::is_subscriber(&self.shared, me, &t) {
                    if !self.directed.contains(&t) {
                        self.directed.push(t.clone());
                    }
                } else if ty == "unavailable" {
                    self.directed.retain(|d| *d != t);
                }
                self.route(kind, ty, &t, &bytes, &head).await
            }
            (_, Some(t)) => self.route(kind, ty, t, &bytes, &head).await,
        }
    }

    /// Route to another entity, bouncing what the router cannot deliver.
    async fn route(&mut self, kind: Kind, ty: &str, to: &Jid, bytes: &[u8], head: &StanzaHead) -> Result<(), Exit> {
        let session = self.session.clone().ok_or(Exit::Io)?;
        let me = session.jid_str.as_str();
        // XEP-0191 §3.5: nothing goes to an entity the user blocked.
        let blocklists = &self.shared.blocklists;
        if blocklists.is_blocked(&self.shared, &session.jid, to) {
            if kind == Kind::Presence || ty == "error" {
                return Ok(());
            }
            let mut reply = Element::new(&head.name, ns::CLIENT).with_attr("type", "error");
            if let Some(id) = head.attr("id") {
                reply.set_attr("id", id);
            }
            reply.set_attr("from", to.to_string());
            reply.set_attr("to", me);
            let reply = reply.with_child(crate::modules::blocking::blocked_error());
            return self.write(reply.to_client_string().as_bytes()).await;
        }
        // XEP-0191 §3.5: stanzas from an entity a local recipient blocked are
        // not delivered: presence is dropped, messages and requests bounce.
        if self.shared.router.is_local(to.domain())
            && to.node().is_some()
            && blocklists.is_blocked(&self.shared, to, &session.jid)
        {
            if kind == Kind::Presence || matches!(ty, "error" | "result") {
                return Ok(());
            }
            let reply = error_reply(head, &to.to_string(), me, StanzaError::ServiceUnavailable);
            return self.write(&reply).await;
        }
        let stamped = Bytes::from(head.rewrite(bytes, me, None));
        // XEP-0280: copies, when another resource enabled them (the
        // eligibility rules are checked only then).
        let message = kind == Kind::Message;
        if message {
            im::carbons::copy_sent(&self.shared, &session, ty, &stamped);
        }
        let (delivery, carbons) = self.shared.router.route_noting_carbons(kind, ty, to, stamped.clone());
        let err = match delivery {
            Delivery::Delivered(ids) => {
                if carbons {
                    im::carbons::copy_received(&self.shared, to, &ids, ty, &stamped);
                }
                return Ok(());
            }
            Delivery::Dropped => return Ok(()),
            Delivery::Offline => match im::offline::store(&self.shared, &to.to_bare(), &stamped) {
                Ok(_) => return Ok(()),
                Err(e) => e,
            },
            Delivery::Bounce(e) => e,
        };
        // RFC 6120 §8.3.1: never answer an error with an error.
        if ty == "error" {
            return Ok(());
        }
        let reply = error_reply(head, &to.to_string(), me, err);
        self.write(&reply).await
    }

    /// Answer an iq addressed to the server or to the user's bare JID.
    async fn server_iq(
        &mut self,
        bytes: &[u8],
        head: &StanzaHead,
        to: &Jid,
        to_attr: Option<&Jid>,
    ) -> Result<(), Exit> {
        let ty = head.attr("type").unwrap_or("");
        if !matches!(ty, "get" | "set") {
            return Ok(()); // results and errors addressed to the server
        }
        let session = self.session.clone().ok_or(Exit::Io)?;
        let me = session.jid.clone();
        let el = Element::parse(bytes, ns::CLIENT)?;
        let children: Vec<&Element> = el.elements().collect();
        // RFC 6120 §8.2.3: a get or set has exactly one payload.
        let answer = match children.as_slice() {
            [payload] => {
                let ctx = crate::modules::Ctx { shared: &self.shared, session: &session };
                self.shared.modules.handle(&IqRequest { from: &me, to, set: ty == "set", payload }, &ctx)
            }
            _ => Err(StanzaError::BadRequest),
        };
        let from = to_attr.map(|t| t.to_string());
        match answer {
            Ok(payload) => {
                let reply = iq_result(head.attr("id").unwrap_or(""), from.as_deref(), &me.to_string(), payload);
                self.shared.metrics.stanza_out(Kind::Iq);
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
        self.shared.metrics.stanza_out_bytes(&reply);
        self.write(&reply).await
    }

    /// RFC 6121 §4.2 (initial), §4.4 (update), §4.5 (unavailable).
    async fn broadcast_presence(&mut self, bytes: &[u8], head: &StanzaHead, ty: &str) -> Result<(), Exit> {
        let Some(session) = self.session.clone() else { return Ok(()) };
        let stamped = Bytes::from(head.rewrite(bytes, &session.jid_str, None));
        match ty {
            "" => {
                let el = Element::parse(bytes, ns::CLIENT)?;
                let stamped = self.with_avatar(&el, stamped);
                // RFC 6121 §4.7.2.3: an integer in -128..=127; otherwise 0.
                let priority =
                    el.child("priority", ns::CLIENT).and_then(|p| p.text().trim().parse::<i8>().ok()).unwrap_or(0);
                if im::presence::broadcast_available(&self.shared, &session, stamped, priority) {
                    self.deliver_offline().await?;
                }
                Ok(())
            }
            "unavailable" => {
                // XEP-0012 §3: the status of the last unavailable presence.
                let el = Element::parse(bytes, ns::CLIENT)?;
                self.last_status = el.child("status", ns::CLIENT).map(|s| s.text());
                let directed = std::mem::take(&mut self.directed);
                im::presence::broadcast_unavailable(&self.shared, &session, Some(stamped), &directed);
                Ok(())
            }
            _ => Ok(()), // probes and subscription types need a `to`
        }
    }

    /// XEP-0153 §4.1: the server adds the avatar hash of the stored vCard
    /// to available presence that carries none.
    fn with_avatar(&self, el: &Element, stamped: Bytes) -> Bytes {
        const UPDATE: &str = "vcard-temp:x:update";
        if el.elements().any(|c| c.ns == UPDATE) {
            return stamped;
        }
        let Some(session) = self.session.as_ref() else { return stamped };
        match crate::modules::vcard::session_avatar_hash(&self.shared, session) {
            Some(hash) => {
                let x = crate::modules::vcard::update_element(&hash);
                let mut out = String::new();
                x.write_to(&mut out, ns::CLIENT);
                let text = String::from_utf8_lossy(&stamped);
                let t = text.trim_end();
                Bytes::from(match t.strip_suffix("/>") {
                    Some(h) if !h.contains('>') => format!("{h}>{out}</presence>"),
                    _ => match t.rfind("</") {
                        Some(i) => format!("{}{out}{}", &t[..i], &t[i..]),
                        None => t.to_string(),
                    },
                })
            }
            None => stamped,
        }
    }

    /// XEP-0160: after initial presence, stored messages in order, each with
    /// a XEP-0203 delay; removed from the store only once written.
    pub(super) async fn deliver_offline(&mut self) -> Result<(), Exit> {
        let Some(jid) = self.session.as_ref().map(|s| s.jid.clone()) else { return Ok(()) };
        // Pairs with the fence in `im::offline::wake_recipient`.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let (user, host) = (jid.node().unwrap_or("").to_string(), jid.domain().to_string());
        let msgs = match self.shared.store.offline(&user, &host) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "reading offline messages");
                return Ok(());
            }
        };
        let Some(last) = msgs.last().map(|m| m.id) else { return Ok(()) };
        let mut out = String::new();
        for m in &msgs {
            out.push_str(&im::offline::with_delay(&m.stanza, &host, m.stamp));
        }
        self.write(out.as_bytes()).await?;
        if let Err(e) = self.shared.store.remove_offline(&user, &host, last) {
            tracing::error!(error = %e, "removing delivered offline messages");
        }
        Ok(())
    }

    /// XEP-0352: while inactive, presence is held back (the latest per
    /// sender) and flushed with the next other stanza or on `<active/>`.
    async fn set_inactive(&mut self, inactive: bool) -> Result<(), Exit> {
        self.csi_inactive = inactive;
        if !inactive {
            return self.flush_held_presence().await;
        }
        Ok(())
    }

    /// Unregister the session: unavailable presence to subscribers, the
    /// user's other resources and directed-presence recipients (RFC 6121
    /// §4.5.2, also for a dropped connection, §4.5.3).
    pub(super) fn unbind(&mut self) {
        let Some(session) = self.session.take() else { return };
        // Out of the account's carbons count (XEP-0280), then out of the table.
        session.set_carbons(false);
        self.shared.router.unbind(&session.jid, session.id);
        self.shared.metrics.session_delta(session.jid.domain(), -1);
        let directed = std::mem::take(&mut self.directed);
        im::presence::broadcast_unavailable(&self.shared, &session, None, &directed);
        // XEP-0012 §3: the account's last activity, once its last session
        // ends. Not looked up first: the deferred write stores it only while
        // the account exists (a removed account's session ends after it).
        let (user, host) = (session.jid.node().unwrap_or(""), session.jid.domain());
        if !self.shared.router.is_online(&session.jid) {
            crate::modules::last::record_logout(&self.shared, user, host, self.last_status.as_deref());
        }
        // Stanzas accepted for this session but never written are routed
        // again (offline storage, other resources, bounces): see requeue.rs.
        let unsent = std::mem::take(&mut self.unsent);
        if let Some(rx) = self.rx.take() {
            let n = super::requeue::reroute_queued(&self.shared, &session, unsent, rx);
            if n > 0 {
                tracing::debug!(conn = self.id, jid = %session.jid, n, "routed queued stanzas again");
            }
        }
    }
}
