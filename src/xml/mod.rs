//! XML for XMPP streams.
//!
//! - [`framer`]: the incremental framer over received bytes: finds the stream
//!   header, each complete top-level element and the stream close, enforcing
//!   size and depth limits and RFC 6120 §11.1's restricted XML.
//! - [`element`]: a small element tree, parsed with quick-xml, for what is
//!   addressed to the server; serialisation with escaping.
//! - [`head`]: a validating pass over a complete stanza that builds no tree,
//!   returning its start tag so routed stanzas are forwarded as bytes.

pub mod element;
pub mod framer;
pub mod head;

pub use element::{Element, Node};
pub use framer::{Event, Framer, XmlError};
pub use head::StanzaHead;

/// Namespaces used on the wire.
pub mod ns {
    /// RFC 6120 §4.8.1: the stream namespace.
    pub const STREAM: &str = "http://etherx.jabber.org/streams";
    /// RFC 6120 §4.8.2: the client content namespace.
    pub const CLIENT: &str = "jabber:client";
    /// RFC 6120 §4.9.3: stream error conditions.
    pub const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    /// RFC 6120 §8.3.3: stanza error conditions.
    pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    /// RFC 6120 §5.4: STARTTLS.
    pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
    /// RFC 6120 §6.4: SASL.
    pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
    /// RFC 6120 §7: resource binding.
    pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
    /// RFC 3921 §3 (legacy session establishment), kept optional per RFC 6121 appendix E.
    pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
    /// RFC 6121 §2: roster.
    pub const ROSTER: &str = "jabber:iq:roster";
    /// XEP-0199: ping.
    pub const PING: &str = "urn:xmpp:ping";
    /// XEP-0030: service discovery.
    pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
    /// XEP-0030: service discovery items.
    pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
    /// XEP-0092: software version.
    pub const VERSION: &str = "jabber:iq:version";
    /// XEP-0078 §3: Non-SASL Authentication.
    pub const IQ_AUTH: &str = "jabber:iq:auth";
    /// XEP-0078 §4: its stream feature.
    pub const IQ_AUTH_FEATURE: &str = "http://jabber.org/features/iq-auth";
    /// XEP-0440: SASL channel-binding type capability.
    pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
}

/// Escape text for element content or a single-quoted attribute value.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}
