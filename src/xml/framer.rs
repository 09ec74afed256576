//! Incremental framing of an XMPP stream (RFC 6120 §4) over received bytes.
//!
//! The framer does no I/O: [`Framer::feed`] appends bytes, [`Framer::next`]
//! returns the next complete [`Event`] or `None` when more data is needed.
//! It tracks only tags, quotes and depth; each complete top-level element is
//! then checked for well-formedness by quick-xml (see [`super::head`]).
//! Only the partial element at the end is kept: when everything received has
//! been framed, the buffer is released so an idle connection holds none.

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The stream header's start tag, `<stream:stream ...>` (RFC 6120 §4.7).
    StreamOpen(Vec<u8>),
    /// One complete top-level element (a stanza or a negotiation element).
    Stanza(Vec<u8>),
    /// `</stream:stream>` (RFC 6120 §4.4).
    StreamClose,
}

/// Why the stream cannot go on; each maps to an RFC 6120 §4.9.3 condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// `<not-well-formed/>` (§4.9.3.13).
    #[error("not well-formed: {0}")]
    NotWellFormed(&'static str),
    /// `<restricted-xml/>` (§4.9.3.18, §11.1): comments, PIs, DTDs, entities.
    #[error("restricted XML: {0}")]
    Restricted(&'static str),
    /// `<policy-violation/>` (§4.9.3.15): a size or depth limit.
    #[error("policy violation: {0}")]
    PolicyViolation(&'static str),
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// Character data (or whitespace between elements).
    Text,
    /// Just after `<`.
    Lt,
    /// Inside a start or end tag.
    Tag { quote: u8, end: bool, slash: bool },
    /// Inside the `<?xml ...?>` declaration before the stream header.
    Decl { question: bool },
    /// After `<!`, matching `[CDATA[`.
    Bang(u8),
    /// Inside a CDATA section; counts trailing `]`.
    Cdata(u8),
}

/// The incremental framer.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Bytes before this index are framed and can be dropped.
    consumed: usize,
    /// Next byte to scan.
    pos: usize,
    state: State,
    /// 0 before the stream header, 1 inside the stream, more inside a stanza.
    depth: usize,
    /// Start of the current tag.
    tag_start: usize,
    /// Start of the current top-level element.
    stanza_start: usize,
    /// A top-level element has started and not yet ended.
    in_stanza: bool,
    /// The stream was closed; later bytes are ignored.
    closed: bool,
    max_stanza: usize,
    max_depth: usize,
    /// Attributes seen in the current tag (opening quotes counted).
    attrs: usize,
    /// Bytes of the current attribute value.
    attr_len: usize,
    max_attrs: usize,
    max_attr_size: usize,
    /// Whether runs of plain bytes are skipped in one step ([`Framer::skip_run`]);
    /// off only in the test that checks it against the byte-by-byte path.
    skip: bool,
}

/// Default for [`Framer::with_attr_limits`]: attributes per element.
pub const DEFAULT_MAX_ATTRS: usize = 64;
/// Default for [`Framer::with_attr_limits`]: bytes per attribute value.
pub const DEFAULT_MAX_ATTR_SIZE: usize = 16 * 1024;

const CDATA: &[u8] = b"[CDATA[";

impl Framer {
    /// A framer with a stanza size limit (bytes) and a depth limit (levels
    /// below the stanza element).
    pub fn new(max_stanza: usize, max_depth: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            consumed: 0,
            pos: 0,
            state: State::Text,
            depth: 0,
            tag_start: 0,
            stanza_start: 0,
            in_stanza: false,
            closed: false,
            max_stanza,
            max_depth,
            attrs: 0,
            attr_len: 0,
            max_attrs: DEFAULT_MAX_ATTRS,
            max_attr_size: DEFAULT_MAX_ATTR_SIZE,
            skip: true,
        }
    }

    /// Limit attributes per element and bytes per attribute value (as
    /// written); beyond either the stream gets `<policy-violation/>`.
    pub fn with_attr_limits(mut self, max_attrs: usize, max_attr_size: usize) -> Framer {
        self.max_attrs = max_attrs;
        self.max_attr_size = max_attr_size;
        self
    }

    /// Forget everything: a stream restart (RFC 6120 §5.4.3.3, §6.4.6).
    pub fn reset(&mut self) {
        *self = Framer::new(self.max_stanza, self.max_depth).with_attr_limits(self.max_attrs, self.max_attr_size);
    }

    /// Bytes held (partial element), for memory accounting.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// Append received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        if self.closed {
            return;
        }
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.pos -= self.consumed;
            self.tag_start = self.tag_start.saturating_sub(self.consumed);
            self.stanza_start = self.stanza_start.saturating_sub(self.consumed);
            self.consumed = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete event, `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, XmlError> {
        if self.skip && !self.closed {
            self.skip_run();
        }
        while self.pos < self.buf.len() && !self.closed {
            let i = self.pos;
            let b = self.buf[i];
            self.pos += 1;
            // RFC 6120 §11.1 / XML 1.0 §2.2: no control characters.
            if b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') {
                return Err(XmlError::NotWellFormed("control character"));
            }
            if let Some(ev) = self.step(i, b)? {
                self.release_if_idle();
                return Ok(Some(ev));
            }
            self.check_size(i)?;
            if self.skip {
                self.skip_run();
            }
        }
        self.release_if_idle();
        Ok(None)
    }

    /// Skip, in one step, the bytes that [`Framer::step`] would only count:
    /// character data inside a stanza (up to the next `<`), the inside of an
    /// attribute value (up to its closing quote or a `<`) and the rest of a
    /// tag between quotes (up to a quote, `>` or `<`). The run stops
    /// before any byte that would be an error (a control character, the
    /// stanza or attribute size limit), which is then met byte by byte, so
    /// the events and errors are those of the byte-by-byte path.
    fn skip_run(&mut self) {
        /// XML 1.0 §2.2, RFC 6120 §11.1: the control characters that are errors.
        fn control(b: u8) -> bool {
            b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')
        }
        let rest = &self.buf[self.pos..];
        let mut n = match self.state {
            // Character data can be long: a vectorised search for `<`, then
            // the control-character check over what it passed.
            State::Text if self.depth >= 2 => {
                let n = memchr::memchr(b'<', rest).unwrap_or(rest.len());
                // A pass without an early exit (vectorised) first; the exact
                // search only when some byte is below 0x20 (tab, newline...).
                let low = rest[..n].iter().fold(false, |low, &b| low | (b < 0x20));
                if low {
                    rest[..n].iter().position(|&b| control(b)).unwrap_or(n)
                } else {
                    n
                }
            }
            // Attribute values and the names between them are short: one
            // plain pass (a vectorised search costs more to set up here).
            State::Tag { quote, .. } if quote != 0 => {
                rest.iter().position(|&b| b == quote || b == b'<' || control(b)).unwrap_or(rest.len())
            }
            State::Tag { .. } => {
                rest.iter().position(|&b| matches!(b, b'\'' | b'"' | b'>' | b'<') || control(b)).unwrap_or(rest.len())
            }
            _ => return,
        };
        // The first byte past the stanza size limit (see `check_size`).
        let start = if self.in_stanza { self.stanza_start } else { self.tag_start };
        n = n.min((start + self.max_stanza).saturating_sub(self.pos));
        match self.state {
            State::Tag { quote: 0, end, slash } => {
                // As `step` would: `slash` tells whether the last byte that
                // is not white space was `/` (an empty-element tag, if `>`
                // follows).
                let slash = rest[..n].iter().rev().find(|b| !b.is_ascii_whitespace()).map_or(slash, |&b| b == b'/');
                self.state = State::Tag { quote: 0, end, slash };
            }
            State::Tag { .. } => {
                n = n.min(self.max_attr_size.saturating_sub(self.attr_len));
                self.attr_len += n;
            }
            _ => {}
        }
        self.pos += n;
    }

    fn check_size(&self, i: usize) -> Result<(), XmlError> {
        let start = if self.in_stanza {
            self.stanza_start
        } else if !matches!(self.state, State::Text) {
            self.tag_start
        } else {
            return Ok(());
        };
        if i + 1 - start > self.max_stanza {
            return Err(XmlError::PolicyViolation("stanza too large"));
        }
        Ok(())
    }

    fn release_if_idle(&mut self) {
        // After the closing tag the rest is ignored (RFC 6120 §4.4: nothing
        // follows it), so the bytes that came with it are not held either.
        let idle = matches!(self.state, State::Text) && self.depth <= 1 && self.pos == self.buf.len();
        if idle || self.closed {
            // Nothing partial is held: drop the buffer (DESIGN.md: no read
            // buffer held while idle).
            self.buf = Vec::new();
            self.pos = 0;
            self.consumed = 0;
            self.tag_start = 0;
            self.stanza_start = 0;
        }
    }

    fn step(&mut self, i: usize, b: u8) -> Result<Option<Event>, XmlError> {
        match self.state {
            State::Text => {
                if b == b'<' {
                    self.tag_start = i;
                    self.attrs = 0;
                    self.state = State::Lt;
                } else if self.depth <= 1 {
                    if !b.is_ascii_whitespace() {
                        return Err(XmlError::NotWellFormed("character data outside a stanza"));
                    }
                    // Whitespace keepalive (RFC 6120 §4.6.1): consumed.
                    self.consumed = i + 1;
                }
            }
            State::Lt => match b {
                b'/' => self.state = State::Tag { quote: 0, end: true, slash: false },
                b'?' => {
                    if self.depth == 0 {
                        self.state = State::Decl { question: false };
                    } else {
                        return Err(XmlError::Restricted("processing instructions are not allowed"));
                    }
                }
                b'!' => {
                    if self.depth >= 2 {
                        self.state = State::Bang(0);
                    } else {
                        return Err(XmlError::Restricted("comments and DTDs are not allowed"));
                    }
                }
                b'>' | b'<' | b' ' | b'\t' | b'\r' | b'\n' | b'=' | b'"' | b'\'' => {
                    return Err(XmlError::NotWellFormed("invalid tag"));
                }
                _ => {
                    if self.depth == 1 {
                        self.stanza_start = self.tag_start;
                        self.in_stanza = true;
                    }
                    self.state = State::Tag { quote: 0, end: false, slash: false };
                }
            },
            State::Tag { quote, end, slash } => {
                if quote != 0 {
                    if b == quote {
                        self.state = State::Tag { quote: 0, end, slash: false };
                    } else if b == b'<' {
                        return Err(XmlError::NotWellFormed("'<' in attribute value"));
                    } else {
                        self.attr_len += 1;
                        if self.attr_len > self.max_attr_size {
                            return Err(XmlError::PolicyViolation("attribute value too long"));
                        }
                    }
                } else if b == b'"' || b == b'\'' {
                    self.attrs += 1;
                    self.attr_len = 0;
                    if self.attrs > self.max_attrs {
                        return Err(XmlError::PolicyViolation("too many attributes"));
                    }
                    self.state = State::Tag { quote: b, end, slash: false };
                } else if b == b'<' {
                    return Err(XmlError::NotWellFormed("'<' inside a tag"));
                } else if b == b'>' {
                    self.state = State::Text;
                    return self.tag_done(i, end, slash);
                } else if !b.is_ascii_whitespace() {
                    self.state = State::Tag { quote: 0, end, slash: b == b'/' };
                }
            }
            State::Decl { question } => {
                if question && b == b'>' {
                    self.state = State::Text;
                    self.consumed = i + 1;
                } else {
                    self.state = State::Decl { question: b == b'?' };
                }
            }
            State::Bang(n) => {
                if b == CDATA[n as usize] {
                    self.state = if n as usize + 1 == CDATA.len() { State::Cdata(0) } else { State::Bang(n + 1) };
                } else if n == 0 {
                    return Err(XmlError::Restricted("comments and DTDs are not allowed"));
                } else {
                    return Err(XmlError::NotWellFormed("bad CDATA section"));
                }
            }
            State::Cdata(n) => {
                self.state = match (b, n) {
                    (b']', _) => State::Cdata((n + 1).min(2)),
                    (b'>', 2) => State::Text,
                    _ => State::Cdata(0),
                };
            }
        }
        Ok(None)
    }

    fn tag_done(&mut self, i: usize, end: bool, slash: bool) -> Result<Option<Event>, XmlError> {
        if end {
            match self.depth {
                0 => return Err(XmlError::NotWellFormed("end tag before the stream header")),
                1 => {
                    // RFC 6120 §4.4: the closing stream tag.
                    self.depth = 0;
                    self.closed = true;
                    self.consumed = i + 1;
                    return Ok(Some(Event::StreamClose));
                }
                2 => {
                    self.depth = 1;
                    return Ok(Some(self.take_stanza(i)));
                }
                _ => self.depth -= 1,
            }
        } else if slash {
            match self.depth {
                0 => return Err(XmlError::NotWellFormed("empty stream header")),
                1 => return Ok(Some(self.take_stanza(i))),
                _ => {}
            }
        } else if self.depth == 0 {
            self.depth = 1;
            let tag = self.buf[self.tag_start..=i].to_vec();
            self.consumed = i + 1;
            return Ok(Some(Event::StreamOpen(tag)));
        } else {
            self.depth += 1;
            if self.depth - 1 > self.max_depth {
                return Err(XmlError::PolicyViolation("elements nested too deeply"));
            }
        }
        Ok(None)
    }

    fn take_stanza(&mut self, i: usize) -> Event {
        let bytes = self.buf[self.stanza_start..=i].to_vec();
        self.consumed = i + 1;
        self.in_stanza = false;
        Event::Stanza(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(f: &mut Framer) -> Result<Vec<Event>, XmlError> {
        let mut v = Vec::new();
        while let Some(e) = f.next_event()? {
            v.push(e);
        }
        Ok(v)
    }

    const STREAM: &[u8] = b"<?xml version='1.0'?><stream:stream to='x' xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' version='1.0'> \
        <message to='a@x'><body>hi &amp; a&gt;b</body></message>\n<presence/>\
        <iq type='get' id='1'><q a='>'/><![CDATA[ <x> ]] ]]></iq></stream:stream>";

    fn expected() -> Vec<Event> {
        vec![
            Event::StreamOpen(
                b"<stream:stream to='x' xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
                    .to_vec(),
            ),
            Event::Stanza(b"<message to='a@x'><body>hi &amp; a&gt;b</body></message>".to_vec()),
            Event::Stanza(b"<presence/>".to_vec()),
            Event::Stanza(b"<iq type='get' id='1'><q a='>'/><![CDATA[ <x> ]] ]]></iq>".to_vec()),
            Event::StreamClose,
        ]
    }

    #[test]
    fn frames_whole_stream() {
        let mut f = Framer::new(1 << 16, 16);
        f.feed(STREAM);
        assert_eq!(all(&mut f).unwrap(), expected());
    }

    #[test]
    fn any_split_gives_same_events() {
        for split in 1..STREAM.len() {
            let mut f = Framer::new(1 << 16, 16);
            let mut got = Vec::new();
            for chunk in STREAM.chunks(split) {
                f.feed(chunk);
                got.extend(all(&mut f).unwrap());
            }
            assert_eq!(got, expected(), "chunk size {split}");
        }
    }

    #[test]
    fn releases_buffer_when_idle() {
        let mut f = Framer::new(1 << 16, 16);
        f.feed(&STREAM[..STREAM.len() - 20]);
        all(&mut f).unwrap();
        assert!(f.buffered() > 0);
        let mut f = Framer::new(1 << 16, 16);
        f.feed(b"<stream:stream>  <presence/> ");
        all(&mut f).unwrap();
        assert_eq!(f.buffered(), 0);
        assert_eq!(f.buf.capacity(), 0);
    }

    #[test]
    fn rejects_restricted_xml() {
        for bad in
            [&b"<stream:stream><!DOCTYPE x>"[..], b"<stream:stream><m><!-- c --></m>", b"<stream:stream><?pi x?>"]
        {
            let mut f = Framer::new(1 << 16, 16);
            f.feed(bad);
            assert!(matches!(all(&mut f), Err(XmlError::Restricted(_))), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn rejects_not_well_formed() {
        for bad in [&b"hello"[..], b"<stream:stream>text", b"<stream:stream><a b='<'>", b"<stream:stream><a\x01>"] {
            let mut f = Framer::new(1 << 16, 16);
            f.feed(bad);
            assert!(matches!(all(&mut f), Err(XmlError::NotWellFormed(_))), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn releases_what_follows_the_close() {
        // fuzz/regressions/xml/crash-0e30d6a0: bytes after the close were kept.
        let mut f = Framer::new(1024, 16);
        f.feed(b"<stream:stream><a/></stream:stream>");
        f.feed(&[b' '; 10]);
        let mut rest = b"</stream:stream>".to_vec();
        rest.extend_from_slice(&[b'x'; 4000]);
        let mut f2 = Framer::new(1024, 16);
        f2.feed(b"<stream:stream><a/>");
        f2.feed(&rest);
        for f in [&mut f, &mut f2] {
            assert_eq!(all(f).unwrap().last(), Some(&Event::StreamClose));
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn enforces_limits() {
        let mut f = Framer::new(1024, 16);
        f.feed(b"<stream:stream><message><body>");
        f.feed(&[b'a'; 2000]);
        assert_eq!(all(&mut f), Err(XmlError::PolicyViolation("stanza too large")));
        let mut f = Framer::new(1 << 16, 3);
        f.feed(b"<stream:stream><a><b><c><d><e>");
        assert_eq!(all(&mut f), Err(XmlError::PolicyViolation("elements nested too deeply")));
        let mut f = Framer::new(1024, 16);
        f.feed(b"<stream:stream ");
        f.feed(&[b' '; 2000]);
        assert!(matches!(all(&mut f), Err(XmlError::PolicyViolation(_))));
    }

    #[test]
    fn enforces_attribute_limits() {
        let mut f = Framer::new(1 << 20, 16).with_attr_limits(3, 8);
        f.feed(b"<stream:stream a='1' b=\"2\" c='3'><m x='12345678'/>");
        assert_eq!(all(&mut f).unwrap().len(), 2, "at the limits");
        f.feed(b"<m a='1' b='2' c='3' d='4'/>");
        assert_eq!(all(&mut f), Err(XmlError::PolicyViolation("too many attributes")));
        let mut f = Framer::new(1 << 20, 16).with_attr_limits(3, 8);
        f.feed(b"<stream:stream><m x='123456789'/>");
        assert_eq!(all(&mut f), Err(XmlError::PolicyViolation("attribute value too long")));
        // The limits survive a stream restart.
        let mut f = Framer::new(1 << 20, 16).with_attr_limits(1, 8);
        f.reset();
        f.feed(b"<stream:stream a='1' b='2'>");
        assert_eq!(all(&mut f), Err(XmlError::PolicyViolation("too many attributes")));
    }

    #[test]
    fn huge_text_and_endless_tags_stay_bounded() {
        // A text node without '<', a start tag that never ends, endless
        // attributes: each is cut at the stanza size, holding no more.
        let attrs: Vec<u8> = b" a='b'".iter().cycle().take(6 * 1000).copied().collect();
        for (head, filler) in [
            (&b"<stream:stream><message><body>"[..], vec![b'x'; 16 * 1024]),
            (b"<stream:stream><message to='a@b' ", vec![b' '; 16 * 1024]),
            (b"<stream:stream><message ", attrs),
        ] {
            let mut f = Framer::new(4096, 16).with_attr_limits(1000, 1024);
            f.feed(head);
            let mut err = None;
            for chunk in filler.chunks(512) {
                f.feed(chunk);
                if let Err(e) = all(&mut f) {
                    err = Some(e);
                    break;
                }
                assert!(f.buffered() <= 4096 + 512, "{}", f.buffered());
            }
            assert!(matches!(err, Some(XmlError::PolicyViolation(_))), "{err:?}");
        }
    }

    /// Skipping runs ([`Framer::skip_run`]) gives the same events and the
    /// same error, at the same point, as the byte-by-byte path, for streams
    /// built from the tokens that matter to it, split anywhere, with small
    /// limits so that every limit is met inside a run.
    #[test]
    fn skipping_runs_matches_byte_by_byte() {
        use proptest::prelude::*;
        const TOKENS: &[&[u8]] = &[
            b"<m a='",
            b"<body>",
            b"</body>",
            b"</m>",
            b"<x/>",
            b"'",
            b"\"",
            b"<",
            b">",
            b"/",
            b"text ",
            b"xxxxxxxxxxxxxxxx",
            b" ",
            b"\n",
            b"\t",
            b"\x01",
            b"\x1f",
            b"&amp;",
            b"<![CDATA[",
            b"]]>",
            b"]",
            b"<!-- c -->",
            b"<?pi?>",
            b"=",
            b"</stream:stream>",
            b"\xc3\xa9",
        ];
        let stream = (
            proptest::collection::vec(0..TOKENS.len(), 0..60),
            1usize..40,
            8usize..300,
            1usize..8,
            1usize..40,
            1usize..6,
        );
        proptest!(ProptestConfig::with_cases(3000), |((toks, split, max_stanza, max_attrs, max_attr, depth) in stream)| {
            let mut input = b"<stream:stream a='1'>".to_vec();
            for t in toks {
                input.extend_from_slice(TOKENS[t]);
            }
            let run = |skip: bool| {
                let mut f = Framer::new(max_stanza, depth).with_attr_limits(max_attrs, max_attr);
                f.skip = skip;
                let mut out = Vec::new();
                for chunk in input.chunks(split) {
                    f.feed(chunk);
                    loop {
                        match f.next_event() {
                            Ok(Some(e)) => out.push(Ok(e)),
                            Ok(None) => break,
                            Err(e) => {
                                out.push(Err(e));
                                return (out, f.buffered());
                            }
                        }
                    }
                }
                (out, f.buffered())
            };
            prop_assert_eq!(run(true), run(false));
        });
    }
}
