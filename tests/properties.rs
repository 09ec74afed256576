//! Property tests (proptest).
//!
//! - The stream framer (RFC 6120 §4: an XML stream is one document sent
//!   over TCP, which may split it at any byte): any split of a valid stream
//!   into chunks gives the same events as feeding it whole, and each framed
//!   stanza parses to the element that was generated.
//! - JIDs (RFC 7622): parse/display round trips, case mapping of the
//!   localpart and domainpart only, the first `/` starting the resource.

use proptest::prelude::*;
use xmppd::jid::{normalize_node, Jid};
use xmppd::xml::{ns, Element, Event, Framer, Node};

/// A generated element and the exact bytes written for it.
#[derive(Clone, Debug)]
struct Gen {
    tree: Element,
    /// The start tag without its closing `>` or `/>`.
    head: String,
    bytes: String,
}

const NAMES: &[&str] = &["message", "presence", "iq", "body", "x", "query", "item", "group", "a-b.c_d"];

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES).prop_map(str::to_string)
}

/// Text with markup-significant characters, written escaped (XML 1.0 §2.4).
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 <>&'\"/=\\]\\[\u{e9}\u{263a}\u{1F600}]{1,12}"
}

fn escape_text(s: &str, cdata: bool) -> String {
    if cdata && !s.contains("]]>") {
        // XML 1.0 §2.7: CDATA content is taken as it is.
        format!("<![CDATA[{s}]]>")
    } else {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    }
}

/// An attribute value quoted with `q`; `>` and `/` are legal inside values.
fn attr_xml(k: &str, v: &str, q: char) -> String {
    let v = v.replace('&', "&amp;").replace('<', "&lt;");
    let v = if q == '\'' { v.replace('\'', "&apos;") } else { v.replace('"', "&quot;") };
    format!(" {k}={q}{v}{q}")
}

fn leaf() -> impl Strategy<Value = Gen> {
    (name(), prop::collection::vec(("[a-z]{1,3}", text(), any::<bool>()), 0..3), any::<bool>()).prop_map(
        |(n, attrs, self_closing)| {
            let mut tree = Element::new(&n, ns::CLIENT);
            let mut head = format!("<{n}");
            for (i, (k, v, dq)) in attrs.into_iter().enumerate() {
                // Attribute names are unique within an element (XML 1.0 §3.1).
                let k = format!("{k}{i}");
                head.push_str(&attr_xml(&k, &v, if dq { '"' } else { '\'' }));
                tree.attrs.push((k, v));
            }
            let bytes = if self_closing { format!("{head}/>") } else { format!("{head}></{n}>") };
            Gen { tree, head, bytes }
        },
    )
}

/// Elements nested up to four levels, with text and CDATA between children.
fn element() -> impl Strategy<Value = Gen> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        (leaf(), prop::collection::vec((inner, prop::option::of((text(), any::<bool>()))), 1..4)).prop_map(
            |(parent, kids)| {
                let mut tree = parent.tree.clone();
                let n = tree.name.clone();
                let mut bytes = format!("{}>", parent.head);
                for (kid, t) in kids {
                    bytes.push_str(&kid.bytes);
                    tree.children.push(Node::Element(kid.tree));
                    if let Some((t, cdata)) = t {
                        bytes.push_str(&escape_text(&t, cdata));
                        tree.children.push(Node::Text(t));
                    }
                }
                bytes.push_str(&format!("</{n}>"));
                Gen { tree, head: parent.head, bytes }
            },
        )
    })
}

/// A whole stream: optional XML declaration, header, stanzas with
/// whitespace keepalives between them (RFC 6120 §4.6.1), optional close.
fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<Event>, Vec<Element>)> {
    let ws = prop::sample::select(vec!["", " ", "\n", "\r\n\t ", "   "]);
    (any::<bool>(), prop::collection::vec((ws, element()), 0..6), any::<bool>()).prop_map(|(decl, items, close)| {
        let header = "<stream:stream to='localhost' version=\"1.0\" xmlns='jabber:client' \
                      xmlns:stream='http://etherx.jabber.org/streams' id='a>b'>";
        let mut out = String::new();
        if decl {
            out.push_str("<?xml version='1.0' encoding='UTF-8'?>\n");
        }
        out.push_str(header);
        let mut events = vec![Event::StreamOpen(header.as_bytes().to_vec())];
        let mut trees = Vec::new();
        for (ws, g) in items {
            out.push_str(ws);
            out.push_str(&g.bytes);
            events.push(Event::Stanza(g.bytes.into_bytes()));
            trees.push(g.tree);
        }
        if close {
            out.push_str(" </stream:stream>");
            events.push(Event::StreamClose);
        }
        (out.into_bytes(), events, trees)
    })
}

fn feed_all<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Event> {
    let mut f = Framer::new(1 << 20, 32);
    let mut events = Vec::new();
    for c in chunks {
        f.feed(c);
        while let Some(ev) = f.next_event().expect("a valid stream frames without error") {
            events.push(ev);
        }
    }
    events
}

