//! PLAIN (RFC 4616), checked against the SCRAM-SHA-256 keys: the server
//! recomputes StoredKey from the password, it never stores the password.

use super::password::{prepare_password, verify_keys};
use super::{authzid_allowed, keys_for, Failure, Hash};
use crate::storage::Credentials;

/// A successful PLAIN exchange.
pub(crate) struct Authenticated {
    pub(crate) username: String,
    pub(crate) authzid: Option<String>,
}

/// The normalised authcid of a PLAIN message, if it has one.
pub(crate) fn authcid(input: &[u8]) -> Option<String> {
    let name = input.split(|&b| b == 0).nth(1)?;
    crate::jid::normalize_node(std::str::from_utf8(name).ok()?).ok()
}

/// Check `authzid NUL authcid NUL passwd`.
pub(crate) fn authenticate(
    input: &[u8],
    lookup: &mut dyn FnMut(&str) -> Option<Credentials>,
) -> Result<Authenticated, Failure> {
    // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd,
    // so exactly two NULs.
    let mut parts = input.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Failure::MalformedRequest);
    };
    // RFC 4616 §2: every field is UTF-8; authcid and passwd are 1*SAFE.
    fn utf8(b: &[u8]) -> Result<&str, Failure> {
        std::str::from_utf8(b).map_err(|_| Failure::MalformedRequest)
    }
    let (authzid, authcid, passwd) = (utf8(authzid)?, utf8(authcid)?, utf8(passwd)?);
    if authcid.is_empty() || passwd.is_empty() {
        return Err(Failure::MalformedRequest);
    }
    // RFC 4616 §2 with RFC 8265 §4.2 (OpaqueString for SASLprep): the
    // password is prepared as it was when the keys were derived. One the
    // profile rejects (a control character, say) is still valid PLAIN syntax
    // (1*SAFE), so it is not malformed-request (RFC 6120 §6.5.9) but
    // credentials that cannot be right: not-authorized (§6.5.10). No account
    // is looked up, so this says nothing about which accounts exist.
    let Ok(passwd) = prepare_password(passwd) else {
        return Err(Failure::NotAuthorized);
    };
    // A malformed username is answered like an unknown one (not-authorized),
    // and both still run PBKDF2 against fake keys so timing does not tell.
    let user = crate::jid::normalize_node(authcid).ok();
    let mut found = None;
    let mut once = |u: &str| {
        found = lookup(u);
        found.clone()
    };
    let (mut keys, mut known) = keys_for(Hash::Sha256, user.as_deref(), authcid, &mut once);
    let mut hash = Hash::Sha256;
    // An account imported with SHA-1 keys only (see `piefxis::creds`).
    if let Some(c) = found.filter(|c| c.sha256.stored_key.is_empty() && !c.sha1.stored_key.is_empty()) {
        (keys, known, hash) = (c.sha1, true, Hash::Sha1);
    }
    let verified = verify_keys(hash, passwd.as_bytes(), &keys);
    let username = match user {
        Some(u) if known && verified => u,
        _ => return Err(Failure::NotAuthorized),
    };
    // RFC 4616 §2 / RFC 6120 §6.4.6: an authzid the authcid may not act as
    // is refused, once the credentials are known to be good.
    if authzid.is_empty() {
        return Ok(Authenticated { username, authzid: None });
    }
    if !authzid_allowed(authzid, &username) {
        return Err(Failure::InvalidAuthzid);
    }
    Ok(Authenticated { username, authzid: Some(authzid.to_owned()) })
}

#[cfg(test)]
mod tests {
    use super::super::{client::plain_message, derive_credentials, Context, Mechanism, SaslSession, Step};
    use super::*;

    fn lookup(user: &str) -> Option<Credentials> {
        static CREDS: std::sync::OnceLock<Credentials> = std::sync::OnceLock::new();
        (user == "juliet").then(|| CREDS.get_or_init(|| derive_credentials("r0m30", 4096)).clone())
    }

    fn run(messages: &[&[u8]]) -> Vec<Step> {
        let mut s = SaslSession::new(Mechanism::Plain, Context { secure: true, ..Context::default() });
        messages.iter().map(|m| s.step(m, &mut lookup)).collect()
    }

    fn ok(user: &str) -> Step {
        Step::Success { username: user.into(), additional: None }
    }

    #[test]
    fn good_password() {
        assert_eq!(run(&[b"\0juliet\0r0m30"]), [ok("juliet")]);
        assert_eq!(run(&[&plain_message("", "Juliet", "r0m30")]), [ok("juliet")]);
    }

    #[test]
    fn bad_password_and_unknown_user() {
        let nope = Step::Failure(Failure::NotAuthorized);
        assert_eq!(run(&[b"\0juliet\0romeo"]), [nope]);
        let nope = Step::Failure(Failure::NotAuthorized);
        assert_eq!(run(&[b"\0romeo\0r0m30"]), [nope]);
        let nope = Step::Failure(Failure::NotAuthorized);
        assert_eq!(run(&[b"\0jul/iet\0r0m30"]), [nope], "malformed username is not-authorized");
    }

    #[test]
    fn authzid() {
        assert_eq!(run(&[b"juliet\0juliet\0r0m30"]), [ok("juliet")]);
        assert_eq!(run(&[b"juliet@capulet.lit\0juliet\0r0m30"]), [ok("juliet")]);
        let bad = Step::Failure(Failure::InvalidAuthzid);
        assert_eq!(run(&[b"romeo@montague.lit\0juliet\0r0m30"]), [bad]);
        let bad = Step::Failure(Failure::InvalidAuthzid);
        assert_eq!(run(&[b"juliet@capulet.lit/balcony\0juliet\0r0m30"]), [bad]);
        // A bad password is not-authorized whatever the authzid says.
        let nope = Step::Failure(Failure::NotAuthorized);
        assert_eq!(run(&[b"romeo\0juliet\0wrong"]), [nope]);

        let mut s = SaslSession::new(Mechanism::Plain, Context::default());
        assert_eq!(s.step(b"Juliet@capulet.lit\0juliet\0r0m30", &mut lookup), ok("juliet"));
        assert_eq!(s.authzid(), Some("Juliet@capulet.lit"));
    }

    #[test]
    fn malformed() {
        let m = || Step::Failure(Failure::MalformedRequest);
        for bad in
            [&b"juliet\0r0m30"[..], b"\0\0juliet\0r0m30", b"\0juliet\0", b"\0\0r0m30", b"\0juliet\0r0\xffm30", b"\xff"]
        {
            assert_eq!(run(&[bad]), [m()], "{bad:?}");
        }
    }

    #[test]
    fn empty_initial_response_then_message() {
        let c = Step::Challenge(vec![]);
        assert_eq!(run(&[b"", b"\0juliet\0r0m30"]), [c, ok("juliet")]);
        let c = Step::Challenge(vec![]);
        assert_eq!(run(&[b"", b""]), [c, Step::Failure(Failure::MalformedRequest)]);
    }

    #[test]
    fn step_after_completion() {
        let m = Step::Failure(Failure::MalformedRequest);
        assert_eq!(run(&[b"\0juliet\0r0m30", b"\0juliet\0r0m30"]), [ok("juliet"), m]);
        let m = Step::Failure(Failure::MalformedRequest);
        assert_eq!(run(&[b"\0juliet\0bad", b"\0juliet\0r0m30"]), [Step::Failure(Failure::NotAuthorized), m]);
    }
}
