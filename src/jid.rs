//! JIDs (RFC 7622): `[node@]domain[/resource]`, validated and normalised
//! with the PRECIS profiles RFC 7622 names, through the `precis-profiles`
//! crate (RFC 8264/8265) and `idna` (UTS #46 / IDNA2008 mapping):
//! - localpart: UsernameCaseMapped (§3.3), minus the characters §3.3.1 forbids;
//! - domainpart: IDNA to U-labels, lowercased (§3.2), or an IP literal;
//! - resourcepart: OpaqueString (§3.4).
//!
//! Strings that are printable ASCII take a fast path that gives exactly
//! what the profiles give for them (ASCII7 is PVALID in both string
//! classes; case mapping and NFC are then ASCII lowercasing and identity).

use precis_profiles::precis_core::profile::PrecisFastInvocation;
use precis_profiles::precis_core::Error as PrecisError;
use precis_profiles::{OpaqueString, UsernameCaseMapped};
use std::fmt;

/// Enforce PRECIS profile `P` until its output is stable. RFC 8264 §7: the
/// rules are not always idempotent, so they are applied again to their
/// output, at most three more times; a string whose output is still
/// changing, or is rejected on a later pass, is rejected. Without this,
/// "x\u{387}" (GREEK ANO TELEIA) passed OpaqueString, became U+00B7 by NFC,
/// and that output was then rejected: a JID displayed as a string that no
/// longer parses (fuzz/regressions/jid/crash-6f21658e).
pub(crate) fn enforce_stable<P: PrecisFastInvocation>(s: &str) -> Result<String, PrecisError> {
    let mut out = P::enforce(s)?.into_owned();
    for _ in 0..3 {
        let again = P::enforce(out.as_str())?;
        if again == out {
            return Ok(out);
        }
        out = again.into_owned();
    }
    Err(PrecisError::Invalid)
}

/// A parsed, normalised JID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Jid {
    node: Option<String>,
    domain: String,
    resource: Option<String>,
}

/// Why a string is not a JID (→ `jid-malformed`, RFC 6120 §8.3.3.8).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed JID: {0}")]
pub struct JidError(pub &'static str);

/// Characters RFC 7622 §3.3.1 forbids in a localpart (a `match`, not a
/// `&[char]` pattern: this runs for every routed stanza's `to`).
fn node_forbidden(c: char) -> bool {
    matches!(c, '"' | '&' | '\'' | '/' | ':' | '<' | '>' | '@')
}

/// RFC 7622 §3.1: each part is at most 1023 bytes once normalised.
const MAX_PART: usize = 1023;

/// RFC 7622 §3.3: UsernameCaseMapped, then the §3.3.1 exclusions.
fn localpart(n: &str) -> Result<String, JidError> {
    let out = if n.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        n.to_ascii_lowercase()
    } else {
        enforce_stable::<UsernameCaseMapped>(n).map_err(|_| JidError("localpart is not a valid username (PRECIS)"))?
    };
    if out.is_empty() || out.len() > MAX_PART {
        return Err(JidError("localpart must be 1 to 1023 bytes"));
    }
    if out.contains(node_forbidden) {
        return Err(JidError("invalid character in localpart"));
    }
    Ok(out)
}

/// RFC 7622 §3.4: OpaqueString.
fn resourcepart(r: &str) -> Result<String, JidError> {
    let out = if !r.is_empty() && r.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        r.to_owned()
    } else {
        enforce_stable::<OpaqueString>(r).map_err(|_| JidError("resourcepart is not a valid opaque string (PRECIS)"))?
    };
    if out.is_empty() || out.len() > MAX_PART {
        return Err(JidError("resourcepart must be 1 to 1023 bytes"));
    }
    Ok(out)
}

/// RFC 7622 §3.2: an IP literal, or a domain name mapped by IDNA to
/// lowercase U-labels.
fn domainpart(d: &str) -> Result<String, JidError> {
    // §3.2: a trailing dot is removed before any other processing.
    let d = d.strip_suffix('.').unwrap_or(d);
    if d.is_empty() || d.len() > MAX_PART {
        return Err(JidError("domainpart must be 1 to 1023 bytes"));
    }
    if let Some(v6) = d.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let ip: std::net::Ipv6Addr = v6.parse().map_err(|_| JidError("bad IPv6 literal in domainpart"))?;
        return Ok(format!("[{ip}]"));
    }
    let ascii = d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    let out = if ascii && !d.split('.').any(|l| l.len() >= 4 && l[..4].eq_ignore_ascii_case("xn--")) {
        d.to_ascii_lowercase()
    } else {
        let (u, r) = idna::domain_to_unicode(d);
        r.map_err(|_| JidError("domainpart is not a valid domain name (IDNA)"))?;
        u
    };
    if out.is_empty() || out.len() > MAX_PART {
        return Err(JidError("domainpart must be 1 to 1023 bytes"));
    }
    if out.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err(JidError("empty or over-long label in domainpart"));
    }
    if out.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '@' | '/' | '<' | '>' | '"' | '\'' | '&' | ':' | '\\' | '[' | ']')
    }) {
        return Err(JidError("invalid character in domainpart"));
    }
    Ok(out)
}

