//! A validating pass over a complete stanza that builds no tree: it checks
//! well-formedness (RFC 6120 §11.1, XML 1.0) and returns the start tag's
//! name and attributes, so a routed stanza can be forwarded as bytes with
//! only its start tag rewritten (RFC 6120 §8.1.2.1: the server stamps `from`).

use super::element::{check_chars, reader, Scopes};
use super::framer::XmlError;
use quick_xml::events::Event as QEvent;

/// The top element of a stanza.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StanzaHead {
    /// Local name.
    pub name: String,
    /// Resolved namespace.
    pub ns: String,
    /// The attributes but the default `xmlns`, names and unescaped values
    /// back to back (one allocation for them all, not two each: this is
    /// read for every routed stanza).
    text: String,
    /// Per attribute, where its name and then its value end in `text`
    /// (each starts where the one before ended).
    spans: Vec<(u32, u32)>,
    /// The default namespace declared on the start tag (`xmlns='…'`), if any.
    pub default_ns: Option<String>,
    /// Byte length of the start tag, including its `>`.
    pub head_len: usize,
    /// Whether the start tag is an empty-element tag (`<x/>`).
    pub empty: bool,
}

impl StanzaHead {
    /// Validate `bytes` (one complete element) and return its head.
    pub fn parse(bytes: &[u8], default_ns: &str) -> Result<StanzaHead, XmlError> {
        let mut r = reader(bytes)?;
        let mut scopes = Scopes::new(default_ns);
        let mut head: Option<StanzaHead> = None;
        let mut depth = 0usize;
        loop {
            let ev = r.read_event().map_err(|_| XmlError::NotWellFormed("malformed element"))?;
            let is_empty = matches!(ev, QEvent::Empty(_));
            match ev {
                QEvent::Start(s) | QEvent::Empty(s) => {
                    if head.is_some() && depth == 0 {
                        return Err(XmlError::NotWellFormed("content after the element"));
                    }
                    if head.is_none() {
                        let mut text = String::with_capacity(s.attributes_raw().len());
                        let mut spans = Vec::with_capacity(4);
                        let (name, ns) = scopes.enter_with(&s, |k, v| keep_attr(&mut text, &mut spans, k, &v))?;
                        head = Some(StanzaHead {
                            name,
                            ns,
                            text,
                            spans,
                            default_ns: scopes.declared_default().map(str::to_string),
                            head_len: r.buffer_position() as usize,
                            empty: is_empty,
                        });
                    } else {
                        // Descendants are validated, not collected.
                        scopes.enter_checked(&s)?;
                    }
                    if is_empty {
                        scopes.leave();
                    } else {
                        depth += 1;
                    }
                }
                QEvent::End(_) => {
                    scopes.leave();
                    depth = depth.checked_sub(1).ok_or(XmlError::NotWellFormed("unbalanced end tag"))?;
                }
                QEvent::Text(t) => {
                    let s = t.unescape().map_err(|_| XmlError::Restricted("unknown entity reference"))?;
                    check_chars(&s)?;
                    if depth == 0 && !s.trim().is_empty() {
                        return Err(XmlError::NotWellFormed("text outside the element"));
                    }
                }
                QEvent::CData(c) => {
                    check_chars(std::str::from_utf8(&c).map_err(|_| XmlError::NotWellFormed("invalid UTF-8"))?)?;
                }
                QEvent::Eof => {
                    return match (head, depth) {
                        (Some(h), 0) => Ok(h),
                        _ => Err(XmlError::NotWellFormed("unexpected end of element")),
                    };
                }
                QEvent::Comment(_) | QEvent::DocType(_) | QEvent::PI(_) | QEvent::Decl(_) => {
                    return Err(XmlError::Restricted("comments, PIs and DTDs are not allowed"));
                }
            }
        }
    }

    /// A head for an element that was not read (an empty `<name/>` in `ns`
    /// with `attrs`), for building replies to it.
    pub fn new(name: &str, ns: &str, attrs: &[(&str, &str)]) -> StanzaHead {
        let (mut text, mut spans) = (String::new(), Vec::with_capacity(attrs.len()));
        for (k, v) in attrs {
            keep_attr(&mut text, &mut spans, k, v);
        }
        StanzaHead { name: name.into(), ns: ns.into(), text, spans, default_ns: None, head_len: 0, empty: true }
    }

