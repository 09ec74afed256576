//! Stream and stanza errors (RFC 6120 §4.9, §8.3) and stanza builders.

use crate::xml::{ns, Element, StanzaHead};

/// RFC 6120 §4.9.3 stream error conditions used by this server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// §4.9.3.1: the entity sent XML that cannot be processed.
    BadFormat,
    /// §4.9.3.3: a new stream for the same resource replaced this one.
    Conflict,
    /// §4.9.3.4: the peer did not talk for too long.
    ConnectionTimeout,
    /// §4.9.3.6: `to` names a domain not served here.
    HostUnknown,
    /// §4.9.3.8: internal error.
    InternalServerError,
    /// §4.9.3.10: wrong stream or content namespace.
    InvalidNamespace,
    /// §4.9.3.12: stanzas before authentication.
    NotAuthorized,
    /// §4.9.3.13: not well-formed XML.
    NotWellFormed,
    /// §4.9.3.14: a policy (size, depth, rate) was violated.
    PolicyViolation,
    /// §4.9.3.17: resource limits.
    ResourceConstraint,
    /// §4.9.3.18: comments, PIs, DTDs, entity references.
    RestrictedXml,
    /// §4.9.3.19: the server is going down.
    SystemShutdown,
    /// §4.9.3.21: a top-level element the server does not support.
    UnsupportedStanzaType,
    /// §4.9.3.22: wrong version.
    UnsupportedVersion,
    /// Kicked by an administrator: §4.9.3.14 policy-violation, with the
    /// reason as text (what ejabberd's kick_session sends).
    Kicked,
}

impl StreamError {
    /// The condition element name.
    pub fn condition(self) -> &'static str {
        match self {
            StreamError::BadFormat => "bad-format",
            StreamError::Conflict => "conflict",
            StreamError::ConnectionTimeout => "connection-timeout",
            StreamError::HostUnknown => "host-unknown",
            StreamError::InternalServerError => "internal-server-error",
            StreamError::InvalidNamespace => "invalid-namespace",
            StreamError::NotAuthorized => "not-authorized",
            StreamError::NotWellFormed => "not-well-formed",
            StreamError::PolicyViolation | StreamError::Kicked => "policy-violation",
            StreamError::ResourceConstraint => "resource-constraint",
            StreamError::RestrictedXml => "restricted-xml",
            StreamError::SystemShutdown => "system-shutdown",
            StreamError::UnsupportedStanzaType => "unsupported-stanza-type",
            StreamError::UnsupportedVersion => "unsupported-version",
        }
    }

    /// `<stream:error>` with an optional descriptive text (§4.9.2).
    pub fn to_xml(self, text: Option<&str>) -> String {
        let mut s = format!("<stream:error><{} xmlns='{}'/>", self.condition(), ns::STREAMS);
        if let Some(t) = text {
            s.push_str(&format!("<text xmlns='{}' xml:lang='en'>{}</text>", ns::STREAMS, crate::xml::escape(t)));
        }
        s.push_str("</stream:error>");
        s
    }
}

impl From<crate::xml::XmlError> for StreamError {
    fn from(e: crate::xml::XmlError) -> StreamError {
        match e {
            crate::xml::XmlError::NotWellFormed(_) => StreamError::NotWellFormed,
            crate::xml::XmlError::Restricted(_) => StreamError::RestrictedXml,
            crate::xml::XmlError::PolicyViolation(_) => StreamError::PolicyViolation,
        }
    }
}

/// RFC 6120 §8.3.3 stanza error conditions used here, with their §8.3.2 type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StanzaError {
    /// §8.3.3.1 (modify).
    BadRequest,
    /// §8.3.3.2 (cancel).
    Conflict,
    /// §8.3.3.3 (cancel).
    FeatureNotImplemented,
    /// §8.3.3.4 (auth).
    Forbidden,
    /// §8.3.3.5 (cancel).
    InternalServerError,
    /// §8.3.3.7 (cancel).
    ItemNotFound,
    /// §8.3.3.8 (modify).
    JidMalformed,
    /// §8.3.3.9 (modify).
    NotAcceptable,
    /// §8.3.3.10 (cancel).
    NotAllowed,
    /// §8.3.3.11 (auth).
    NotAuthorized,
    /// §8.3.3.15 (cancel).
    RemoteServerNotFound,
    /// §8.3.3.18 (wait).
    ResourceConstraint,
    /// §8.3.3.19 (cancel).
    ServiceUnavailable,
    /// §8.3.3.21 (wait).
    UnexpectedRequest,
    /// XEP-0050 §4.6: `bad-request` (or `not-allowed` for
    /// `session-expired`) with this application-specific condition in the
    /// `http://jabber.org/protocol/commands` namespace: `bad-action`,
    /// `bad-sessionid`, `malformed-action`, `bad-payload`, `session-expired`.
    AdHoc(&'static str),
}

