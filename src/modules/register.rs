//! XEP-0077 In-Band Registration (jabber:iq:register).
//!
//! Two halves:
//! - [`Register`], the module, for authenticated sessions: the registration
//!   on file (§3.1), password change (§3.3) and cancellation (§3.2). These
//!   work whether or not `registration.enabled` is set: they concern an
//!   account that already exists.
//! - [`unauthenticated`] and [`stream_feature`], for the c2s negotiation
//!   code: account creation before authentication (§3.1, §3.1.1, §8), only
//!   when `registration.enabled` and the peer is in
//!   `registration.allow_from` (when that list is non-empty), at most
//!   `registration.max_per_ip` accounts per IP address per
//!   `registration.ip_window_secs` (5 per 60 s unless configured; none
//!   for addresses in `limits.exempt_networks`, loopback by default).

use super::{to_server, Ctx, IqAnswer, IqRequest, Module};
use crate::jid::{normalize_node, Jid};
use crate::server::Shared;
use crate::stanza::{StanzaError, StreamError};
use crate::storage::StoreError;
use crate::xml::{ns, Element};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The `jabber:iq:register` namespace.
pub const NS: &str = "jabber:iq:register";
/// The stream feature namespace (§8).
pub const NS_FEATURE: &str = "http://jabber.org/features/iq-register";
const INSTRUCTIONS: &str = "Choose a username and password to register with this server.";

/// jabber:iq:register for authenticated sessions.
pub struct Register;