impl Jid {
    /// Parse and normalise.
    pub fn parse(s: &str) -> Result<Jid, JidError> {
        // RFC 7622 §3.1: the resource is everything after the first '/',
        // the localpart everything before the first '@' ahead of it.
        // Byte searches (ASCII separators, so the indices are char
        // boundaries): `str::find(char)` sets up a searcher that costs more
        // than a JID takes to scan.
        let (rest, resource) = match s.bytes().position(|b| b == b'/') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let (node, domain) = match rest.bytes().position(|b| b == b'@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        Ok(Jid {
            node: node.map(localpart).transpose()?,
            domain: domainpart(domain)?,
            resource: resource.map(resourcepart).transpose()?,
        })
    }

    /// Build from parts that are already normalised.
    pub fn new(node: Option<&str>, domain: &str, resource: Option<&str>) -> Jid {
        Jid { node: node.map(str::to_owned), domain: domain.to_owned(), resource: resource.map(str::to_owned) }
    }

    /// The localpart.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
    /// The domainpart.
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// The resourcepart.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }
    /// The same JID without its resource.
    pub fn to_bare(&self) -> Jid {
        Jid { node: self.node.clone(), domain: self.domain.clone(), resource: None }
    }
    /// With a resource.
    pub fn with_resource(&self, resource: &str) -> Jid {
        Jid { node: self.node.clone(), domain: self.domain.clone(), resource: Some(resource.to_owned()) }
    }
    /// True when there is no resource.
    pub fn is_bare(&self) -> bool {
        self.resource.is_none()
    }
}

/// Normalise a localpart alone (used by SASL and ctl), with the same rules.
pub fn normalize_node(s: &str) -> Result<String, JidError> {
    match Jid::parse(&format!("{s}@x"))? {
        Jid { node: Some(n), resource: None, .. } => Ok(n),
        _ => Err(JidError("invalid localpart")),
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.node {
            write!(f, "{n}@")?;
        }
        f.write_str(&self.domain)?;
        if let Some(r) = &self.resource {
            write!(f, "/{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full() {
        let j = Jid::parse("Juliet@Example.COM/Balcony/x").unwrap();
        assert_eq!(j.node(), Some("juliet"));
        assert_eq!(j.domain(), "example.com");
        assert_eq!(j.resource(), Some("Balcony/x"));
        assert_eq!(j.to_string(), "juliet@example.com/Balcony/x");
        assert_eq!(j.to_bare().to_string(), "juliet@example.com");
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "@x", "a@", "a@b/", "a b@c", "a@b c", "x\"y@z", "a@b@c"] {
            assert!(Jid::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn precis_normalisation() {
        // UsernameCaseMapped: case folding beyond ASCII, width mapping, NFC.
        let j = Jid::parse("ÀLICE@Example.COM/Ｂalcony").unwrap();
        assert_eq!(j.node(), Some("àlice"));
        assert_eq!(j.resource(), Some("Ｂalcony"), "OpaqueString keeps width and case");
        assert_eq!(Jid::parse("ＡＢＣ@x").unwrap().node(), Some("abc"), "fullwidth is mapped");
        assert_eq!(Jid::parse("A\u{30A}ngstrom@x").unwrap(), Jid::parse("\u{e5}ngstrom@x").unwrap(), "NFC");
        // Non-ASCII spaces in a resource become ASCII spaces (OpaqueString).
        assert_eq!(Jid::parse("a@x/b\u{3000}c").unwrap().resource(), Some("b c"));
        // IDNA: A-labels and U-labels are the same domain.
        assert_eq!(Jid::parse("a@xn--mnchen-3ya.DE").unwrap().domain(), "münchen.de");
        assert_eq!(Jid::parse("a@MÜNCHEN.de.").unwrap().domain(), "münchen.de");
        assert_eq!(Jid::parse("[::1]").unwrap().domain(), "[::1]");
    }

    #[test]
    fn precis_rejects() {
        for bad in [
            "a\u{7}b@x",      // control character
            "a b@x",          // space is not in IdentifierClass
            "\u{2000}@x",     // only a space
            "a@x/\u{7}",      // control in resource
            "a@x/\u{200b}",   // zero-width space: not in FreeformClass
            "a@ex ample.com", // space in domain
            "a@xn--zz.com",   // bad punycode
            "a@[not-ip]",     // bad IP literal
            "a@..",           // empty labels
            "\u{5d0}a@x",     // bidi rule: RTL followed by LTR
            "a@x/m\u{387}",   // NFC makes U+00B7, which then fails its context rule (RFC 8264 §7)
        ] {
            assert!(Jid::parse(bad).is_err(), "{bad:?}");
        }
        let long = "a".repeat(1024);
        assert!(Jid::parse(&format!("{long}@x")).is_err());
        assert!(Jid::parse(&format!("a@x/{long}")).is_err());
    }

    #[test]
    fn node_normalisation() {
        assert_eq!(normalize_node("Admin").unwrap(), "admin");
        assert!(normalize_node("a/b").is_err());
        assert!(normalize_node("a@b").is_err());
    }
}