    /// The attributes (name, unescaped value), without the default `xmlns`.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.spans.iter().map(move |&(key_end, end)| {
            let (k, v) = (&self.text[start..key_end as usize], &self.text[key_end as usize..end as usize]);
            start = end as usize;
            (k, v)
        })
    }

    /// An attribute's value.
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs().find(|&(key, _)| key == k).map(|(_, v)| v)
    }

    /// Rebuild the stanza with `from` (and optionally `to`) replaced,
    /// copying everything after the start tag as it was.
    pub fn rewrite(&self, bytes: &[u8], from: &str, to: Option<&str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + from.len() + 16);
        out.push(b'<');
        // The name as written, prefix and all: the end tag is copied as it
        // was and must still match (XML 1.0 §3 [GIMatch]); `<c:message
        // xmlns:c='jabber:client'>` is a valid stanza.
        let qname = bytes
            .get(1..self.head_len.min(bytes.len()))
            .and_then(|t| t.iter().position(|&b| b.is_ascii_whitespace() || b == b'/' || b == b'>').map(|n| &t[..n]))
            .filter(|q| !q.is_empty())
            .unwrap_or(self.name.as_bytes());
        out.extend_from_slice(qname);
        // The default namespace for the descendants, as declared (for an
        // unprefixed name it is also the stanza's own).
        if let Some(d) = &self.default_ns {
            push_attr(&mut out, "xmlns", d);
        }
        for (k, v) in self.attrs() {
            if k == "from" || (k == "to" && to.is_some()) {
                continue;
            }
            push_attr(&mut out, k, v);
        }
        if let Some(to) = to {
            push_attr(&mut out, "to", to);
        }
        push_attr(&mut out, "from", from);
        out.extend_from_slice(if self.empty { b"/>" } else { b">" });
        out.extend_from_slice(&bytes[self.head_len.min(bytes.len())..]);
        out
    }
}

/// Append attribute `k`=`v` to a head's `text` and `spans`.
fn keep_attr(text: &mut String, spans: &mut Vec<(u32, u32)>, k: &str, v: &str) {
    text.push_str(k);
    let key_end = text.len() as u32;
    text.push_str(v);
    spans.push((key_end, text.len() as u32));
}

fn push_attr(out: &mut Vec<u8>, k: &str, v: &str) {
    out.push(b' ');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"='");
    out.extend_from_slice(super::escape(v).as_bytes());
    out.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::ns;

    #[test]
    fn head_and_rewrite() {
        let b = b"<message to='b@x' from='evil@x' type=\"chat\" id='a&amp;'><body>hi</body></message>";
        let h = StanzaHead::parse(b, ns::CLIENT).unwrap();
        assert_eq!(h.name, "message");
        assert_eq!(h.attr("id"), Some("a&"));
        let out = h.rewrite(b, "a@x/r", None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<message to='b@x' type='chat' id='a&amp;' from='a@x/r'><body>hi</body></message>"
        );
        let e = b"<presence/>";
        let h = StanzaHead::parse(e, ns::CLIENT).unwrap();
        assert!(h.empty);
        assert_eq!(String::from_utf8(h.rewrite(e, "a@x", Some("b@x"))).unwrap(), "<presence to='b@x' from='a@x'/>");
    }

    /// Found by `fuzz/run.sh xml`: a prefixed stanza was rewritten as
    /// `<message …>…</c:message>` (and its default namespace replaced by the
    /// prefix's), which the recipient's parser refuses.
    #[test]
    fn rewrite_keeps_a_prefixed_name_and_the_declared_default_namespace() {
        let b = b"<c:message xmlns:c='jabber:client' xmlns='urn:x' to='b@x'><c:body>hi</c:body><y/></c:message>";
        let h = StanzaHead::parse(b, ns::CLIENT).unwrap();
        assert_eq!((h.name.as_str(), h.ns.as_str()), ("message", ns::CLIENT));
        let out = h.rewrite(b, "a@x/r", None);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "<c:message xmlns='urn:x' xmlns:c='jabber:client' to='b@x' from='a@x/r'><c:body>hi</c:body><y/></c:message>"
        );
        let again = crate::xml::Element::parse(&out, ns::CLIENT).unwrap();
        assert_eq!(again.elements().nth(1).map(|y| y.ns.as_str()), Some("urn:x"));
        let plain = b"<message xmlns='jabber:client'><body>x</body></message>";
        let out = StanzaHead::parse(plain, ns::CLIENT).unwrap().rewrite(plain, "a@x", None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<message xmlns='jabber:client' from='a@x'><body>x</body></message>"
        );
    }

    #[test]
    fn attributes_in_order_unescaped_without_the_default_namespace() {
        let b = b"<iq xmlns='jabber:client' xmlns:x='urn:x' type='get' id='a&amp;b&#x27;' x:k=''/>";
        let h = StanzaHead::parse(b, ns::CLIENT).unwrap();
        let attrs: Vec<_> = h.attrs().collect();
        assert_eq!(attrs, [("xmlns:x", "urn:x"), ("type", "get"), ("id", "a&b'"), ("x:k", "")]);
        assert_eq!(h.default_ns.as_deref(), Some(ns::CLIENT));
        let made = StanzaHead::new("iq", ns::CLIENT, &[("id", "7"), ("type", "")]);
        assert_eq!(made.attrs().collect::<Vec<_>>(), [("id", "7"), ("type", "")]);
        assert_eq!((made.attr("type"), made.attr("to")), (Some(""), None));
    }

    #[test]
    fn rejects() {
        // XML 1.0 §3.1: `b='1'c='2'` lacks the white space between attributes.
        for bad in [
            &b"<a><b></a>"[..],
            b"<a>&x;</a>",
            b"<a/><b/>",
            b"<a b='1' b='2'/>",
            b"<a>\xc3</a>",
            b"<a b='1'c='2'/>",
            b"<a><b c=\"1\"d='2'/></a>",
        ] {
            assert!(StanzaHead::parse(bad, ns::CLIENT).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
