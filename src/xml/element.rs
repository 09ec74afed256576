//! A small element tree for what the server reads (negotiation elements and
//! stanzas addressed to it) and builds (replies, errors).

use super::framer::XmlError;
use super::ns;
use quick_xml::events::{BytesStart, Event as QEvent};
use quick_xml::Reader;
use std::borrow::Cow;

/// An element with its resolved namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    /// Local name (prefix removed).
    pub name: String,
    /// Resolved namespace URI.
    pub ns: String,
    /// Attributes other than the default `xmlns`, values unescaped.
    pub attrs: Vec<(String, String)>,
    /// Child elements and text.
    pub children: Vec<Node>,
}

/// A child of an element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data, unescaped.
    Text(String),
}

/// An element's local name, namespace and attributes, as [`Scopes::enter`] resolves them.
pub(crate) type Resolved = (String, String, Vec<(String, String)>);

/// One level of namespace scope: a default namespace declared here (`None`:
/// inherited) and the prefixes bound here. A level that declares nothing
/// allocates nothing.
#[derive(Default)]
struct Frame {
    default: Option<String>,
    prefixes: Vec<(String, String)>,
}

/// Namespace scopes while reading, one [`Frame`] per open element.
pub(crate) struct Scopes<'a> {
    /// The document's default namespace (below every frame).
    root: &'a str,
    stack: Vec<Frame>,
}

impl<'a> Scopes<'a> {
    pub(crate) fn new(default_ns: &'a str) -> Scopes<'a> {
        Scopes { root: default_ns, stack: Vec::new() }
    }

    /// The default namespace in scope (the nearest declaration).
    fn default_ns(&self) -> &str {
        self.stack.iter().rev().find_map(|f| f.default.as_deref()).unwrap_or(self.root)
    }

    /// The namespace bound to `prefix`, looking at `frame` (the element's
    /// own declarations) first.
    fn resolve<'s>(&'s self, frame: &'s Frame, prefix: &str) -> Option<&'s str> {
        std::iter::once(frame)
            .chain(self.stack.iter().rev())
            .flat_map(|f| f.prefixes.iter().rev())
            .find(|(k, _)| k == prefix)
            .map(|(_, v)| v.as_str())
    }

    /// Check an element's attributes (well-formed, no duplicates, known
    /// entities, allowed characters) and collect its namespace declarations;
    /// every attribute but `xmlns` is also handed to `keep` (name, value).
    fn scan(start: &BytesStart<'_>, mut keep: impl FnMut(&str, Cow<'_, str>)) -> Result<Frame, XmlError> {
        let mut frame = Frame::default();
        check_attr_spacing(start.attributes_raw())?;
        for a in start.attributes().with_checks(true) {
            let a = a.map_err(|_| XmlError::NotWellFormed("bad attribute"))?;
            let key = std::str::from_utf8(a.key.as_ref()).map_err(|_| XmlError::NotWellFormed("invalid UTF-8"))?;
            check_qname(key)?;
            let value = a.unescape_value().map_err(|_| XmlError::Restricted("unknown entity reference"))?;
            check_chars(&value)?;
            if key == "xmlns" {
                frame.default = Some(value.into_owned());
                continue;
            }
            if let Some(p) = key.strip_prefix("xmlns:") {
                frame.prefixes.push((p.to_string(), value.to_string()));
            }
            keep(key, value);
        }
        Ok(frame)
    }

    /// Enter an element: returns (local name, namespace, attributes).
    pub(crate) fn enter(&mut self, start: &BytesStart<'_>) -> Result<Resolved, XmlError> {
        let mut attrs = Vec::new();
        let (name, ns) = self.enter_with(start, |k, v| attrs.push((k.to_string(), v.into_owned())))?;
        Ok((name, ns, attrs))
    }

