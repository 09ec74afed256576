//! XEP-0049 Private XML Storage (jabber:iq:private).
//!
//! Storage: the child elements of one namespace, serialised and
//! concatenated, under the user-data key `private:{namespace}` (an IQ set
//! MAY carry several elements of the same namespace, §2.3); the key
//! `private` lists the stored namespaces, one per line, so that the number
//! of documents per user can be bounded.
//!
//! Bounds: each namespace's document is at most [`MAX_DOC_BYTES`] and a user
//! has at most [`MAX_NAMESPACES`] of them; beyond either the set is refused
//! with `<not-acceptable/>` (RFC 6120 §8.3.3.9, local policy).

use super::{Ctx, IqAnswer, IqRequest, Module};
use crate::server::Shared;
use crate::stanza::StanzaError;
use crate::xml::{ns, Element};

/// The `jabber:iq:private` namespace.
pub const NS: &str = "jabber:iq:private";
/// Largest stored document (one namespace), serialised.
pub const MAX_DOC_BYTES: usize = 64 * 1024;
/// Most namespaces stored per user.
pub const MAX_NAMESPACES: usize = 100;

/// Namespaces refused with `<not-acceptable/>`. §2.3 lets a server refuse
/// reserved namespaces (OPTIONAL); these are the ones that cannot be private
/// data at all: the stanza namespaces (a child without its own `xmlns`
/// inherits `jabber:iq:private` and lands here too, as does one with
/// `xmlns=''`: §2.3 requires the fragment to be "scoped by its own
/// namespace").
const RESERVED: &[&str] = &[ns::CLIENT, "jabber:server", NS, ""];

/// User-data key listing the stored namespaces, one a line.
pub const INDEX_KEY: &str = "private";

/// jabber:iq:private.
pub struct Private;

impl Module for Private {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn handle(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> IqAnswer {
        if req.payload.name != "query" {
            return Err(StanzaError::BadRequest);
        }
        // §2.3 and §3 (error table): data of another JID is forbidden; only
        // the account itself (no `to`, or its own bare JID).
        let me = req.from.to_bare();
        if req.to.node().is_none() || req.to.to_bare() != me {
            return Err(StanzaError::Forbidden);
        }
        let children: Vec<&Element> = req.payload.elements().collect();
        // §2.3: at least one child element, else not-acceptable.
        if children.is_empty() {
            return Err(StanzaError::NotAcceptable);
        }
        // §2.3 / §3: reserved namespaces.
        if children.iter().any(|c| RESERVED.contains(&c.ns.as_str())) {
            return Err(StanzaError::NotAcceptable);
        }
        let (user, host) = (me.node().unwrap_or_default(), me.domain());
        if req.set {
            set(ctx.shared, user, host, &children).map(|_| None)
        } else {
            // §2.3: a client MUST NOT query more than one namespace at once.
            let [child] = children.as_slice() else { return Err(StanzaError::BadRequest) };
            get(ctx.shared, user, host, child).map(Some)
        }
    }
}

fn store_err<'a>(user: &'a str, host: &'a str) -> impl Fn(crate::storage::StoreError) -> StanzaError + 'a {
    move |e| {
        tracing::error!(error = %e, user, host, "private XML storage");
        StanzaError::InternalServerError
    }
}

/// The stored elements of `child`'s namespace, or the element as queried
/// when nothing is stored (§2.3's "Client Retrieves Private Data").
fn get(shared: &Shared, user: &str, host: &str, child: &Element) -> Result<Element, StanzaError> {
    let stored = shared.store.get_data(user, host, &format!("private:{}", child.ns)).map_err(store_err(user, host))?;
    match stored {
        Some(doc) => parse_doc(&doc).map_err(|_| {
            tracing::error!(user, host, ns = child.ns, "stored private XML does not parse");
            StanzaError::InternalServerError
        }),
        None => Ok(Element::new("query", NS).with_child(child.clone())),
    }
}

fn set(shared: &Shared, user: &str, host: &str, children: &[&Element]) -> Result<(), StanzaError> {
    let docs = group(children)?;
    let index = shared.store.get_data(user, host, INDEX_KEY).map_err(store_err(user, host))?.unwrap_or_default();
    let mut namespaces: Vec<&str> = index.lines().filter(|l| !l.is_empty()).collect();
    let before = namespaces.len();
    for (ns, _) in &docs {
        if !namespaces.contains(&ns.as_str()) {
            namespaces.push(ns);
        }
    }
    if namespaces.len() > MAX_NAMESPACES {
        return Err(StanzaError::NotAcceptable);
    }
    for (ns, doc) in &docs {
        shared.store.set_data(user, host, &format!("private:{ns}"), Some(doc)).map_err(store_err(user, host))?;
    }
    if namespaces.len() != before {
        shared.store.set_data(user, host, INDEX_KEY, Some(&namespaces.join("\n"))).map_err(store_err(user, host))?;
    }
    Ok(())
}

/// The set's children grouped by namespace (first-seen order), each group
/// serialised as the stored document; size-checked.
pub fn group(children: &[&Element]) -> Result<Vec<(String, String)>, StanzaError> {
    let mut docs: Vec<(String, String)> = Vec::new();
    for c in children {
        let i = match docs.iter().position(|(ns, _)| *ns == c.ns) {
            Some(i) => i,
            None => {
                docs.push((c.ns.clone(), String::new()));
                docs.len() - 1
            }
        };
        c.write_to(&mut docs[i].1, NS);
        if docs[i].1.len() > MAX_DOC_BYTES {
            return Err(StanzaError::NotAcceptable);
        }
    }
    // What is stored must read back.
    for (_, doc) in &docs {
        parse_doc(doc).map_err(|_| StanzaError::BadRequest)?;
    }
    Ok(docs)
}

/// A stored document wrapped in its `<query xmlns='jabber:iq:private'/>`.
pub fn parse_doc(doc: &str) -> Result<Element, crate::xml::XmlError> {
    Element::parse(format!("<query xmlns='{NS}'>{doc}</query>").as_bytes(), ns::CLIENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), ns::CLIENT).unwrap()
    }

    #[test]
    fn groups_by_namespace_and_roundtrips() {
        let q = el("<query xmlns='jabber:iq:private'><a xmlns='urn:a'><x>1 &amp; 2</x></a>\
                    <b xmlns='urn:b'/><a2 xmlns='urn:a' k='v'/></query>");
        let children: Vec<&Element> = q.elements().collect();
        let docs = group(&children).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].0, "urn:a");
        assert_eq!(docs[0].1, "<a xmlns='urn:a'><x>1 &amp; 2</x></a><a2 xmlns='urn:a' k='v'/>");
        let back = parse_doc(&docs[0].1).unwrap();
        let got: Vec<&Element> = back.elements().collect();
        assert_eq!(got, vec![children[0], children[2]]);
        assert_eq!(docs[1].1, "<b xmlns='urn:b'/>");
    }

    #[test]
    fn size_bound() {
        let big = Element::new("a", "urn:a").with_text("x".repeat(MAX_DOC_BYTES));
        assert_eq!(group(&[&big]), Err(StanzaError::NotAcceptable));
    }

    #[test]
    fn reserved_namespaces() {
        // A child without its own xmlns inherits jabber:iq:private.
        let q = el("<query xmlns='jabber:iq:private'><exodus/></query>");
        assert_eq!(q.elements().next().unwrap().ns, NS);
        assert!(RESERVED.contains(&NS) && RESERVED.contains(&"jabber:client"));
    }
}
