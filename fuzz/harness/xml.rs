//! Fuzz harness for the XML stream framer (`xmppd::xml::Framer`), the
//! stanza validator (`StanzaHead`) and the element tree (`Element`).
//!
//! Oracles (each a panic when violated):
//! - no panic, hang or unbounded buffer on any input (RFC 6120 §11.1: the
//!   server must survive any XML a client sends);
//! - the framer gives the same events and error whether the bytes arrive
//!   whole or in chunks (TCP may split a stream anywhere, RFC 6120 §4.1);
//! - the framer never holds more than the stanza limit;
//! - a stanza whose start tag is rewritten with the server's `from`
//!   (RFC 6120 §8.1.2.1) still validates, with that `from` and no other;
//! - an element tree serialised and parsed again is the same tree.
//!
//! The first input byte seeds the chunk sizes; the rest is the stream.

use xmppd::xml::{ns, Element, Event, Framer, Node, StanzaHead, XmlError};

/// Stanza size limit used by the harness (small, so the limit is reached).
pub const MAX_STANZA: usize = 2048;
/// Depth limit used by the harness.
pub const MAX_DEPTH: usize = 8;

/// Frame `data` fed in the given chunks: the events until the first error.
pub fn frame<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<Event>, Option<XmlError>) {
    let mut f = Framer::new(MAX_STANZA, MAX_DEPTH);
    let mut events = Vec::new();
    for chunk in chunks {
        f.feed(chunk);
        loop {
            match f.next_event() {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
        assert!(f.buffered() <= MAX_STANZA, "framer holds {} bytes, limit {MAX_STANZA}", f.buffered());
    }
    (events, None)
}

/// Split `data` into chunks of pseudo-random sizes (1..=64) seeded by `seed`.
pub fn chunks(data: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut state = u32::from(seed) | 1;
    let mut rest = data;
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = ((state >> 16) as usize % 64 + 1).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

/// Adjacent text nodes merged, so trees compare after a round trip.
fn normalise(e: &Element) -> Element {
    let mut out = Element { children: Vec::new(), ..e.clone() };
    for c in &e.children {
        match (c, out.children.last_mut()) {
            (Node::Text(t), Some(Node::Text(prev))) => prev.push_str(t),
            (Node::Text(t), _) => out.children.push(Node::Text(t.clone())),
            (Node::Element(child), _) => out.children.push(Node::Element(normalise(child))),
        }
    }
    out.children.retain(|c| !matches!(c, Node::Text(t) if t.is_empty()));
    out
}

/// Check one framed stanza.
pub fn check_stanza(bytes: &[u8]) {
    const FROM: &str = "fuzz@localhost/r";
    if let Ok(head) = StanzaHead::parse(bytes, ns::CLIENT) {
        let out = head.rewrite(bytes, FROM, Some("peer@localhost"));
        let again = StanzaHead::parse(&out, ns::CLIENT)
            .unwrap_or_else(|e| panic!("rewritten stanza does not validate ({e}): {}", String::from_utf8_lossy(&out)));
        assert_eq!(again.name, head.name);
        assert_eq!(again.ns, head.ns);
        assert_eq!(again.attr("from"), Some(FROM), "from not stamped");
        assert_eq!(again.attrs().filter(|(k, _)| *k == "from").count(), 1, "two from attributes");
        assert_eq!(again.attr("to"), Some("peer@localhost"));
    }
    if let Ok(el) = Element::parse(bytes, ns::CLIENT) {
        let s = el.to_client_string();
        let back = Element::parse(s.as_bytes(), ns::CLIENT)
            .unwrap_or_else(|e| panic!("serialised tree does not parse ({e}): {s}"));
        assert_eq!(normalise(&back), normalise(&el), "round trip changed the tree: {s}");
    }
}

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    let Some((&seed, body)) = data.split_first() else { return };
    let whole = frame(std::iter::once(body));
    let split = frame(chunks(body, seed).into_iter());
    assert_eq!(whole, split, "chunking changed the framer's output (seed {seed})");
    for ev in &whole.0 {
        if let Event::Stanza(b) = ev {
            check_stanza(b);
        }
    }
}