    /// Enter an element, handing its attributes (but `xmlns`) to `keep`:
    /// returns (local name, namespace).
    pub(crate) fn enter_with(
        &mut self,
        start: &BytesStart<'_>,
        keep: impl FnMut(&str, Cow<'_, str>),
    ) -> Result<(String, String), XmlError> {
        let frame = Scopes::scan(start, keep)?;
        let name = start.name();
        let qname = std::str::from_utf8(name.as_ref()).map_err(|_| XmlError::NotWellFormed("invalid UTF-8"))?;
        let (local, ns) = match check_qname(qname)? {
            Some((p, l)) => {
                let ns = self.resolve(&frame, p).ok_or(XmlError::NotWellFormed("undeclared namespace prefix"))?;
                (l.to_string(), ns.to_string())
            }
            None => (qname.to_string(), frame.default.as_deref().unwrap_or(self.default_ns()).to_string()),
        };
        self.stack.push(frame);
        Ok((local, ns))
    }

    /// Enter an element only to validate it (as `enter` does), building
    /// nothing: for the descendants of a stanza that is forwarded as bytes.
    pub(crate) fn enter_checked(&mut self, start: &BytesStart<'_>) -> Result<(), XmlError> {
        let frame = Scopes::scan(start, |_, _| {})?;
        let name = start.name();
        let qname = std::str::from_utf8(name.as_ref()).map_err(|_| XmlError::NotWellFormed("invalid UTF-8"))?;
        if let Some((p, _)) = check_qname(qname)? {
            self.resolve(&frame, p).ok_or(XmlError::NotWellFormed("undeclared namespace prefix"))?;
        }
        self.stack.push(frame);
        Ok(())
    }

    /// The default namespace declared on the element entered last.
    pub(crate) fn declared_default(&self) -> Option<&str> {
        self.stack.last().and_then(|f| f.default.as_deref())
    }

    pub(crate) fn leave(&mut self) {
        self.stack.pop();
    }
}

/// XML 1.0 §3.1 [40]/[44]: attributes are separated by white space.
/// quick-xml reads `a='1'b='2'` as two attributes; the descendants of a
/// routed stanza are forwarded as bytes, so that would reach a recipient
/// whose stricter parser ends its stream on it. `raw` is a start tag after
/// its name, without the `/` of an empty-element tag.
fn check_attr_spacing(raw: &[u8]) -> Result<(), XmlError> {
    let mut quote = None;
    let mut closed = false;
    for &b in raw {
        if closed && !b.is_ascii_whitespace() {
            return Err(XmlError::NotWellFormed("no white space between attributes"));
        }
        closed = false;
        match quote {
            Some(q) if b == q => {
                quote = None;
                closed = true;
            }
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None => {}
        }
    }
    Ok(())
}

/// Namespaces in XML 1.0 §4: `QName ::= PrefixedName | UnprefixedName`,
/// `PrefixedName ::= Prefix ':' LocalPart`, and neither part (an NCName, §3)
/// contains a colon. So a name has at most one colon, with something on
/// both sides; anything else is not namespace-well-formed (§7), which
/// RFC 6120 §11.4 / §4.9.3.13 answers with `<not-well-formed/>`. Returns the
/// (prefix, local part) of a prefixed name. Without this `<x:y: .../>`
/// would be read as local name `y:` and serialised into a name that does not
/// parse again.
pub(crate) fn check_qname(qname: &str) -> Result<Option<(&str, &str)>, XmlError> {
    let bad = XmlError::NotWellFormed("name is not a QName");
    // A byte search: `split_once(':')` sets up a searcher that costs more
    // than these short names take to scan.
    match qname.bytes().position(|b| b == b':').map(|i| (&qname[..i], &qname[i + 1..])) {
        None if is_ncname(qname) => Ok(None),
        Some((p, l)) if is_ncname(p) && is_ncname(l) => Ok(Some((p, l))),
        _ => Err(bad),
    }
}

/// Namespaces in XML 1.0 §3: `NCName ::= Name - (Char* ':' Char*)`, with
/// XML 1.0 §2.3's NameStartChar and NameChar. quick-xml does not check name
/// characters: `<x:/ .../>` would otherwise be an element named `/`.
fn is_ncname(s: &str) -> bool {
    // The usual name is ASCII letters, digits, `-`, `.` and `_`: decided on
    // bytes, as `ncname_by_chars` decides it for those characters.
    let b = s.as_bytes();
    if b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_')) {
        return b.first().is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_');
    }
    ncname_by_chars(s)
}

/// [`is_ncname`] by XML 1.0 §2.3's character classes.
fn ncname_by_chars(s: &str) -> bool {
    fn start(c: char) -> bool {
        matches!(c, 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
            | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}'
            | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
            | '\u{10000}'..='\u{EFFFF}')
    }
    fn rest(c: char) -> bool {
        start(c) || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
    }
    let mut chars = s.chars();
    chars.next().is_some_and(start) && chars.all(rest)
}

