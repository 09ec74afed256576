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
    match shared.store.push_offline(user, host, &text, shared.config.im.max_offline_messages) {
        Ok(true) => Ok(Outcome::Stored),
        Ok(false) => Err(StanzaError::ServiceUnavailable),
        Err(e) => Err(super::roster::store_err(e)),
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `YYYY-MM-DDThh:mm:ssZ` (XEP-0082) for Unix seconds.
pub fn xep0082(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The stored stanza with a XEP-0203 `<delay/>` appended as its last child.
pub fn with_delay(stanza: &str, host: &str, stamp: i64) -> String {
    let delay = format!(
        "<delay xmlns='urn:xmpp:delay' from='{}' stamp='{}'>Offline Storage</delay>",
        crate::xml::escape(host),
        xep0082(stamp)
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
    fn formats_dates() {
        assert_eq!(xep0082(0), "1970-01-01T00:00:00Z");
        assert_eq!(xep0082(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(xep0082(1_795_000_000), "2026-11-18T10:26:40Z");
    }

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
