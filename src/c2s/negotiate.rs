//! Stream negotiation (RFC 6120 §4–§7): the stream header, features,
//! STARTTLS and resource binding; SASL (§6) is in `sasl.rs`.

use super::ticket_hold::HoldTicket;
use super::transport::Transport;
use super::{Conn, Exit, State};
use crate::config::SessionLimit;
use crate::jid::Jid;
use crate::metrics::Metrics;
use crate::sasl::{Failure, Mechanism};
use crate::session::SessionHandle;
use crate::stanza::{StanzaError, StreamError};
use crate::xml::element::check_qname;
use crate::xml::{ns, Element, StanzaHead};
use quick_xml::events::{BytesStart, Event as QEvent};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Our stream header (RFC 6120 §4.7): `from` our domain, a fresh `id`.
pub(crate) fn header_xml(host: &str, to: Option<&str>, id: u64) -> String {
    let to = to.map(|t| format!(" to='{}'", crate::xml::escape(t))).unwrap_or_default();
    let nonce: u64 = rand::thread_rng().gen();
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' id='{:x}{:016x}' from='{}'{} version='1.0' xml:lang='en'>",
        ns::CLIENT,
        ns::STREAM,
        id,
        nonce,
        crate::xml::escape(host),
        to
    )
}

/// The attributes of a stream header start tag, as written (`xmlns` included).
fn header_attrs(tag: &[u8]) -> Result<(String, Vec<(String, String)>), Exit> {
    let bad = || Exit::Error(StreamError::NotWellFormed, Some("malformed stream header".into()));
    let text = std::str::from_utf8(tag).map_err(|_| bad())?;
    let inner = text.strip_prefix('<').and_then(|t| t.strip_suffix('>')).ok_or_else(bad)?;
    let name_len = inner.find(|c: char| c.is_ascii_whitespace()).unwrap_or(inner.len());
    let start = BytesStart::from_content(inner, name_len);
    let mut attrs = Vec::new();
    for a in start.attributes().with_checks(true) {
        let a = a.map_err(|_| bad())?;
        let v = a.unescape_value().map_err(|_| bad())?;
        check_qname(std::str::from_utf8(a.key.as_ref()).map_err(|_| bad())?).map_err(|_| bad())?;
        attrs.push((String::from_utf8_lossy(a.key.as_ref()).into_owned(), v.into_owned()));
    }
    let _ = QEvent::Eof::<'static>; // (quick-xml types used above)
                                    // Namespaces in XML §4: the header's name is a QName too.
    check_qname(&inner[..name_len]).map_err(|_| bad())?;
    Ok((inner[..name_len].to_string(), attrs))
}

impl Conn {
    /// A TLS ClientHello arriving first on a STARTTLS port.
    pub(super) async fn starts_with_tls_record(&mut self, deadline: Instant) -> bool {
        let Some(tcp) = self.io.tcp() else { return false };
        let mut b = [0u8; 1];
        matches!(tokio::time::timeout_at(deadline, tcp.peek(&mut b)).await, Ok(Ok(1)) if b[0] == 0x16)
    }

    /// TLS handshake on the current socket (STARTTLS or direct TLS).
    pub(super) async fn upgrade_tls(&mut self, deadline: Instant) -> bool {
        let Transport::Plain(tcp) = std::mem::replace(&mut self.io, Transport::Taken) else { return false };
        let limit = deadline.min(Instant::now() + Duration::from_secs(30));
        let accept = self.shared.tls.accept(HoldTicket::new(tcp)).into_fallible();
        match tokio::time::timeout_at(limit, accept).await {
            Ok(Ok(mut tls)) => {
                // The session ticket goes out with the first reply.
                tls.get_mut().0.handshake_done();
                self.io = Transport::Tls(Box::new(tls));
                true
            }
            Ok(Err((e, mut tcp))) => {
                tracing::debug!(conn = self.id, peer = %self.peer, error = %e, "TLS handshake failed");
                // A held alert, best effort.
                tcp.release_now();
                false
            }
            Err(_) => false,
        }
    }