impl Module for Register {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    /// §10: "jabber:iq:register" tells connected clients that in-band
    /// password change (and cancellation) is possible, which here is always
    /// true; account creation is advertised by the stream feature, only when
    /// enabled.
    fn features(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn handle(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> IqAnswer {
        if req.payload.name != "query" {
            return Err(StanzaError::BadRequest);
        }
        let me = req.from.to_bare();
        // The account's own server: no `to`, the account's bare JID, or its
        // domain (§3.3's example addresses the domain).
        let to_home = if to_server(req) { req.to.domain() == me.domain() } else { req.to.to_bare() == me };
        if !to_home {
            return Err(StanzaError::ServiceUnavailable);
        }
        let user = me.node().unwrap_or_default();
        if !req.set {
            // §3.1: already registered: <registered/> and what is on file
            // (the password is never on file, §3.1 lets it be empty).
            return Ok(Some(
                Element::new("query", NS)
                    .with_child(
                        Element::new("instructions", NS)
                            .with_text("You are registered; set a new password or remove the account."),
                    )
                    .with_child(Element::new("registered", NS))
                    .with_child(Element::new("username", NS).with_text(user))
                    .with_child(Element::new("password", NS)),
            ));
        }
        if req.payload.child("remove", NS).is_some() {
            cancel(ctx.shared, &me, req.payload)
        } else {
            change_password(ctx.shared, &me, req.payload)
        }
    }
}

/// §3.2: remove the account, answer the request, and close every session
/// of the account with `<not-authorized/>` ("the server SHOULD then return a
/// not-authorized stream error and terminate all active sessions"). The
/// close is requested now and happens after the requesting session has
/// written the result (its task writes the reply before it looks at close
/// requests). The store removes the account's roster, offline messages and
/// user data with it.
fn cancel(shared: &Shared, me: &Jid, query: &Element) -> IqAnswer {
    // §3.2 table: <remove/> must be the only child.
    if query.elements().count() != 1 {
        return Err(StanzaError::BadRequest);
    }
    let user = me.node().unwrap_or_default();
    match shared.store.remove_account(user, me.domain()) {
        Ok(()) => {}
        // Removed concurrently (ctl, another resource): §3.2's
        // registration-required is not among our conditions; item-not-found.
        Err(StoreError::NotFound(_)) => return Err(StanzaError::ItemNotFound),
        Err(e) => {
            tracing::error!(error = %e, user, host = me.domain(), "removing account");
            return Err(StanzaError::InternalServerError);
        }
    }
    tracing::info!(user, host = me.domain(), "account removed in-band");
    shared.forget_account(me);
    shared.router.kick(me, None, StreamError::NotAuthorized, Some("account removed"));
    Ok(None)
}

/// §3.3: store SCRAM credentials for the new password. The account's other
/// sessions keep running (as ejabberd does; they authenticated with the old
/// password, which was valid then); the next login needs the new one.
fn change_password(shared: &Shared, me: &Jid, query: &Element) -> IqAnswer {
    let user = me.node().unwrap_or_default();
    let password =
        validate_password_change(query, me, shared.config().registration_for(me.domain()).min_password_length)?;
    // PBKDF2 runs inline (as PLAIN verification does): a few milliseconds
    // at the configured iterations, once per change.
    let creds = crate::sasl::derive_credentials_with(&password, shared.config().auth.key_policy());
    match shared.store.set_credentials(user, me.domain(), &creds) {
        Ok(()) => {
            tracing::info!(user, host = me.domain(), "password changed in-band");
            Ok(None)
        }
        Err(StoreError::NotFound(_)) => Err(StanzaError::ItemNotFound),
        Err(e) => {
            tracing::error!(error = %e, user, host = me.domain(), "changing password");
            Err(StanzaError::InternalServerError)
        }
    }
}

fn field(query: &Element, name: &str) -> Option<String> {
    query.child(name, NS).map(|e| e.text())
}

/// §3.3: `<username/>` is required and must name the account (its local
/// part, or its bare JID as some clients send); the password must be
/// non-empty (an empty one "MUST NOT" replace the existing password:
/// bad-request, incomplete information) and at least `min_len` characters
/// (`not-acceptable`, local policy).
pub fn validate_password_change(query: &Element, me: &Jid, min_len: usize) -> Result<String, StanzaError> {
    let username = field(query, "username").ok_or(StanzaError::BadRequest)?;
    let username = username.trim();
    let same = match username.contains('@') {
        true => Jid::parse(username).is_ok_and(|j| j.is_bare() && j == me.to_bare()),
        false => normalize_node(username).is_ok_and(|n| Some(n.as_str()) == me.node()),
    };
    if !same {
        return Err(StanzaError::Forbidden);
    }
    let password = field(query, "password").unwrap_or_default();
    if password.is_empty() {
        return Err(StanzaError::BadRequest);
    }
    // RFC 8265 §4.2 OpaqueString (see `sasl::password`); XEP-0077 §3.1 /
    // §3.3 answer data the server does not accept with not-acceptable.
    let prepared = crate::sasl::prepare_password(&password).map_err(|_| StanzaError::NotAcceptable)?;
    if prepared.chars().count() < min_len {
        return Err(StanzaError::NotAcceptable);
    }
    Ok(password)
}

/// §3.1: the username and password of a new account. Missing or empty
/// fields are `not-acceptable` (§3.1: "does not provide all of the
/// requested information"); a username that is not a valid JID localpart is
/// `jid-malformed` (RFC 6120 §8.3.3.8); a password shorter than `min_len`
/// characters is `not-acceptable`. Returns the normalised local part.
pub fn validate_registration(query: &Element, min_len: usize) -> Result<(String, String), StanzaError> {
    let username = field(query, "username").unwrap_or_default();
    let password = field(query, "password").unwrap_or_default();
    let username = username.trim();
    if username.is_empty() || password.is_empty() {
        return Err(StanzaError::NotAcceptable);
    }
    let node = normalize_node(username).map_err(|_| StanzaError::JidMalformed)?;
    // RFC 8265 §4.2 OpaqueString (see `sasl::password`); XEP-0077 §3.1 /
    // §3.3 answer data the server does not accept with not-acceptable.
    let prepared = crate::sasl::prepare_password(&password).map_err(|_| StanzaError::NotAcceptable)?;
    if prepared.chars().count() < min_len {
        return Err(StanzaError::NotAcceptable);
    }
    Ok((node, password))
}

/// Whether unauthenticated registration on `host` is open to `peer`
/// (`[registration]` with the `[host."DOMAIN".registration]` overrides).
fn allowed(shared: &Shared, peer: IpAddr, host: &str) -> bool {
    let r = shared.config().registration_for(host);
    r.enabled && (r.allow_from.is_empty() || crate::config::in_networks(&r.allow_from, peer))
}

/// The §8 stream feature, `<register xmlns='http://jabber.org/features/iq-register'/>`,
/// when `peer` may register; `None` otherwise. XEP-0077 §12: offer it only
/// on encrypted streams (after STARTTLS / on direct TLS), as SASL is.
pub fn stream_feature(shared: &Shared, peer: IpAddr, host: &str) -> Option<String> {
    allowed(shared, peer, host).then(|| format!("<register xmlns='{NS_FEATURE}'/>"))
}

/// Answer a jabber:iq:register iq on an unauthenticated stream to `host`
/// from `peer`: the full reply `<iq/>` (result or error, the request's `id`,
/// no `from`/`to`). Call it for iq get/set only (results and errors are not
/// answered; this returns bad-request for them).
///
/// - Registration disabled, or `peer` not in `allow_from`:
///   `<service-unavailable/>` for get and set (§3.1: "If the host does not
///   support In-Band Registration, it MUST return service-unavailable").
/// - get: instructions and the empty `<username/>`, `<password/>` (§3.1).
/// - set: [`validate_registration`], then `conflict` if the account exists
///   (§3.1), `resource-constraint` beyond the per-IP rate limit, else the
///   account is created with SCRAM credentials and the result is empty.
///   A `<remove/>` before authentication is `unexpected-request` (§3.2).
///
/// XEP-0077 §3.1.1 lets the caller refuse further registrations on the
/// same stream (not-acceptable) or close it if the entity does not go on to
/// authenticate; that is the stream's business.
pub fn unauthenticated(shared: &Shared, peer: IpAddr, host: &str, iq: &Element) -> Element {
    let answer = unauthenticated_answer(shared, peer, host, iq);
    let mut reply = Element::new("iq", ns::CLIENT);
    if let Some(id) = iq.attr("id") {
        reply.set_attr("id", id);
    }
    // §3.3 (and common sense for §3.1): the request, which holds a
    // password, is not echoed in errors.
    match answer {
        Ok(payload) => {
            reply.set_attr("type", "result");
            match payload {
                Some(p) => reply.with_child(p),
                None => reply,
            }
        }
        Err(e) => {
            reply.set_attr("type", "error");
            reply.with_child(e.element())
        }
    }
}

fn unauthenticated_answer(shared: &Shared, peer: IpAddr, host: &str, iq: &Element) -> IqAnswer {
    let set = match iq.attr("type") {
        Some("get") => false,
        Some("set") => true,
        _ => return Err(StanzaError::BadRequest),
    };
    let children: Vec<&Element> = iq.elements().collect();
    let query = match children.as_slice() {
        [q] if q.is("query", NS) => *q,
        [_] => return Err(StanzaError::ServiceUnavailable),
        _ => return Err(StanzaError::BadRequest),
    };
    let host = host.to_ascii_lowercase();
    if !allowed(shared, peer, &host) || !shared.config().serves(&host) {
        return Err(StanzaError::ServiceUnavailable);
    }
    if !set {
        return Ok(Some(
            Element::new("query", NS)
                .with_child(Element::new("instructions", NS).with_text(INSTRUCTIONS))
                .with_child(Element::new("username", NS))
                .with_child(Element::new("password", NS)),
        ));
    }
    if query.child("remove", NS).is_some() {
        return Err(StanzaError::UnexpectedRequest);
    }
    let (user, password) = validate_registration(query, shared.config().registration_for(&host).min_password_length)?;
    let store_failed = |e: StoreError| {
        tracing::error!(error = %e, user, host, "registering account");
        StanzaError::InternalServerError
    };
    // Cheap checks before the rate limit and the PBKDF2 work.
    if shared.store.get_credentials(&user, &host).map_err(store_failed)?.is_some() {
        return Err(StanzaError::Conflict);
    }
    if !limiter_check(shared, peer, &host) {
        tracing::warn!(%peer, "registration rate limit reached");
        return Err(StanzaError::ResourceConstraint);
    }
    let creds = crate::sasl::derive_credentials_with(&password, shared.config().auth.key_policy());
    match shared.store.create_account(&user, &host, &creds) {
        Ok(()) => {
            tracing::info!(user, host, %peer, "account registered in-band");
            Ok(None)
        }
        Err(StoreError::Conflict(_)) => Err(StanzaError::Conflict),
        Err(e) => Err(store_failed(e)),
    }
}

/// Fixed-window counters per key: at most `limit` hits per `window`.
#[derive(Debug)]
pub struct RateLimiter<K> {
    hits: HashMap<K, (Instant, u32)>,
}

impl<K: std::hash::Hash + Eq> RateLimiter<K> {
    /// An empty limiter.
    pub fn new() -> RateLimiter<K> {
        RateLimiter { hits: HashMap::new() }
    }

    /// Count a hit for `key` at `now`, allowing `limit` per `window` (0: no
    /// limit, nothing counted); `false` when over the limit (the hit is
    /// then not counted). Expired entries are dropped as it goes.
    pub fn check(&mut self, key: K, now: Instant, limit: u32, window: Duration) -> bool {
        self.hits.retain(|_, (start, _)| now.saturating_duration_since(*start) < window);
        if limit == 0 {
            return true;
        }
        let (_, n) = self.hits.entry(key).or_insert((now, 0));
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }
}

impl<K: std::hash::Hash + Eq> Default for RateLimiter<K> {
    fn default() -> Self {
        RateLimiter::new()
    }
}

/// The registration limiter. It is process-wide state (modules cannot add
/// fields to `Shared`), keyed by the `Shared`'s address as well as the IP
/// address so that several servers in one process (tests) count
/// separately. Limits therefore reset when the server restarts.
fn limiter_check(shared: &Shared, peer: IpAddr, host: &str) -> bool {
    static LIMITER: OnceLock<Mutex<RateLimiter<(usize, IpAddr)>>> = OnceLock::new();
    let l = LIMITER.get_or_init(|| Mutex::new(RateLimiter::new()));
    let config = shared.config();
    let r = config.registration_for(host);
    if config.limits.exempt(peer) {
        return true;
    }
    let (limit, window) = (r.max_per_ip, Duration::from_secs(r.ip_window_secs.max(1)));
    // An IPv4-mapped IPv6 address counts as the IPv4 address.
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
        v4 => v4,
    };
    let key = (shared as *const Shared as usize, peer);
    l.lock().unwrap_or_else(|e| e.into_inner()).check(key, Instant::now(), limit, window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(inner: &str) -> Element {
        Element::parse(format!("<query xmlns='jabber:iq:register'>{inner}</query>").as_bytes(), ns::CLIENT).unwrap()
    }

    #[test]
    fn registration_validation() {
        assert_eq!(
            validate_registration(&q("<username> Bill </username><password>Calliope</password>"), 6),
            Ok(("bill".into(), "Calliope".into()))
        );
        for (inner, err) in [
            ("<username>bill</username>", StanzaError::NotAcceptable),
            ("<username>bill</username><password/>", StanzaError::NotAcceptable),
            ("<username/><password>Calliope</password>", StanzaError::NotAcceptable),
            ("<password>Calliope</password>", StanzaError::NotAcceptable),
            ("<username>bi ll</username><password>Calliope</password>", StanzaError::JidMalformed),
            ("<username>a@b</username><password>Calliope</password>", StanzaError::JidMalformed),
            ("<username>bill</username><password>short</password>", StanzaError::NotAcceptable),
        ] {
            assert_eq!(validate_registration(&q(inner), 6), Err(err), "{inner}");
        }
        // Length counts characters, not bytes.
        assert!(validate_registration(&q("<username>b</username><password>ééé</password>"), 4).is_err());
    }

    #[test]
    fn password_change_validation() {
        let me = Jid::parse("bill@shakespeare.lit/globe").unwrap();
        let ok = validate_password_change(&q("<username>Bill</username><password>newpass</password>"), &me, 6);
        assert_eq!(ok, Ok("newpass".into()));
        let ok = validate_password_change(
            &q("<username>bill@shakespeare.lit</username><password>newpass</password>"),
            &me,
            6,
        );
        assert_eq!(ok, Ok("newpass".into()));
        for (inner, err) in [
            ("<password>newpass</password>", StanzaError::BadRequest),
            ("<username>bill</username>", StanzaError::BadRequest),
            ("<username>bill</username><password></password>", StanzaError::BadRequest),
            ("<username>bill</username><password>abc</password>", StanzaError::NotAcceptable),
            ("<username>juliet</username><password>newpass</password>", StanzaError::Forbidden),
            ("<username>bill@other.lit</username><password>newpass</password>", StanzaError::Forbidden),
            ("<username>bill@shakespeare.lit/x</username><password>newpass</password>", StanzaError::Forbidden),
        ] {
            assert_eq!(validate_password_change(&q(inner), &me, 6), Err(err), "{inner}");
        }
    }

    #[test]
    fn rate_limiter_windows() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new();
        let w = Duration::from_secs(60);
        assert!(l.check("a", t0, 2, w));
        assert!(l.check("a", t0 + Duration::from_secs(1), 2, w));
        assert!(!l.check("a", t0 + Duration::from_secs(2), 2, w));
        assert!(l.check("b", t0 + Duration::from_secs(2), 2, w));
        assert!(!l.check("a", t0 + Duration::from_secs(59), 2, w));
        // A new window (and "b"'s has ended too).
        assert!(l.check("a", t0 + Duration::from_secs(62), 2, w));
        assert_eq!(l.hits.len(), 1, "expired keys are dropped");
        // 0: no limit, and nothing is counted.
        for _ in 0..10 {
            assert!(l.check("c", t0 + Duration::from_secs(62), 0, w));
        }
        assert_eq!(l.hits.len(), 1);
    }
}
