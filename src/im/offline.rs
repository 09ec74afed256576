//! XEP-0160 offline messages: stored when no resource is available,
//! delivered in order at the next initial presence with a XEP-0203 delay.

use crate::jid::Jid;
use crate::server::Shared;
use crate::stanza::StanzaError;
use std::time::{SystemTime, UNIX_EPOCH};

/// What happened to a message for an account with no available resource.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored for later delivery.
    Stored,
    /// Not worth storing (no body, or a `<no-store/>` hint, XEP-0334): dropped.
    Dropped,
}

/// Store `stamped` (a routed message) for `to`'s account. No such local
/// account → `service-unavailable` (RFC 6121 §8.5.1); a full store →
/// `service-unavailable` (XEP-0160 §3).
pub fn store(shared: &Shared, to: &Jid, stamped: &[u8]) -> Result<Outcome, StanzaError> {
    let (user, host) = (to.node().unwrap_or(""), to.domain());
    match shared.store.get_credentials(user, host) {
        Ok(Some(_)) => {}
        Ok(None) => return Err(StanzaError::ServiceUnavailable),
        Err(e) => return Err(super::roster::store_err(e)),
    }
    let text = String::from_utf8_lossy(stamped);
    // XEP-0334 §4: explicit hints; otherwise only messages with a body or
    // subject are worth keeping (chat states alone are not), as ejabberd does.
    let hinted = text.contains("urn:xmpp:hints");
    if hinted && text.contains("<no-store") {
        return Ok(Outcome::Dropped);
    }
    if !(text.contains("<body") || text.contains("<subject") || (hinted && text.contains("<store"))) {
        return Ok(Outcome::Dropped);
    }
    match shared.store.push_offline(user, host, &text, shared.config().im.max_offline_messages) {
        Ok(true) => {
            wake_recipient(shared, to);
            Ok(Outcome::Stored)
        }
        Ok(false) => Err(StanzaError::ServiceUnavailable),
        Err(e) => Err(super::roster::store_err(e)),
    }
}

/// Close the race with a recipient that becomes available while its
/// message is being stored: the router saw no available resource, but the
/// session may have sent initial presence and read offline storage since.
/// Both sides write then read (the session: `available`, then the store;
/// here: the store, then `available`), with a SeqCst fence between, so at
/// least one sees the other: either that session's read finds the message,
/// or this check finds it available and has it read the store again.
fn wake_recipient(shared: &Shared, to: &Jid) {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    let bare = to.to_bare();
    let sessions = shared.router.sessions_of(&bare);
    // RFC 6121 §8.5.2.1.1: the one a bare-JID message would go to.
    if let Some(s) = sessions.iter().filter(|s| s.is_available() && s.priority() >= 0).max_by_key(|s| s.priority()) {
        s.poke_offline();
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The stored stanza with a XEP-0203 `<delay/>` appended as its last child.
pub fn with_delay(stanza: &str, host: &str, stamp: i64) -> String {
    let delay = format!(
        "<delay xmlns='urn:xmpp:delay' from='{}' stamp='{}'>Offline Storage</delay>",
        crate::xml::escape(host),
        crate::modules::time::format_utc(stamp)
    );
    let t = stanza.trim_end();
    if let Some(head) = t.strip_suffix("/>").filter(|h| !h.contains('>')) {
        return format!("{head}>{delay}</message>");
    }
    match t.rfind("</") {
        Some(i) => format!("{}{delay}{}", &t[..i], &t[i..]),
        None => t.to_string(),
    }
}

/// Advertises XEP-0160 support ("msgoffline", XEP-0160 §4) in disco#info.
pub struct OfflineFeature;

impl crate::modules::Module for OfflineFeature {
    fn namespaces(&self) -> &'static [&'static str] {
        &[]
    }

    fn features(&self) -> &'static [&'static str] {
        &["msgoffline"]
    }

    fn handle(&self, _req: &crate::modules::IqRequest<'_>, _ctx: &crate::modules::Ctx<'_>) -> crate::modules::IqAnswer {
        Err(StanzaError::ServiceUnavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_last_child() {
        let s = with_delay("<message from='a@x/r' to='b@x'><body>hi</body></message>", "x", 0);
        assert_eq!(
            s,
            "<message from='a@x/r' to='b@x'><body>hi</body><delay xmlns='urn:xmpp:delay' from='x' \
             stamp='1970-01-01T00:00:00Z'>Offline Storage</delay></message>"
        );
    }
}