/// XML 1.0 §2.2 Char: rejects control characters that arrive as references.
pub(crate) fn check_chars(s: &str) -> Result<(), XmlError> {
    // Bytewise: controls are single bytes; U+FFFE/U+FFFF start with 0xEF.
    // One pass without an early exit (vectorised) tells whether a closer
    // look is needed: most text has neither.
    let b = s.as_bytes();
    let (low, ef) = b.iter().fold((false, false), |(low, ef), &c| (low | (c < 0x20), ef | (c == 0xEF)));
    if (low && b.iter().any(|&c| c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r')))
        || (ef && (s.contains('\u{FFFE}') || s.contains('\u{FFFF}')))
    {
        return Err(XmlError::NotWellFormed("invalid character"));
    }
    Ok(())
}

/// A quick-xml reader over one complete element.
pub(crate) fn reader(bytes: &[u8]) -> Result<Reader<&[u8]>, XmlError> {
    std::str::from_utf8(bytes).map_err(|_| XmlError::NotWellFormed("invalid UTF-8"))?;
    let mut r = Reader::from_reader(bytes);
    r.config_mut().check_end_names = true;
    Ok(r)
}

impl Element {
    /// A new empty element.
    pub fn new(name: &str, ns: &str) -> Element {
        Element { name: name.into(), ns: ns.into(), attrs: Vec::new(), children: Vec::new() }
    }

    /// Builder: add an attribute.
    pub fn with_attr(mut self, k: &str, v: impl Into<String>) -> Element {
        self.set_attr(k, v);
        self
    }

    /// Builder: add a child.
    pub fn with_child(mut self, c: Element) -> Element {
        self.children.push(Node::Element(c));
        self
    }

    /// Builder: add text.
    pub fn with_text(mut self, t: impl Into<String>) -> Element {
        self.children.push(Node::Text(t.into()));
        self
    }

    /// Set or replace an attribute.
    pub fn set_attr(&mut self, k: &str, v: impl Into<String>) {
        let v = v.into();
        match self.attrs.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v,
            None => self.attrs.push((k.to_string(), v)),
        }
    }

    /// Remove an attribute.
    pub fn remove_attr(&mut self, k: &str) {
        self.attrs.retain(|(key, _)| key != k);
    }

    /// An attribute's value.
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    /// Whether this is `name` in `ns`.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// Child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child `name` in `ns`.
    pub fn child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(name, ns))
    }

    /// Concatenated text children.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|c| match c {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    /// Parse one complete element; `default_ns` is the stream's (jabber:client).
    pub fn parse(bytes: &[u8], default_ns: &str) -> Result<Element, XmlError> {
        let mut r = reader(bytes)?;
        let mut scopes = Scopes::new(default_ns);
        let mut stack: Vec<Element> = Vec::new();
        loop {
            let ev = r.read_event().map_err(|_| XmlError::NotWellFormed("malformed element"))?;
            match ev {
                QEvent::Start(s) => {
                    let (name, ns, attrs) = scopes.enter(&s)?;
                    stack.push(Element { name, ns, attrs, children: Vec::new() });
                }
                QEvent::Empty(s) => {
                    let (name, ns, attrs) = scopes.enter(&s)?;
                    scopes.leave();
                    let e = Element { name, ns, attrs, children: Vec::new() };
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Node::Element(e)),
                        None => return finish(Some(e), &mut r),
                    }
                }
                QEvent::End(_) => {
                    scopes.leave();
                    let e = stack.pop().ok_or(XmlError::NotWellFormed("unbalanced end tag"))?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Node::Element(e)),
                        None => return finish(Some(e), &mut r),
                    }
                }
                QEvent::Text(t) => {
                    let s = t.unescape().map_err(|_| XmlError::Restricted("unknown entity reference"))?;
                    check_chars(&s)?;
                    match stack.last_mut() {
                        Some(p) => push_text(p, &s),
                        None if s.trim().is_empty() => {}
                        None => return Err(XmlError::NotWellFormed("text outside the element")),
                    }
                }
                QEvent::CData(c) => {
                    let s = std::str::from_utf8(&c).map_err(|_| XmlError::NotWellFormed("invalid UTF-8"))?;
                    check_chars(s)?;
                    let p = stack.last_mut().ok_or(XmlError::NotWellFormed("CDATA outside the element"))?;
                    push_text(p, s);
                }
                QEvent::Eof => return Err(XmlError::NotWellFormed("unexpected end of element")),
                QEvent::Comment(_) | QEvent::DocType(_) | QEvent::PI(_) | QEvent::Decl(_) => {
                    return Err(XmlError::Restricted("comments, PIs and DTDs are not allowed"));
                }
            }
        }
    }

    /// Serialise, declaring `xmlns` where it differs from `parent_ns`.
    pub fn write_to(&self, out: &mut String, parent_ns: &str) {
        out.push('<');
        out.push_str(&self.name);
        if self.ns != parent_ns {
            out.push_str(" xmlns='");
            out.push_str(&super::escape(&self.ns));
            out.push('\'');
        }
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("='");
            out.push_str(&super::escape(v));
            out.push('\'');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for c in &self.children {
            match c {
                Node::Element(e) => e.write_to(out, &self.ns),
                Node::Text(t) => out.push_str(&super::escape(t)),
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }

    /// Serialise as a top-level element of a client stream.
    pub fn to_client_string(&self) -> String {
        let mut s = String::with_capacity(128);
        self.write_to(&mut s, ns::CLIENT);
        s
    }
}

fn push_text(p: &mut Element, s: &str) {
    if let Some(Node::Text(t)) = p.children.last_mut() {
        t.push_str(s);
    } else {
        p.children.push(Node::Text(s.to_string()));
    }
}

fn finish(e: Option<Element>, r: &mut Reader<&[u8]>) -> Result<Element, XmlError> {
    // Only whitespace may follow the element.
    loop {
        match r.read_event().map_err(|_| XmlError::NotWellFormed("malformed element"))? {
            QEvent::Eof => return e.ok_or(XmlError::NotWellFormed("no element")),
            QEvent::Text(t) if t.iter().all(|b| b.is_ascii_whitespace()) => {}
            _ => return Err(XmlError::NotWellFormed("content after the element")),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ascii_names_decided_on_bytes_as_by_the_character_classes() {
        let ascii: Vec<char> = (0x20u8..0x7f).map(char::from).collect();
        let mut names = vec![String::new()];
        for &a in &ascii {
            names.push(a.to_string());
            for &b in &ascii {
                names.push(format!("{a}{b}"));
                names.push(format!("{a}x{b}"));
            }
        }
        for n in names {
            assert_eq!(is_ncname(&n), ncname_by_chars(&n), "{n:?}");
        }
    }

    use super::*;

    #[test]
    fn parses_with_namespaces() {
        let e = Element::parse(
            b"<iq type='get' id='a&amp;b'><query xmlns='jabber:iq:roster'><item jid='x'/>t<![CDATA[<c>]]></query>\
              <p:x xmlns:p='urn:p'/></iq>",
            ns::CLIENT,
        )
        .unwrap();
        assert!(e.is("iq", ns::CLIENT));
        assert_eq!(e.attr("id"), Some("a&b"));
        let q = e.child("query", ns::ROSTER).unwrap();
        assert_eq!(q.child("item", ns::ROSTER).unwrap().attr("jid"), Some("x"));
        assert_eq!(q.text(), "t<c>");
        assert!(e.child("x", "urn:p").is_some());
        let e = Element::parse("<é-1.x xmlns='urn:e' ü·\u{300}='1' xml:lang='de'/>".as_bytes(), ns::CLIENT).unwrap();
        assert_eq!((e.name.as_str(), e.attr("ü·\u{300}")), ("é-1.x", Some("1")));
    }

    #[test]
    fn roundtrip() {
        let e = Element::new("message", ns::CLIENT)
            .with_attr("to", "a'b")
            .with_child(Element::new("body", ns::CLIENT).with_text("1 < 2 & 3"))
            .with_child(Element::new("ping", ns::PING));
        let s = e.to_client_string();
        assert_eq!(s, "<message to='a&apos;b'><body>1 &lt; 2 &amp; 3</body><ping xmlns='urn:xmpp:ping'/></message>");
        assert_eq!(Element::parse(s.as_bytes(), ns::CLIENT).unwrap(), e);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            &b"<a><b></a>"[..],
            b"<a>&ent;</a>",
            b"<a x='1' x='2'/>",
            b"<p:a/>",
            b"<a>&#1;</a>",
            b"<a>\xff</a>",
            b"<a/><b/>",
            b"<a>",
            // Namespaces in XML §4: not QNames (element and attribute names).
            b"<x:y: xmlns:x='urn:x'/>",
            b"<a><x:y:z xmlns:x='urn:x'/></a>",
            b"<:a xmlns:=''/>",
            b"<a: xmlns:a='urn:a'/>",
            b"<a x:b:c='1' xmlns:x='urn:x'/>",
            b"<a :b='1'/>",
            b"<a b:='1'/>",
            b"<a xmlns:='urn:x'/>",
            // §3 NCName / XML 1.0 §2.3: name characters.
            b"<x:/ xmlns:x='urn:x'/>",
            b"<a><x:1 xmlns:x='urn:x'/></a>",
            b"<a -b='1'/>",
            b"<a b\xc2\xa0c='1'/>",
        ] {
            assert!(Element::parse(bad, ns::CLIENT).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