    /// RFC 6120 §4.7–§4.8: check the initiating stream header, answer with
    /// ours and the features for this stage.
    pub(super) async fn on_header(&mut self, tag: &[u8]) -> Result<(), Exit> {
        self.header_sent = false;
        self.check_ban()?;
        let (name, attrs) = header_attrs(tag)?;
        let get = |k: &str| attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        // §4.8.1: the stream element is `stream` in the streams namespace.
        let (prefix, local) = name.split_once(':').map(|(p, l)| (Some(p), l)).unwrap_or((None, &name));
        let stream_ns = match prefix {
            Some(p) => get(&format!("xmlns:{p}")),
            None => get("xmlns"),
        };
        let to = get("to").and_then(|t| Jid::parse(t).ok()).filter(|j| j.node().is_none() && j.resource().is_none());
        let host = match (get("to"), &to) {
            // §4.7.2: `to` must be a domain this server serves.
            (Some(_), Some(j)) if self.shared.config().serves(j.domain()) => j.domain().to_string(),
            (Some(_), _) => return Err(Exit::Error(StreamError::HostUnknown, None)),
            (None, _) => self.shared.config().hosts[0].clone(),
        };
        if !self.host.is_empty() && self.host != host {
            return Err(Exit::Error(StreamError::HostUnknown, Some("host changed on stream restart".into())));
        }
        self.host = host;
        let reply_to = get("from").and_then(|f| Jid::parse(f).ok()).map(|j| j.to_string());
        let header = header_xml(&self.host, reply_to.as_deref(), self.id);
        self.write(header.as_bytes()).await?;
        self.header_sent = true;
        if local != "stream" || stream_ns != Some(ns::STREAM) {
            return Err(Exit::Error(StreamError::InvalidNamespace, Some("stream namespace".into())));
        }
        // §4.8.2: a client stream's content namespace is jabber:client.
        if prefix.is_none() || get("xmlns") != Some(ns::CLIENT) {
            return Err(Exit::Error(
                StreamError::InvalidNamespace,
                Some("content namespace must be jabber:client".into()),
            ));
        }
        // §4.7.5: version 1.0 is required.
        let major = get("version").and_then(|v| v.split('.').next()?.parse::<u32>().ok());
        if major != Some(1) {
            return Err(Exit::Error(StreamError::UnsupportedVersion, None));
        }
        self.state = State::Negotiating;
        let features = self.features();
        self.write(features.as_bytes()).await
    }

    /// RFC 6120 §4.3.2: the features for this stage of negotiation.
    fn features(&self) -> String {
        let mut f = String::from("<stream:features>");
        let plaintext_ok = self.io.is_tls() || self.shared.config().auth.allow_plaintext;
        if self.user.is_some() {
            // §7.4 binding; RFC 3921 session kept as optional (RFC 6121 app. E).
            f.push_str(&format!("<bind xmlns='{}'/><session xmlns='{}'><optional/></session>", ns::BIND, ns::SESSION));
            // RFC 6121 §2.6.1 roster versioning; XEP-0352 CSI; XEP-0115 caps of the server.
            f.push_str("<ver xmlns='urn:xmpp:features:rosterver'/><csi xmlns='urn:xmpp:csi:0'/>");
            f.push_str(&crate::modules::disco::caps_element(&self.shared.modules));
        } else {
            if !self.io.is_tls() {
                // §5.3.1: STARTTLS is mandatory-to-negotiate unless configured otherwise.
                let req = if plaintext_ok { "" } else { "<required/>" };
                f.push_str(&format!("<starttls xmlns='{}'>{req}</starttls>", ns::TLS));
            }
            if self.io.is_tls() {
                // XEP-0077 §8: in-band registration, when enabled for this peer.
                if let Some(reg) = crate::modules::register::stream_feature(&self.shared, self.peer.ip(), &self.host) {
                    f.push_str(&reg);
                }
            }
            if plaintext_ok {
                let types = self.channel_binding_types();
                f.push_str(&format!("<mechanisms xmlns='{}'>", ns::SASL));
                for m in self.mechanisms_with(!types.is_empty()) {
                    f.push_str(&format!("<mechanism>{}</mechanism>", m.name()));
                }
                f.push_str("</mechanisms>");
                if self.legacy_auth_offered() {
                    // XEP-0078 §4.
                    f.push_str(&format!("<auth xmlns='{}'/>", ns::IQ_AUTH_FEATURE));
                }
                if !types.is_empty() {
                    // XEP-0440 §4: which channel-binding types the server supports.
                    f.push_str(&format!("<sasl-channel-binding xmlns='{}'>", ns::SASL_CB));
                    for t in types {
                        f.push_str(&format!("<channel-binding type='{t}'/>"));
                    }
                    f.push_str("</sasl-channel-binding>");
                }
            }
        }
        f.push_str("</stream:features>");
        f
    }

    pub(super) fn exporter(&self) -> Option<Vec<u8>> {
        self.io.tls_conn().and_then(crate::tls::tls_exporter)
    }

    /// RFC 5929 §4 data for the certificate this connection was served.
    pub(super) fn server_end_point(&self) -> Option<Vec<u8>> {
        let conn = self.io.tls_conn()?;
        self.shared.certs.server_end_point(conn.server_name())
    }

