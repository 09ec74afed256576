//! Reading XEP-0227 files into [`UserRecord`]s.
//!
//! The file is scanned with quick-xml; each `<user/>` element is cut out and
//! parsed into an element tree. `<server-data/>` may hold `<host/>`
//! elements and XInclude `<xi:include href='…'/>` (§5, resolved relative to
//! the including file, at most [`MAX_INCLUDE_DEPTH`] deep); a file may also
//! start at `<host/>` (as ejabberd's included per-host files do). Every
//! error is `FILE:LINE: <element>: what is wrong`.

use super::{creds, UserRecord, NS};
use crate::jid::{normalize_node, Jid};
use crate::modules::{private, vcard};
use crate::storage::{RosterItem, Subscription};
use crate::xml::{Element, Node};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::path::Path;

/// How deep XIncludes may nest.
pub const MAX_INCLUDE_DEPTH: usize = 4;
const NS_DELAY: &str = "urn:xmpp:delay";

/// The result of reading a file and what it includes.
#[derive(Debug, Default)]
pub struct Imported {
    /// One record per `<user/>`, in file order.
    pub records: Vec<UserRecord>,
    /// `FILE:LINE: …` notes on data that was not imported.
    pub skipped: Vec<String>,
}

/// Read `path`; `served(domain)` gives the normalised domain when this
/// server serves it (a host that is not served is an error).
pub fn read(path: &Path, served: &dyn Fn(&str) -> Option<String>) -> Result<Imported, String> {
    let mut out = Imported::default();
    read_into(path, served, 0, &mut out)?;
    Ok(out)
}

fn line_of(text: &str, pos: usize) -> usize {
    1 + text.as_bytes()[..pos.min(text.len())].iter().filter(|b| **b == b'\n').count()
}

