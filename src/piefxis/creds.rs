//! Credentials in XEP-0227 (§4.3): the `password` attribute and
//! `<scram-credentials mechanism='SCRAM-SHA-1|SCRAM-SHA-256'/>`.
//!
//! xmppd keeps keys for both SHA-1 and SHA-256. A source that only has one
//! family (ejabberd with `auth_password_format: scram` keeps one
//! `auth_scram_hash`) gives an account whose other family is *absent*:
//! empty keys, iteration count 0. SASL treats an absent family like a wrong
//! password, so such a user logs in with the mechanism the old server had
//! (and PLAIN over TLS, checked against whichever family is present).
//!
//! ejabberd 23.01 writes each key base64-encoded twice (it base64-encodes
//! the base64 text it stores). A key whose single decoding has the wrong
//! length for the hash but whose double decoding fits is read that way; the
//! salt of the same element is then decoded twice too.

use super::NS_SCRAM;
use crate::storage::{Credentials, ScramKeys};
use crate::xml::Element;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

/// Whether these keys are [`ScramKeys::absent`] (a hash family the source
/// did not have).
pub fn is_absent(k: &ScramKeys) -> bool {
    k.stored_key.is_empty()
}

/// The `<scram-credentials/>` children of `user`, merged into one
/// [`Credentials`]; `Ok(None)` when there are none. Unknown mechanisms
/// (SCRAM-SHA-512, ...) are reported in `skipped`.
pub fn parse(user: &Element, skipped: &mut Vec<String>) -> Result<Option<Credentials>, String> {
    let (mut sha1, mut sha256) = (None, None);
    for el in user.elements().filter(|e| e.is("scram-credentials", NS_SCRAM)) {
        let mech = el.attr("mechanism").unwrap_or_default();
        let (slot, len) = match mech {
            "SCRAM-SHA-1" => (&mut sha1, 20),
            "SCRAM-SHA-256" => (&mut sha256, 32),
            other => {
                skipped.push(format!("<scram-credentials mechanism='{other}'> (unsupported mechanism)"));
                continue;
            }
        };
        let k = keys(el, mech, len)?;
        // §4.3: one element per mechanism. Prosody 0.12's migrator appends a
        // second, identical one when run twice over the same file: accepted.
        match slot {
            Some(old) if *old != k => {
                return Err(format!("two different <scram-credentials mechanism='{mech}'> elements"))
            }
            _ => *slot = Some(k),
        }
    }
    Ok(match (sha1, sha256) {
        (None, None) => None,
        (a, b) => {
            Some(Credentials { sha1: a.unwrap_or_else(ScramKeys::absent), sha256: b.unwrap_or_else(ScramKeys::absent) })
        }
    })
}

fn keys(el: &Element, mech: &str, len: usize) -> Result<ScramKeys, String> {
    let text = |name: &str| {
        let t = el.child(name, NS_SCRAM).map(|c| c.text()).ok_or_else(|| format!("{mech}: missing <{name}/>"))?;
        Ok::<String, String>(t.trim().to_string())
    };
    let decode = |name: &str, s: &str| B64.decode(s).map_err(|e| format!("{mech}: <{name}/> is not base64 ({e})"));
    let iter_text = text("iter-count")?;
    let iterations: u32 = iter_text
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{mech}: <iter-count/> {iter_text:?} is not a positive integer"))?;
    let (salt, stored, server) = (text("salt")?, text("stored-key")?, text("server-key")?);
    let mut stored_key = decode("stored-key", &stored)?;
    let mut server_key = decode("server-key", &server)?;
    let mut salt = decode("salt", &salt)?;
    if stored_key.len() != len {
        // ejabberd 23.01: base64 of the base64 text.
        let twice = |b: &[u8]| B64.decode(b).ok();
        match (twice(&stored_key), twice(&server_key), twice(&salt)) {
            (Some(st), Some(sv), Some(sa)) if st.len() == len && sv.len() == len => {
                stored_key = st;
                server_key = sv;
                salt = sa;
            }
            _ => return Err(format!("{mech}: <stored-key/> has {} bytes, expected {len}", stored_key.len())),
        }
    }
    if server_key.len() != len {
        return Err(format!("{mech}: <server-key/> has {} bytes, expected {len}", server_key.len()));
    }
    if salt.is_empty() {
        return Err(format!("{mech}: empty <salt/>"));
    }
    Ok(ScramKeys { salt, iterations, stored_key, server_key })
}

