//! XEP-0054 vcard-temp, and the server side of XEP-0153 vCard-based avatars.
//!
//! Storage: the serialised `<vCard xmlns='vcard-temp'>…</vCard>` under the
//! user-data key `vcard`, and the SHA-1 (lower-case hex) of the decoded
//! PHOTO/BINVAL under `avatar_hash` ("" when the vCard has no photo).
//!
//! Size bound: a stored vCard is at most [`MAX_VCARD_BYTES`] (64 KiB)
//! serialised. XEP-0153 §3.5 asks for avatars under 8 KB; 64 KiB leaves room
//! for a ~45 KiB image (base64 grows by 4/3) plus the text fields, and keeps
//! every vCard read (by any local user) cheap. Larger sets are refused with
//! `<not-acceptable/>` (RFC 6120 §8.3.3.9: the request does not meet a local
//! policy).

use super::{to_server, Ctx, IqAnswer, IqRequest, Module};
use crate::jid::Jid;
use crate::server::Shared;
use crate::session::SessionHandle;
use crate::stanza::StanzaError;
use crate::xml::{ns, Element};
use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::time::Duration;

/// The `vcard-temp` namespace (XEP-0054 §5).
pub const NS: &str = "vcard-temp";
/// The XEP-0153 presence extension namespace.
pub const NS_UPDATE: &str = "vcard-temp:x:update";
/// Largest stored vCard, serialised (see the module documentation).
pub const MAX_VCARD_BYTES: usize = 64 * 1024;

/// User-data key of the stored vCard.
pub const KEY: &str = "vcard";
/// User-data key of the XEP-0153 photo hash.
pub const HASH_KEY: &str = "avatar_hash";

/// vcard-temp.
pub struct VCard;

impl Module for VCard {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn handle(&self, req: &IqRequest<'_>, ctx: &Ctx<'_>) -> IqAnswer {
        if req.payload.name != "vCard" {
            return Err(StanzaError::BadRequest);
        }
        let me = req.from.to_bare();
        let own = req.to.node().is_some() && req.to.to_bare() == me;
        let user = me.node().unwrap_or_default();
        match (own, req.set) {
            // §3.1: one's own vCard; when none is stored the empty element
            // (the second of the two answers §3.1 allows).
            (true, false) => {
                Ok(Some(load(ctx.shared, user, me.domain())?.unwrap_or_else(|| Element::new("vCard", NS))))
            }
            // §3.2: publish or replace one's own vCard.
            (true, true) => set_own(ctx.shared, &me, req.payload).map(|_| None),
            // §3.2: a set to any JID other than one's own bare JID is
            // forbidden (or not-allowed).
            (false, true) => Err(StanzaError::Forbidden),
            // The server has no vCard of its own (XEP-0054 §3.3's closing
            // note makes one optional).
            (false, false) if to_server(req) => Err(StanzaError::ServiceUnavailable),
            // §3.3: another user's vCard, answered by the server.
            (false, false) => other(ctx.shared, req.from, &req.to.to_bare()),
        }
    }
}

/// §3.3: any local user's vCard is readable (as ejabberd and Prosody do;
/// §7: vCards are world-readable). No vCard and no such account give the
/// same `<service-unavailable/>`, as §3.3 requires against directory
/// harvesting; so does a target that has blocked the requester (XEP-0191
/// §3.2: iq from a blocked JID gets service-unavailable).
fn other(shared: &Shared, from: &Jid, target: &Jid) -> IqAnswer {
    let (Some(user), true) = (target.node(), shared.router.is_local(target.domain())) else {
        return Err(StanzaError::ServiceUnavailable);
    };
    if shared.blocklists.is_blocked(shared, target, from) {
        return Err(StanzaError::ServiceUnavailable);
    }
    match load(shared, user, target.domain())? {
        Some(v) => Ok(Some(v)),
        None => Err(StanzaError::ServiceUnavailable),
    }
}

fn load(shared: &Shared, user: &str, host: &str) -> Result<Option<Element>, StanzaError> {
    let stored = shared.store.get_data(user, host, KEY).map_err(|e| {
        tracing::error!(error = %e, user, host, "loading vCard");
        StanzaError::InternalServerError
    })?;
    match stored {
        None => Ok(None),
        Some(s) => Element::parse(s.as_bytes(), ns::CLIENT).map(Some).map_err(|e| {
            tracing::error!(error = ?e, user, host, "stored vCard does not parse");
            StanzaError::InternalServerError
        }),
    }
}

fn set_own(shared: &Shared, me: &Jid, vcard: &Element) -> Result<(), StanzaError> {
    let (user, host) = (me.node().unwrap_or_default(), me.domain());
    let serialised = serialise(vcard)?;
    let hash = photo_hash(vcard);
    // An empty vCard is a deletion: nothing stored, reads answer as for none.
    let value = (!vcard.children.is_empty() || !vcard.attrs.is_empty()).then_some(serialised.as_str());
    let fail = |e: crate::storage::StoreError| {
        tracing::error!(error = %e, user, host, "storing vCard");
        StanzaError::InternalServerError
    };
    shared.store.set_data(user, host, KEY, value).map_err(fail)?;
    shared.store.set_data(user, host, HASH_KEY, Some(&hash)).map_err(fail)?;
    // The account's sessions stamp the new hash on their next presence.
    if let Some(a) = shared.router.account(me) {
        a.avatar.set(Some(hash));
    }
    Ok(())
}

/// The vCard as stored: size-checked, and re-parsed so that what is stored
/// is always readable.
fn serialise(vcard: &Element) -> Result<String, StanzaError> {
    let mut s = String::new();
    vcard.write_to(&mut s, "");
    if s.len() > MAX_VCARD_BYTES {
        return Err(StanzaError::NotAcceptable);
    }
    Element::parse(s.as_bytes(), ns::CLIENT).map_err(|_| StanzaError::BadRequest)?;
    Ok(s)
}

