//! XEP-0012 Last Activity (jabber:iq:last).
//!
//! - To the server's domain (§5): the seconds since this server started.
//! - To an account's bare JID (§3): 0 while the account has a connected
//!   resource, else the seconds since its last logout with the status text
//!   of its last unavailable presence, as recorded by [`record_logout`]
//!   under the user-data key `last` (`"UNIX_SECS\nstatus"`).
//!
//! Authorization (§3, §8): last activity is presence information, so only
//! the account itself and contacts with a presence subscription to it (the
//! account's roster item for the requester has subscription `from` or
//! `both`) may see it; others get `<forbidden/>`. A requester the account
//! has blocked (XEP-0191 §3.2) gets `<service-unavailable/>`. Queries to a
//! full JID are routed to the resource (§4), not answered here.

use super::{to_server, Ctx, IqAnswer, IqRequest, Module};
use crate::jid::Jid;
use crate::server::Shared;
use crate::stanza::StanzaError;
use crate::xml::Element;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The `jabber:iq:last` namespace.
pub const NS: &str = "jabber:iq:last";

const KEY: &str = "last";

/// jabber:iq:last; created once per server (in `Modules::new`), so
/// `started` is the server's start.
pub struct Last {
    started: Instant,
}

impl Default for Last {
    fn default() -> Self {
        Last::new()
    }
}

impl Last {
    /// Uptime counts from now.
    pub fn new() -> Last {
        Last { started: Instant::now() }
    }
}

impl Module for Last {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn handle(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> IqAnswer {
        // §2: a request is an iq get with an empty <query/>.
        if req.set || req.payload.name != "query" {
            return Err(StanzaError::BadRequest);
        }
        if to_server(req) {
            // §5: uptime, and no character data.
            return Ok(Some(last_element(self.started.elapsed().as_secs(), None)));
        }
        user(ctx.shared, req.from, &req.to.to_bare())
    }
}

fn user(shared: &Shared, from: &Jid, target: &Jid) -> IqAnswer {
    let (Some(user), true) = (target.node(), shared.router.is_local(target.domain())) else {
        return Err(StanzaError::ServiceUnavailable);
    };
    let host = target.domain();
    if from.to_bare() != *target {
        if shared.blocklists.is_blocked(shared, target, from) {
            return Err(StanzaError::ServiceUnavailable);
        }
        // §3: without a subscription to the user's presence, forbidden. A
        // missing account has no roster item either: the same answer, so
        // this does not reveal which accounts exist.
        let item = shared.store.roster_item(user, host, &from.to_bare().to_string()).map_err(|e| {
            tracing::error!(error = %e, user, host, "roster lookup for last activity");
            StanzaError::InternalServerError
        })?;
        if !item.is_some_and(|i| i.subscription.has_from()) {
            return Err(StanzaError::Forbidden);
        }
    }
    // §3: a connected or available resource: seconds 0, no text.
    if shared.router.is_online(target) {
        return Ok(Some(last_element(0, None)));
    }
    let stored = shared.store.get_data(user, host, KEY).map_err(|e| {
        tracing::error!(error = %e, user, host, "loading last activity");
        StanzaError::InternalServerError
    })?;
    match stored.as_deref().and_then(parse_record) {
        Some((at, status)) => Ok(Some(last_element(now_secs().saturating_sub(at), status))),
        // Never logged out (or unreadable): nothing to tell.
        None => Err(StanzaError::ItemNotFound),
    }
}

/// Record that `user@host` went offline (its last resource sent unavailable
/// presence or disconnected), with the status text of that presence
/// (XEP-0012 §3). For the presence/session code to call. The write is
/// deferred (batched off the runtime, see `Store::set_data_deferred`): a
/// burst of session ends must not cost one fsync each on a tokio worker.
pub fn record_logout(shared: &Shared, user: &str, host: &str, status: Option<&str>) {
    let value = format_record(now_secs(), status);
    if let Err(e) = shared.store.set_data_deferred(user, host, KEY, Some(&value)) {
        tracing::warn!(error = %e, user, host, "storing last activity");
    }
}

/// `<query xmlns='jabber:iq:last' seconds='N'>status</query>` (§2).
pub fn last_element(seconds: u64, status: Option<&str>) -> Element {
    let q = Element::new("query", NS).with_attr("seconds", seconds.to_string());
    match status {
        Some(s) if !s.is_empty() => q.with_text(s),
        _ => q,
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn format_record(at: u64, status: Option<&str>) -> String {
    format!("{at}\n{}", status.unwrap_or(""))
}

fn parse_record(s: &str) -> Option<(u64, Option<&str>)> {
    let (at, status) = s.split_once('\n').unwrap_or((s, ""));
    Some((at.trim().parse().ok()?, (!status.is_empty()).then_some(status)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip() {
        assert_eq!(parse_record(&format_record(42, Some("Heading\nHome"))), Some((42, Some("Heading\nHome"))));
        assert_eq!(parse_record(&format_record(7, None)), Some((7, None)));
        assert_eq!(parse_record("7"), Some((7, None)));
        assert_eq!(parse_record("x\ny"), None);
    }

    #[test]
    fn element_shape() {
        assert_eq!(
            last_element(903, Some("Heading Home")).to_client_string(),
            "<query xmlns='jabber:iq:last' seconds='903'>Heading Home</query>"
        );
        assert_eq!(last_element(0, None).to_client_string(), "<query xmlns='jabber:iq:last' seconds='0'/>");
    }
}