    /// The channel-binding types this connection can offer, strongest first
    /// (XEP-0440 §5: tls-server-end-point is mandatory for servers; RFC 9266
    /// tls-exporter only where it is safe, TLS 1.3 here).
    fn channel_binding_types(&self) -> Vec<&'static str> {
        let Some(conn) = self.io.tls_conn() else { return Vec::new() };
        let mut v = Vec::new();
        if crate::tls::has_tls_exporter(conn) {
            v.push(crate::sasl::CB_TLS_EXPORTER);
        }
        if self.shared.certs.server_end_point(conn.server_name()).is_some() {
            v.push(crate::sasl::CB_TLS_SERVER_END_POINT);
        }
        v
    }

    /// Strongest first; -PLUS only where a channel binding is available;
    /// SCRAM only over the hashes `[auth] scram_hashes` stores.
    pub(super) fn offered_mechanisms(&self) -> Vec<Mechanism> {
        self.mechanisms_with(!self.channel_binding_types().is_empty())
    }

    /// [`Conn::offered_mechanisms`] given whether any binding is available.
    fn mechanisms_with(&self, plus: bool) -> Vec<Mechanism> {
        let config = self.shared.config();
        [
            Mechanism::ScramSha256Plus,
            Mechanism::ScramSha1Plus,
            Mechanism::ScramSha256,
            Mechanism::ScramSha1,
            Mechanism::Plain,
        ]
        .into_iter()
        .filter(|m| plus || !m.is_plus())
        .filter(|m| m.hash().map_or(true, |h| config.auth.offers(h)))
        .collect()
    }

    /// A top-level element before the session is bound.
    pub(super) async fn on_negotiation(&mut self, bytes: &[u8]) -> Result<(), Exit> {
        if matches!(self.state, State::Header) {
            return Err(Exit::Error(StreamError::NotWellFormed, Some("stream header expected".into())));
        }
        let el = Element::parse(bytes, ns::CLIENT)?;
        match (el.ns.as_str(), el.name.as_str()) {
            (ns::TLS, "starttls") if self.user.is_none() && !self.io.is_tls() => self.on_starttls().await,
            (ns::SASL, "auth") if self.user.is_none() && !matches!(self.state, State::Sasl(_)) => {
                self.on_auth(&el).await
            }
            (ns::SASL, "response") if matches!(self.state, State::Sasl(_)) => self.on_response(&el).await,
            (ns::SASL, "abort") if matches!(self.state, State::Sasl(_)) => self.sasl_failure(Failure::Aborted).await,
            (ns::CLIENT, "iq" | "message" | "presence") if self.user.is_some() => {
                self.on_unbound_stanza(bytes, &el).await
            }
            // XEP-0078 §3: Non-SASL authentication, when enabled (not in
            // the middle of a SASL exchange).
            (ns::CLIENT, "iq")
                if self.user.is_none()
                    && !matches!(self.state, State::Sasl(_))
                    && self.shared.config().auth.legacy_auth
                    && el.child("query", ns::IQ_AUTH).is_some() =>
            {
                self.on_legacy_auth(&el).await
            }
            // XEP-0077 §3.1: registration before authentication, over TLS only (§12).
            (ns::CLIENT, "iq")
                if self.io.is_tls()
                    && matches!(el.attr("type"), Some("get" | "set"))
                    && el.elements().any(|c| c.ns == "jabber:iq:register") =>
            {
                let reply = crate::modules::register::unauthenticated(&self.shared, self.peer.ip(), &self.host, &el);
                self.write(reply.to_client_string().as_bytes()).await
            }
            // §4.9.3.12: stanzas before authentication.
            (ns::CLIENT, "iq" | "message" | "presence") => Err(Exit::Error(StreamError::NotAuthorized, None)),
            _ => Err(Exit::Error(StreamError::UnsupportedStanzaType, Some(format!("unexpected <{}/>", el.name)))),
        }
    }

    /// RFC 6120 §5.4.2: `<proceed/>`, then the TLS handshake and a stream
    /// restart; anything sent in cleartext after `<starttls/>` is discarded.
    async fn on_starttls(&mut self) -> Result<(), Exit> {
        self.write(format!("<proceed xmlns='{}'/>", ns::TLS).as_bytes()).await?;
        // In the clear, before the handshake.
        self.flush_cork().await?;
        self.framer.reset();
        let deadline = Instant::now() + Duration::from_secs(30);
        if !self.upgrade_tls(deadline).await {
            return Err(Exit::Io);
        }
        self.state = State::Header;
        Ok(())
    }

    /// After authentication, before binding: only bind and session iqs.
    async fn on_unbound_stanza(&mut self, bytes: &[u8], el: &Element) -> Result<(), Exit> {
        let id = el.attr("id").unwrap_or("").to_string();
        let set = el.name == "iq" && el.attr("type") == Some("set");
        if set && el.child("bind", ns::BIND).is_some() {
            return self.bind(&id, el.child("bind", ns::BIND).and_then(|b| b.child("resource", ns::BIND))).await;
        }
        if set && el.child("session", ns::SESSION).is_some() {
            let reply = crate::stanza::iq_result(&id, None, "", None);
            return self.write(reply.as_bytes()).await;
        }
        // RFC 6120 §7.1: before binding, a stanza to anyone but the server
        // is not processed and the stream is closed with <not-authorized/>.
        let to_server = match el.attr("to") {
            None => el.name == "iq",
            Some(t) => {
                Jid::parse(t).is_ok_and(|j| j.node().is_none() && j.resource().is_none() && j.domain() == self.host)
            }
        };
        if !to_server {
            return Err(Exit::Error(StreamError::NotAuthorized, Some("bind a resource first".into())));
        }
        let head = StanzaHead::parse(bytes, ns::CLIENT)?;
        if el.name == "iq" && matches!(el.attr("type"), Some("get" | "set")) {
            let reply = crate::stanza::error_reply(&head, &self.host, "", StanzaError::NotAuthorized);
            return self.write(&reply).await;
        }
        Ok(())
    }

    /// An error reply to the iq `id` of a client not yet bound (RFC 6120
    /// §7.7.2: from the server, with no `to`).
    pub(super) async fn iq_error(&mut self, id: &str, condition: StanzaError) -> Result<(), Exit> {
        let head = StanzaHead::new("iq", ns::CLIENT, &[("id", id)]);
        let reply = crate::stanza::error_reply(&head, &self.host, "", condition);
        self.write(&reply).await
    }

    /// RFC 6120 §7.6: bind a client-chosen or generated resource and
    /// answer the bind iq `id` with the full JID.
    async fn bind(&mut self, id: &str, resource: Option<&Element>) -> Result<(), Exit> {
        let requested = resource.map(|r| r.text());
        let jid = match self.bind_resource(requested) {
            Ok(j) => j,
            Err(e) => return self.iq_error(id, e).await,
        };
        let payload =
            Element::new("bind", ns::BIND).with_child(Element::new("jid", ns::BIND).with_text(jid.to_string()));
        let reply = crate::stanza::iq_result(id, None, &jid.to_string(), Some(payload));
        self.write(reply.as_bytes()).await
    }

    /// Bind `requested` (or a generated resource when it is absent or
    /// blank) for the authenticated user; also used by XEP-0078. A session
    /// already bound to the same full JID is replaced and closed with
    /// `<conflict/>` (§7.7.2.2, the policy ejabberd and Prosody use).
    pub(super) fn bind_resource(&mut self, requested: Option<String>) -> Result<Jid, StanzaError> {
        let user = self.user.clone().unwrap_or_default();
        let resource = requested.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| {
            let n: u64 = rand::thread_rng().gen();
            format!("xmppd-{n:016x}")
        });
        // §7.7.2.1: a resource that cannot be processed is bad-request.
        let jid = Jid::parse(&format!("{user}@{}/{resource}", self.host)).map_err(|_| StanzaError::BadRequest)?;
        let config = self.shared.config();
        let limits = &config.limits;
        // Max sessions per account: ejabberd's max_user_sessions closes the
        // oldest; `refuse` answers RFC 6120 §7.6.2.1 <resource-constraint/>.
        let mut others: Vec<_> = self.shared.router.sessions_of(&jid).into_iter().filter(|s| s.jid != jid).collect();
        if others.len() >= limits.max_sessions_per_account {
            Metrics::inc(&self.shared.metrics.session_limit_hits_total);
            if limits.session_limit == SessionLimit::Refuse {
                return Err(StanzaError::ResourceConstraint);
            }
            others.sort_by_key(|s| s.id);
            for old in &others[..=others.len() - limits.max_sessions_per_account] {
                old.request_close(StreamError::Conflict, Some("replaced: too many sessions for this account".into()));
            }
        }
        let (handle, rx) =
            SessionHandle::with_queue(self.id, jid.clone(), limits.outbound_queue, limits.outbound_queue_bytes);
        let handle = Arc::new(handle.with_metrics(self.shared.metrics.clone()));
        self.shared.metrics.session_delta(&self.host, 1);
        if let Some(old) = self.shared.router.bind(handle.clone()) {
            old.request_close(StreamError::Conflict, Some("replaced by a new connection".into()));
        }
        self.session = Some(handle);
        self.rx = Some(rx);
        self.state = State::Bound;
        tracing::debug!(conn = self.id, jid = %jid, "bound");
        Ok(jid)
    }
}