impl StanzaError {
    /// Condition element name and error type.
    pub fn parts(self) -> (&'static str, &'static str) {
        match self {
            StanzaError::BadRequest => ("bad-request", "modify"),
            StanzaError::Conflict => ("conflict", "cancel"),
            StanzaError::FeatureNotImplemented => ("feature-not-implemented", "cancel"),
            StanzaError::Forbidden => ("forbidden", "auth"),
            StanzaError::InternalServerError => ("internal-server-error", "cancel"),
            StanzaError::ItemNotFound => ("item-not-found", "cancel"),
            StanzaError::JidMalformed => ("jid-malformed", "modify"),
            StanzaError::NotAcceptable => ("not-acceptable", "modify"),
            StanzaError::NotAllowed => ("not-allowed", "cancel"),
            StanzaError::NotAuthorized => ("not-authorized", "auth"),
            StanzaError::RemoteServerNotFound => ("remote-server-not-found", "cancel"),
            StanzaError::ResourceConstraint => ("resource-constraint", "wait"),
            StanzaError::ServiceUnavailable => ("service-unavailable", "cancel"),
            StanzaError::UnexpectedRequest => ("unexpected-request", "wait"),
            StanzaError::AdHoc("session-expired") => ("not-allowed", "cancel"),
            StanzaError::AdHoc(_) => ("bad-request", "modify"),
        }
    }

    /// The `<error/>` element (§8.3.2).
    pub fn element(self) -> Element {
        let (cond, ty) = self.parts();
        let e = Element::new("error", ns::CLIENT).with_attr("type", ty).with_child(Element::new(cond, ns::STANZAS));
        match self {
            StanzaError::AdHoc(app) => e.with_child(Element::new(app, "http://jabber.org/protocol/commands")),
            _ => e,
        }
    }
}

/// An error reply to a stanza (§8.3.1): same name and id, `to`/`from`
/// swapped, `type='error'`. `from`/`to` are the reply's addresses.
pub fn error_reply(head: &StanzaHead, from: &str, to: &str, err: StanzaError) -> Vec<u8> {
    let mut e = Element::new(&head.name, ns::CLIENT).with_attr("type", "error");
    if let Some(id) = head.attr("id") {
        e.set_attr("id", id);
    }
    if !from.is_empty() {
        e.set_attr("from", from);
    }
    if !to.is_empty() {
        e.set_attr("to", to);
    }
    e.with_child(err.element()).to_client_string().into_bytes()
}

/// An `iq` result for a request (RFC 6120 §8.2.3).
pub fn iq_result(id: &str, from: Option<&str>, to: &str, payload: Option<Element>) -> String {
    let mut e = Element::new("iq", ns::CLIENT).with_attr("type", "result").with_attr("id", id);
    if let Some(from) = from {
        e.set_attr("from", from);
    }
    if !to.is_empty() {
        e.set_attr("to", to);
    }
    if let Some(p) = payload {
        e = e.with_child(p);
    }
    e.to_client_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_swaps_and_keeps_id() {
        let b = b"<message to='b@x' id='7' type='chat'><body>x</body></message>";
        let h = StanzaHead::parse(b, ns::CLIENT).unwrap();
        let r = String::from_utf8(error_reply(&h, "b@x", "a@x/r", StanzaError::ServiceUnavailable)).unwrap();
        assert_eq!(
            r,
            "<message type='error' id='7' from='b@x' to='a@x/r'><error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        );
    }

    #[test]
    fn stream_error_xml() {
        assert_eq!(
            StreamError::HostUnknown.to_xml(None),
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        );
    }
}
