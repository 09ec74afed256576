//! Writing the store as XEP-0227: `DIR/xmppd-STAMP.xml` holding
//! `<server-data/>` with one XInclude (§5) per served host, and
//! `DIR/xmppd-STAMP_HOST.xml` with that host's users — the layout ejabberd's
//! `export_piefxis` uses, so tools that read one read the other. Files are
//! created mode 0600: they hold SCRAM keys (§9 Security Considerations).

use super::{creds, NS, NS_XINCLUDE};
use crate::modules::{private, vcard};
use crate::storage::sqlite::SqliteStore;
use crate::storage::{AccountStore, OfflineStore, RosterStore};
use crate::xml::{ns, Element};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What an export wrote.
#[derive(Debug, Default)]
pub struct Exported {
    /// The main file (give it to `import_piefxis`).
    pub main: PathBuf,
    /// Users written per host.
    pub users: Vec<(String, usize)>,
}

fn write_file(path: &Path, content: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(content.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Export every account of `hosts` into `dir` (created if missing).
pub fn export(store: &SqliteStore, hosts: &[String], dir: &Path) -> Result<Exported, String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let stamp: String = crate::modules::time::format_utc(crate::im::offline::now())
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect::<String>()
        .replace('T', "-");
    let mut main =
        format!("<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='{NS}' xmlns:xi='{NS_XINCLUDE}'>\n");
    let mut out = Exported { main: dir.join(format!("xmppd-{stamp}.xml")), users: Vec::new() };
    for host in hosts {
        let file = format!("xmppd-{stamp}_{}.xml", host.replace(['/', '\\'], "_"));
        let (text, n) = host_file(store, host)?;
        write_file(&dir.join(&file), &text)?;
        main.push_str(&format!("  <xi:include href='{}'/>\n", crate::xml::escape(&file)));
        out.users.push((host.clone(), n));
    }
    main.push_str("</server-data>\n");
    write_file(&out.main, &main)?;
    Ok(out)
}

/// One `<host/>` document and its number of users.
fn host_file(store: &SqliteStore, host: &str) -> Result<(String, usize), String> {
    let users = store.list_users(host).map_err(|e| e.to_string())?;
    let mut s =
        format!("<?xml version='1.0' encoding='UTF-8'?>\n<host xmlns='{NS}' jid='{}'>\n", crate::xml::escape(host));
    for u in &users {
        user_element(store, u, host)?.write_to(&mut s, NS);
        s.push('\n');
    }
    s.push_str("</host>\n");
    Ok((s, users.len()))
}

fn parse(xml: &str, what: &str, user: &str, host: &str) -> Result<Element, String> {
    Element::parse(xml.as_bytes(), ns::CLIENT)
        .map_err(|e| format!("{user}@{host}: stored {what} does not parse: {e:?}"))
}

/// The `<user/>` element of one account (§4.2–§4.8).
pub fn user_element(store: &SqliteStore, user: &str, host: &str) -> Result<Element, String> {
    let err = |e: crate::storage::StoreError| e.to_string();
    let mut el = Element::new("user", NS).with_attr("name", user);
    if let Some(c) = store.get_credentials(user, host).map_err(err)? {
        for e in creds::elements(&c) {
            el = el.with_child(e);
        }
    }
    let (_, items) = store.roster(user, host).map_err(err)?;
    let mut query = Element::new("query", ns::ROSTER);
    for it in items.iter().filter(|i| i.visible) {
        let mut item = Element::new("item", ns::ROSTER).with_attr("jid", &it.jid);
        if let Some(n) = &it.name {
            item.set_attr("name", n);
        }
        item.set_attr("subscription", it.subscription.as_str());
        if it.ask_out {
            item.set_attr("ask", "subscribe");
        }
        if it.approved {
            item.set_attr("approved", "true");
        }
        for g in &it.groups {
            item = item.with_child(Element::new("group", ns::ROSTER).with_text(g));
        }
        query = query.with_child(item);
    }
    if !query.children.is_empty() {
        el = el.with_child(query);
    }
    for it in items.iter().filter(|i| i.pending_in) {
        let p = match &it.pending_in_stanza {
            Some(s) => parse(s, "subscription request", user, host)?,
            None => Element::new("presence", ns::CLIENT)
                .with_attr("from", &it.jid)
                .with_attr("to", format!("{user}@{host}"))
                .with_attr("type", "subscribe"),
        };
        el = el.with_child(p);
    }
    let offline = store.offline(user, host).map_err(err)?;
    if !offline.is_empty() {
        let mut o = Element::new("offline-messages", NS);
        for m in &offline {
            o = o.with_child(parse(&crate::im::offline::with_delay(&m.stanza, host, m.stamp), "message", user, host)?);
        }
        el = el.with_child(o);
    }
    let data = store.user_data(user, host).map_err(err)?;
    if let Some((_, v)) = data.iter().find(|(k, _)| k == vcard::KEY) {
        el = el.with_child(parse(v, "vCard", user, host)?);
    }
    let mut q = Element::new("query", private::NS);
    for (_, doc) in data.iter().filter(|(k, _)| k.starts_with("private:")) {
        let stored = private::parse_doc(doc).map_err(|e| format!("{user}@{host}: stored private XML: {e:?}"))?;
        q.children.extend(stored.children);
    }
    if !q.children.is_empty() {
        el = el.with_child(q);
    }
    Ok(el)
}