/// Split `data` at the given fractions of its length.
fn split_at<'a>(data: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
    at.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for a in at.into_iter().chain(std::iter::once(data.len())) {
        out.push(&data[prev..a]);
        prev = a;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_split_gives_the_same_events(
        (bytes, expected, trees) in stream(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let whole = feed_all([&bytes[..]]);
        prop_assert_eq!(&whole, &expected);
        let split = feed_all(split_at(&bytes, &cuts));
        prop_assert_eq!(&split, &expected);
        // Byte at a time, the worst case for a TCP reader.
        let bytewise = feed_all(bytes.chunks(1));
        prop_assert_eq!(&bytewise, &expected);
        let stanzas = whole.iter().filter_map(|e| match e { Event::Stanza(b) => Some(b), _ => None });
        for (b, tree) in stanzas.zip(&trees) {
            let parsed = Element::parse(b, ns::CLIENT).expect("framed stanza parses");
            prop_assert_eq!(&parsed, tree);
        }
    }
}

/// A localpart of letters, digits and the punctuation RFC 7622 §3.3.1 allows.
fn localpart() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._+=!$%*-]{1,20}"
}

/// A DNS-style domainpart, mixed case. No label has `--` in its third and
/// fourth places: RFC 5891 §4.2.3.1 keeps that for A-labels (`xn--`), which
/// must then be valid Punycode ("Xn--a" is rejected, rightly).
fn domainpart() -> impl Strategy<Value = String> {
    let label = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?"
        .prop_filter("reserved for A-labels", |l| l.get(2..4) != Some("--"));
    prop::collection::vec(label, 1..4).prop_map(|l| l.join("."))
}

/// A resourcepart: any printable ASCII, including `/`, `@` and inner spaces.
fn resourcepart() -> impl Strategy<Value = String> {
    "[!-~]([ -~]{0,18}[!-~])?"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// RFC 7622 §3.2/§3.3 map case in the domainpart and localpart
    /// (UsernameCaseMapped); §3.4 leaves the resourcepart's case alone
    /// (OpaqueString); §3.1 splits the resource off at the first `/`.
    #[test]
    fn jid_parts_normalise_and_round_trip(
        node in prop::option::of(localpart()),
        domain in domainpart(),
        resource in prop::option::of(resourcepart()),
    ) {
        let mut s = String::new();
        if let Some(n) = &node {
            s.push_str(n);
            s.push('@');
        }
        s.push_str(&domain);
        if let Some(r) = &resource {
            s.push('/');
            s.push_str(r);
        }
        let j = Jid::parse(&s).unwrap();
        let lower = node.as_ref().map(|n| n.to_lowercase());
        prop_assert_eq!(j.node(), lower.as_deref());
        prop_assert_eq!(j.domain(), domain.to_lowercase());
        prop_assert_eq!(j.resource(), resource.as_deref());
        let shown = j.to_string();
        prop_assert_eq!(Jid::parse(&shown).unwrap(), j.clone());
        prop_assert_eq!(s.to_lowercase().len(), shown.len());
        let bare = j.to_bare();
        prop_assert!(bare.is_bare());
        prop_assert_eq!(Jid::parse(&bare.to_string()).unwrap(), bare.clone());
        prop_assert_eq!(bare.with_resource("x").to_bare(), bare);
        if let Some(n) = &node {
            prop_assert_eq!(normalize_node(n).unwrap(), n.to_lowercase());
        }
    }

    /// Whatever parses displays as a string that parses to the same JID
    /// (normalisation is idempotent).
    #[test]
    fn any_parsed_jid_round_trips(s in "[a-zA-Z0-9@/.\\[\\]:& \u{e9}\u{130}\u{df}\u{3a3}\u{212a}-]{0,24}") {
        if let Ok(j) = Jid::parse(&s) {
            let shown = j.to_string();
            prop_assert_eq!(Jid::parse(&shown), Ok(j), "{:?} -> {:?}", s, shown);
        }
    }

    /// Empty parts and RFC 7622 §3.3.1's forbidden localpart characters
    /// are rejected.
    #[test]
    fn malformed_jids_are_rejected(
        n in localpart(),
        d in domainpart(),
        bad in prop::sample::select(vec!['"', '&', '\'', ':', '<', '>', ' ']),
        at in any::<prop::sample::Index>(),
    ) {
        let i = at.index(n.len() + 1);
        let with_bad = format!("{}{bad}{}@{d}", &n[..i], &n[i..]);
        prop_assert!(Jid::parse(&with_bad).is_err(), "{}", with_bad);
        for empty in [format!("@{d}"), format!("{n}@"), format!("{n}@{d}/"), format!("/{n}")] {
            prop_assert!(Jid::parse(&empty).is_err(), "{}", empty);
        }
    }
}
