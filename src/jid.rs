//! JIDs (RFC 7622): `[node@]domain[/resource]`.
//!
//! Normalisation here is the ASCII subset of the PRECIS profiles: the domain
//! and the node are case-folded (RFC 7622 §3.2, §3.3 UsernameCaseMapped),
//! the resource is kept as given (§3.4 OpaqueString). Full PRECIS for
//! non-ASCII input is the hardening issue's work.

use std::fmt;

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

/// Characters RFC 7622 §3.3.1 forbids in a localpart.
const NODE_FORBIDDEN: &[char] = &['"', '&', '\'', '/', ':', '<', '>', '@'];

impl Jid {
    /// Parse and normalise.
    pub fn parse(s: &str) -> Result<Jid, JidError> {
        // RFC 7622 §3.1: the resource is everything after the first '/'.
        let (rest, resource) = match s.find('/') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let (node, domain) = match rest.find('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if domain.is_empty() || domain.len() > 1023 {
            return Err(JidError("domainpart must be 1 to 1023 bytes"));
        }
        if domain.chars().any(|c| c.is_whitespace() || c.is_control() || "@/<>\"'&:\\".contains(c))
            && !(domain.starts_with('[') && domain.ends_with(']'))
        {
            return Err(JidError("invalid character in domainpart"));
        }
        let node = match node {
            Some(n) => {
                if n.is_empty() || n.len() > 1023 {
                    return Err(JidError("localpart must be 1 to 1023 bytes"));
                }
                if n.chars().any(|c| c.is_whitespace() || c.is_control() || NODE_FORBIDDEN.contains(&c)) {
                    return Err(JidError("invalid character in localpart"));
                }
                Some(n.to_lowercase())
            }
            None => None,
        };
        let resource = match resource {
            Some(r) => {
                if r.is_empty() || r.len() > 1023 {
                    return Err(JidError("resourcepart must be 1 to 1023 bytes"));
                }
                if r.chars().any(|c| c.is_control()) {
                    return Err(JidError("invalid character in resourcepart"));
                }
                Some(r.to_string())
            }
            None => None,
        };
        Ok(Jid { node, domain: domain.to_lowercase(), resource })
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
    fn node_normalisation() {
        assert_eq!(normalize_node("Admin").unwrap(), "admin");
        assert!(normalize_node("a/b").is_err());
        assert!(normalize_node("a@b").is_err());
    }
}