/// XEP-0153 §3.1: the SHA-1 of the image data itself (the decoded BINVAL),
/// lower-case hex; "" when there is no PHOTO/BINVAL or it is empty. §3.5
/// item 5: whitespace in the base64 is ignored. A BINVAL that is not base64
/// gives "" (no usable image) rather than refusing the whole vCard.
pub fn photo_hash(vcard: &Element) -> String {
    let Some(binval) = vcard.child("PHOTO", NS).and_then(|p| p.child("BINVAL", NS)) else {
        return String::new();
    };
    let b64: String = binval.text().chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if b64.is_empty() {
        return String::new();
    }
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    match lenient.decode(b64.as_bytes()) {
        Ok(bytes) if !bytes.is_empty() => Sha1::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect(),
        _ => String::new(),
    }
}

/// The avatar hash stored with the user's vCard: `Some("")` when the vCard
/// has no photo, `None` when the user never set a vCard (or the store
/// failed). For the presence code: inject [`update_element`] into the
/// user's outgoing presence (XEP-0153 §4.1: `<photo/>` empty means "no
/// avatar"; with `None` add nothing, or the empty `<x/>` meaning "not ready").
pub fn avatar_hash(shared: &Shared, user: &str, host: &str) -> Option<String> {
    stored_hash(shared, user, host).flatten()
}

/// The stored avatar hash, or `None` when the store failed (logged).
fn stored_hash(shared: &Shared, user: &str, host: &str) -> Option<Option<String>> {
    match shared.store.get_data(user, host, HASH_KEY) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(error = %e, user, host, "loading avatar hash");
            None
        }
    }
}

/// How long a session's cached avatar hash is trusted. Stores through this
/// server update the cache at once; this bounds how stale it can be after
/// a write from outside the process (`xmppd ctl import` on the store file).
const AVATAR_TTL: Duration = Duration::from_secs(60);

/// [`avatar_hash`] for a bound session: cached in the state its account's
/// sessions share, since every available presence it broadcasts needs it
/// (a store read each time cost ~2% of a login's CPU, and more per presence
/// change). A store failure is not cached.
pub fn session_avatar_hash(shared: &Shared, s: &SessionHandle) -> Option<String> {
    let account = s.account();
    if let Some(hit) = account.as_ref().and_then(|a| a.avatar.get(AVATAR_TTL)) {
        return hit;
    }
    let gen = account.as_ref().map(|a| a.avatar.generation());
    let stored = stored_hash(shared, s.jid.node().unwrap_or(""), s.jid.domain())?;
    if let (Some(a), Some(g)) = (account, gen) {
        a.avatar.fill(g, stored.clone());
    }
    stored
}

/// `<x xmlns='vcard-temp:x:update'><photo>HASH</photo></x>` (XEP-0153 §3.1;
/// an empty `<photo/>` when `hash` is "", §4.1 item 3).
pub fn update_element(hash: &str) -> Element {
    let photo = Element::new("photo", NS_UPDATE);
    let photo = if hash.is_empty() { photo } else { photo.with_text(hash) };
    Element::new("x", NS_UPDATE).with_child(photo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vcard(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), ns::CLIENT).unwrap()
    }

    #[test]
    fn hash_of_decoded_photo() {
        // "abc" = YWJj; SHA-1("abc") is the FIPS 180 test vector.
        let v = vcard(
            "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>\n  YW\r\nJj \n</BINVAL></PHOTO></vCard>",
        );
        assert_eq!(photo_hash(&v), "a9993e364706816aba3e25717850c26c9cd0d89d");
        // Missing padding is tolerated: "ab" = YWI= .
        let v = vcard("<vCard xmlns='vcard-temp'><PHOTO><BINVAL>YWI</BINVAL></PHOTO></vCard>");
        assert_eq!(photo_hash(&v), "da23614e02469a0d7c7bd1bdab5c9c474b1904dc");
    }

    #[test]
    fn no_photo_is_empty_hash() {
        for x in [
            "<vCard xmlns='vcard-temp'/>",
            "<vCard xmlns='vcard-temp'><FN>x</FN></vCard>",
            "<vCard xmlns='vcard-temp'><PHOTO><EXTVAL>http://x/y.png</EXTVAL></PHOTO></vCard>",
            "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>  </BINVAL></PHOTO></vCard>",
            "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>!!not base64!!</BINVAL></PHOTO></vCard>",
            // Elements in another namespace are not the vCard's PHOTO.
            "<vCard xmlns='vcard-temp'><PHOTO xmlns='urn:other'><BINVAL>YWJj</BINVAL></PHOTO></vCard>",
        ] {
            assert_eq!(photo_hash(&vcard(x)), "", "{x}");
        }
    }

    #[test]
    fn serialise_roundtrips_and_bounds() {
        let v = vcard("<vCard xmlns='vcard-temp' version='3.0'><FN>A &amp; B</FN><x:X xmlns:x='urn:x'/></vCard>");
        let s = serialise(&v).unwrap();
        assert_eq!(vcard(&s), v);
        let big = Element::new("vCard", NS).with_child(Element::new("DESC", NS).with_text("x".repeat(MAX_VCARD_BYTES)));
        assert_eq!(serialise(&big), Err(StanzaError::NotAcceptable));
    }

    #[test]
    fn update_element_shapes() {
        assert_eq!(update_element("ab12").to_client_string(), "<x xmlns='vcard-temp:x:update'><photo>ab12</photo></x>");
        assert_eq!(update_element("").to_client_string(), "<x xmlns='vcard-temp:x:update'><photo/></x>");
    }
}