/// The `<scram-credentials/>` elements for `creds` (present families only).
pub fn elements(creds: &Credentials) -> Vec<Element> {
    [("SCRAM-SHA-1", &creds.sha1), ("SCRAM-SHA-256", &creds.sha256)]
        .into_iter()
        .filter(|(_, k)| !is_absent(k))
        .map(|(mech, k)| {
            let child = |name: &str, v: String| Element::new(name, NS_SCRAM).with_text(v);
            Element::new("scram-credentials", NS_SCRAM)
                .with_attr("mechanism", mech)
                .with_child(child("iter-count", k.iterations.to_string()))
                .with_child(child("salt", B64.encode(&k.salt)))
                .with_child(child("server-key", B64.encode(&k.server_key)))
                .with_child(child("stored-key", B64.encode(&k.stored_key)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(xml: &str) -> Element {
        Element::parse(xml.as_bytes(), super::super::NS).unwrap()
    }

    #[test]
    fn round_trips_and_reads_ejabberd_double_base64() {
        let c = crate::sasl::derive_credentials("pw", 4096);
        let mut u = Element::new("user", super::super::NS).with_attr("name", "a");
        for e in elements(&c) {
            u = u.with_child(e);
        }
        assert_eq!(parse(&u, &mut Vec::new()).unwrap(), Some(c.clone()));

        // ejabberd 23.01 (sha1.example in tests/fixtures/ejabberd-piefxis).
        let ej = user(
            "<user name='carol'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>\
             <iter-count>4096</iter-count><salt>eHN4RzlGKzFIV1l6c3NSblRYdmluQT09</salt>\
             <server-key>Z3pkK2tFRENZSkwyWFFtRldPMVJtaEVwK3U4PQ==</server-key>\
             <stored-key>Tm9aUm9PdC9KbVVKRlhoSGpMdThUM2RGMzJrPQ==</stored-key></scram-credentials></user>",
        );
        let c = parse(&ej, &mut Vec::new()).unwrap().unwrap();
        assert!(is_absent(&c.sha256));
        assert_eq!(c.sha1.salt.len(), 16);
        assert!(crate::sasl::verify_password("carol-pw", &c));
        assert!(!crate::sasl::verify_password("wrong", &c));
        // Only the present family is exported.
        assert_eq!(elements(&c).len(), 1);
    }

    #[test]
    fn errors_name_the_problem() {
        let bad = |inner: &str| {
            let u = user(&format!(
                "<user name='a'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>{inner}\
                 </scram-credentials></user>"
            ));
            parse(&u, &mut Vec::new()).unwrap_err()
        };
        assert_eq!(bad("<salt>AA==</salt>"), "SCRAM-SHA-1: missing <iter-count/>");
        let e = bad(
            "<iter-count>0</iter-count><salt>AA==</salt><server-key>AA==</server-key><stored-key>AA==</stored-key>",
        );
        assert!(e.contains("is not a positive integer"), "{e}");
        let e = bad(
            "<iter-count>1</iter-count><salt>AA==</salt><server-key>AA==</server-key><stored-key>AA==</stored-key>",
        );
        assert_eq!(e, "SCRAM-SHA-1: <stored-key/> has 1 bytes, expected 20");
        let mut skipped = Vec::new();
        let u =
            user("<user name='a'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-512'/></user>");
        assert_eq!(parse(&u, &mut skipped).unwrap(), None);
        assert_eq!(skipped.len(), 1);
    }
}
