//! Fuzz harness for the JID parser (`xmppd::jid`, RFC 7622).
//!
//! Oracles: no panic on any string; a parsed JID displays as a string that
//! parses to the same JID (normalisation is idempotent, RFC 7622 §3.2-§3.4
//! apply the PRECIS profiles once and their output is stable); each part
//! stays within 1023 bytes after normalisation (RFC 7622 §3.2, §3.3.1,
//! §3.4.1); the bare JID drops only the resource; `normalize_node` agrees
//! with `Jid::parse` and is idempotent.

use xmppd::jid::{normalize_node, Jid};

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(j) = Jid::parse(s) {
        let shown = j.to_string();
        let again = Jid::parse(&shown).unwrap_or_else(|e| panic!("{s:?} parsed, its display {shown:?} does not: {e}"));
        assert_eq!(again, j, "{s:?} -> {shown:?} parses differently");
        assert_eq!(again.to_string(), shown);
        assert!(!j.domain().is_empty() && j.domain().len() <= 1023, "domainpart length {}", j.domain().len());
        if let Some(n) = j.node() {
            assert!(!n.is_empty() && n.len() <= 1023, "localpart length {}", n.len());
        }
        if let Some(r) = j.resource() {
            assert!(!r.is_empty() && r.len() <= 1023, "resourcepart length {}", r.len());
        }
        let bare = j.to_bare();
        assert!(bare.is_bare());
        assert_eq!((bare.node(), bare.domain()), (j.node(), j.domain()));
        assert_eq!(Jid::parse(&bare.to_string()).as_ref(), Ok(&bare));
    }
    if let Ok(n) = normalize_node(s) {
        assert_eq!(normalize_node(&n).as_deref(), Ok(n.as_str()), "normalize_node not idempotent on {s:?}");
        let j = Jid::parse(&format!("{n}@localhost")).expect("a normalised node makes a JID");
        assert_eq!(j.node(), Some(n.as_str()));
    }
}