fn read_into(
    path: &Path,
    served: &dyn Fn(&str) -> Option<String>,
    depth: usize,
    out: &mut Imported,
) -> Result<(), String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let at = |pos: usize| format!("{name}:{}", line_of(&text, pos));
    let mut r = Reader::from_str(&text);
    r.config_mut().check_end_names = true;
    // Local names of the open elements, and the host being read.
    let mut stack: Vec<String> = Vec::new();
    let mut host: Option<String> = None;
    loop {
        let pos = r.buffer_position() as usize;
        let ev =
            r.read_event().map_err(|e| format!("{}: not well-formed XML: {e}", at(r.error_position() as usize)))?;
        let (start, empty) = match &ev {
            Event::Start(s) => (s.clone(), false),
            Event::Empty(s) => (s.clone(), true),
            Event::End(_) => {
                if stack.pop().as_deref() == Some("host") {
                    host = None;
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
        let qname = String::from_utf8_lossy(start.name().as_ref()).into_owned();
        let attr = |k: &str| {
            start.try_get_attribute(k).ok().flatten().and_then(|a| a.unescape_value().ok()).map(|v| v.into_owned())
        };
        let parents: Vec<&str> = stack.iter().map(String::as_str).collect();
        match (parents.as_slice(), local.as_str()) {
            ([], "server-data") | (["server-data"], "host") | ([], "host") => {
                if local == "host" {
                    let jid = attr("jid").ok_or_else(|| format!("{}: <host/> without a jid attribute", at(pos)))?;
                    host = Some(served(&jid).ok_or_else(|| {
                        format!("{}: <host jid='{jid}'>: this server does not serve {jid}; add it to `hosts` in the configuration", at(pos))
                    })?);
                }
                if !empty {
                    stack.push(local);
                }
            }
            (_, "include") if qname.contains(':') || parents.is_empty() => {
                let href = attr("href").ok_or_else(|| format!("{}: <{qname}/> without href", at(pos)))?;
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(format!(
                        "{}: <{qname} href='{href}'>: includes nest deeper than {MAX_INCLUDE_DEPTH}",
                        at(pos)
                    ));
                }
                let target = path.parent().unwrap_or(Path::new(".")).join(&href);
                read_into(&target, served, depth + 1, out)
                    .map_err(|e| format!("{e}\n  (included from {} <{qname} href='{href}'>)", at(pos)))?;
                if !empty {
                    r.read_to_end(start.name()).map_err(|e| format!("{}: {e}", at(pos)))?;
                }
            }
            (["server-data", "host"] | ["host"], "user") => {
                let h = host.clone().expect("inside <host/>");
                if !empty {
                    r.read_to_end(start.name())
                        .map_err(|e| format!("{}: <user/>: not well-formed XML: {e}", at(pos)))?;
                }
                let end = r.buffer_position() as usize;
                let el = Element::parse(&text.as_bytes()[pos..end], NS)
                    .map_err(|e| format!("{}: <user/>: not well-formed XML: {e:?}", at(pos)))?;
                let user_name = el.attr("name").unwrap_or_default().to_string();
                let origin = at(pos);
                let mut skipped = Vec::new();
                let rec = user_record(&el, &h, origin.clone(), &mut skipped)
                    .map_err(|e| format!("{origin}: <user name='{user_name}'>: {e}"))?;
                out.skipped
                    .extend(skipped.into_iter().map(|s| format!("{origin}: user {}@{h}: skipped {s}", rec.user)));
                out.records.push(rec);
            }
            _ if parents.is_empty() => {
                return Err(format!(
                    "{}: <{qname}>: not a XEP-0227 file (expected <server-data xmlns='{NS}'/>)",
                    at(pos)
                ))
            }
            _ => {
                out.skipped.push(format!("{}: skipped <{qname}> (not part of XEP-0227 or not supported)", at(pos)));
                if !empty {
                    r.read_to_end(start.name()).map_err(|e| format!("{}: {e}", at(pos)))?;
                }
            }
        }
    }
    Ok(())
}

/// One `<user/>` element.
pub fn user_record(el: &Element, host: &str, origin: String, skipped: &mut Vec<String>) -> Result<UserRecord, String> {
    let raw = el.attr("name").ok_or("no name attribute")?;
    let user = normalize_node(raw).map_err(|e| format!("malformed user name ({})", e.0))?;
    let mut rec = UserRecord { user, host: host.to_string(), origin, ..UserRecord::default() };
    rec.password = el.attr("password").filter(|p| !p.is_empty()).map(str::to_string);
    rec.creds = creds::parse(el, skipped)?;
    // A plaintext password becomes SCRAM keys (`derive_missing`): it must be
    // an OpaqueString (RFC 8265 §4.2), as at registration.
    if let (None, Some(p)) = (&rec.creds, &rec.password) {
        crate::sasl::prepare_password(p).map_err(|e| format!("password attribute: {e}"))?;
    }
    for child in el.elements() {
        match (child.ns.as_str(), child.name.as_str()) {
            (super::NS_SCRAM, "scram-credentials") => {}
            ("jabber:iq:roster", "query") => {
                for item in child.elements().filter(|i| i.name == "item") {
                    roster_item(&mut rec.roster, item)?;
                }
            }
            ("jabber:client", "presence") if child.attr("type") == Some("subscribe") => {
                pending_in(&mut rec.roster, child)?;
            }
            (NS, "offline-messages") => {
                for m in child.elements() {
                    if m.is("message", "jabber:client") {
                        rec.offline.push(offline_message(m, host)?);
                    } else {
                        skipped.push(format!("<{}> in <offline-messages/>", m.name));
                    }
                }
            }
            (vcard::NS, "vCard") => {
                let mut s = String::new();
                child.write_to(&mut s, "");
                rec.data.push((vcard::KEY.into(), s));
                rec.data.push((vcard::HASH_KEY.into(), vcard::photo_hash(child)));
            }
            (private::NS, "query") => {
                let children: Vec<&Element> = child.elements().collect();
                let docs = private::group(&children).map_err(|e| format!("<query xmlns='{}'>: {e:?}", private::NS))?;
                let index: Vec<&str> = docs.iter().map(|(ns, _)| ns.as_str()).collect();
                if !index.is_empty() {
                    rec.data.push((private::INDEX_KEY.into(), index.join("\n")));
                }
                rec.data.extend(docs.iter().map(|(ns, doc)| (format!("private:{ns}"), doc.clone())));
            }
            (ns, name) => skipped.push(format!("<{name} xmlns='{ns}'>")),
        }
    }
    Ok(rec)
}

fn bare(jid: Option<&str>, what: &str) -> Result<String, String> {
    let j = jid.ok_or_else(|| format!("{what} without a jid"))?;
    Jid::parse(j).map(|j| j.to_bare().to_string()).map_err(|_| format!("{what}: malformed JID {j:?}"))
}

/// RFC 6121 §2.1.2 item: jid, name, subscription, ask, approved, groups.
fn roster_item(roster: &mut Vec<RosterItem>, item: &Element) -> Result<(), String> {
    let jid = bare(item.attr("jid"), "<item/>")?;
    let sub = item.attr("subscription").unwrap_or("none");
    if sub == "remove" {
        return Ok(());
    }
    let subscription =
        Subscription::parse(sub).ok_or_else(|| format!("<item jid='{jid}'>: unknown subscription {sub:?}"))?;
    let mut groups: Vec<String> = item.elements().filter(|g| g.name == "group").map(|g| g.text()).collect();
    groups.sort();
    groups.dedup();
    let it = RosterItem {
        jid: jid.clone(),
        name: item.attr("name").filter(|n| !n.is_empty()).map(str::to_string),
        subscription,
        ask_out: item.attr("ask") == Some("subscribe"),
        approved: matches!(item.attr("approved"), Some("true" | "1")),
        groups,
        visible: true,
        ..RosterItem::default()
    };
    match roster.iter_mut().find(|i| i.jid == jid) {
        // A pending request seen first keeps its flag.
        Some(old) => {
            *old = RosterItem { pending_in: old.pending_in, pending_in_stanza: old.pending_in_stanza.take(), ..it }
        }
        None => roster.push(it),
    }
    Ok(())
}

/// §4.8 incoming subscription request: pending-in on the contact's item.
fn pending_in(roster: &mut Vec<RosterItem>, presence: &Element) -> Result<(), String> {
    let jid = bare(presence.attr("from"), "<presence type='subscribe'/>")?;
    let stanza = presence.to_client_string();
    match roster.iter_mut().find(|i| i.jid == jid) {
        Some(i) => {
            i.pending_in = true;
            i.pending_in_stanza = Some(stanza);
        }
        None => roster.push(RosterItem {
            jid,
            pending_in: true,
            pending_in_stanza: Some(stanza),
            visible: false,
            ..RosterItem::default()
        }),
    }
    Ok(())
}

/// §4.5: the stored stanza without the server's own `<delay/>` (xmppd adds
/// its own at delivery), stamped with that delay's time.
fn offline_message(m: &Element, host: &str) -> Result<(i64, String), String> {
    let mut m = m.clone();
    let mut stamp = None;
    let mut err = None;
    m.children.retain(|c| match c {
        Node::Element(d)
            if d.is("delay", NS_DELAY) && d.attr("from").map_or(true, |f| f == host) && stamp.is_none() =>
        {
            match d.attr("stamp").map(parse_stamp) {
                Some(Ok(s)) => stamp = Some(s),
                Some(Err(e)) => err = Some(e),
                None => err = Some("<delay/> without a stamp".to_string()),
            }
            false
        }
        _ => true,
    });
    if let Some(e) = err {
        return Err(format!("offline <message id='{}'>: {e}", m.attr("id").unwrap_or_default()));
    }
    Ok((stamp.unwrap_or_else(crate::im::offline::now), m.to_client_string()))
}

/// XEP-0082 DateTime (RFC 3339) to Unix seconds.
pub fn parse_stamp(s: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("bad XEP-0082 stamp {s:?} ({e})"))
}
