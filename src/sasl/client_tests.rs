//! Client tests: round trips against the server for every mechanism.

use super::super::{derive_credentials, Context, Failure, SaslSession, Step};
use super::*;
use crate::storage::Credentials;

fn creds() -> Credentials {
    static CREDS: std::sync::OnceLock<Credentials> = std::sync::OnceLock::new();
    CREDS.get_or_init(|| derive_credentials("s3cr=t,pw", 4096)).clone()
}

fn lookup(user: &str) -> Option<Credentials> {
    matches!(user, "alice" | "o,d=name").then(creds)
}

/// One full SCRAM exchange; the client's verdict on the server's success.
fn run(client: &mut ScramClient, exporter: Option<&[u8]>) -> Result<String, String> {
    let ctx = Context { tls_exporter: exporter.map(<[u8]>::to_vec), tls_server_end_point: None, secure: true };
    let mut server = SaslSession::new(client.mechanism(), ctx);
    let Step::Challenge(first) = server.step(&client.first_message(), &mut lookup) else {
        return Err("no server-first".into());
    };
    let last = client.handle_challenge(&first)?;
    match server.step(&last, &mut lookup) {
        Step::Success { username, additional: Some(v) } => client.verify_success(&v).map(|()| username),
        other => Err(format!("{other:?}")),
    }
}

#[test]
fn round_trip_all_mechanisms() {
    let cb = b"tls-exporter bytes".to_vec();
    for hash in [Hash::Sha1, Hash::Sha256] {
        for binding in [None, Some(cb.clone())] {
            let mut c = ScramClient::new(hash, "Alice", "s3cr=t,pw", binding.clone());
            assert_eq!(c.mechanism().is_plus(), binding.is_some());
            assert_eq!(c.mechanism().hash(), Some(hash));
            assert_eq!(run(&mut c, Some(&cb)), Ok("alice".to_owned()), "{:?}", c.mechanism());
        }
    }
    let mut s = SaslSession::new(Mechanism::Plain, Context { secure: true, ..Context::default() });
    let step = s.step(&plain_message("", "alice", "s3cr=t,pw"), &mut lookup);
    assert_eq!(step, Step::Success { username: "alice".into(), additional: None });
}

#[test]
fn escaped_username_and_authzid() {
    let mut c = ScramClient::new(Hash::Sha256, "o,d=name", "s3cr=t,pw", None).with_authzid("o,d=name@example.org");
    assert_eq!(run(&mut c, None), Ok("o,d=name".to_owned()));
}

#[test]
fn salted_password_cache_is_reused() {
    let mut first = ScramClient::new(Hash::Sha256, "alice", "s3cr=t,pw", None);
    run(&mut first, None).unwrap();
    let cached = first.salted_password_cache().unwrap().clone();
    let keys = creds().sha256;
    assert_eq!((cached.salt.as_slice(), cached.iterations), (keys.salt.as_slice(), keys.iterations));
    assert_eq!(cached.salted_password, salted_password(Hash::Sha256, "s3cr=t,pw", &keys.salt, keys.iterations));
    // The password is not consulted when the cache matches.
    let mut fast = ScramClient::new(Hash::Sha256, "alice", "wrong", None).with_salted_password(cached.clone());
    assert_eq!(run(&mut fast, None), Ok("alice".to_owned()));
    // A cache for other parameters is ignored.
    let stale = SaltedPassword { salt: b"other".to_vec(), ..cached };
    let mut slow = ScramClient::new(Hash::Sha256, "alice", "s3cr=t,pw", None).with_salted_password(stale);
    assert_eq!(run(&mut slow, None), Ok("alice".to_owned()));
}

#[test]
fn wrong_password_is_refused() {
    let mut c = ScramClient::new(Hash::Sha1, "alice", "nope", None);
    assert_eq!(run(&mut c, None), Err(format!("{:?}", Step::Failure(Failure::NotAuthorized))));
}

/// The RFC 5802 §5 client, after client-final.
fn rfc5802_client() -> (ScramClient, Vec<u8>) {
    let mut c = ScramClient::new(Hash::Sha1, "user", "pencil", None).with_nonce("fyko+d2lbbFgONRv9qkxdawL");
    assert_eq!(c.first_message(), b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
    let last = c.handle_challenge(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096").unwrap();
    (c, last)
}

#[test]
fn client_checks_the_server() {
    let (mut c, last) = rfc5802_client();
    // RFC 5802 §5 client-final-message, byte for byte.
    assert_eq!(
        String::from_utf8(last).unwrap(),
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    );
    assert_eq!(c.verify_success(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="), Ok(()));
    assert!(c.verify_success(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").is_err(), "out of order");
    for bad in [&b"v=AAAApqV8S7suAoZWja4dJRkFsKQ="[..], b"e=invalid-proof", b"\xff", b"v=!!", b""] {
        assert!(rfc5802_client().0.verify_success(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }

    let bad_first: &[&[u8]] = &[
        b"r=other3rfc,s=QSXCR+Q6sek8bf92,i=4096",
        b"r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096",
        b"r=fyko+d2lbbFgONRv9qkxdawLx,s=!!,i=4096",
        b"r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=0",
        b"r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=99999999999",
        b"r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92",
        b"m=x,r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=1",
        b"\xff",
    ];
    for msg in bad_first {
        let mut c = ScramClient::new(Hash::Sha1, "user", "pencil", None).with_nonce("fyko+d2lbbFgONRv9qkxdawL");
        c.first_message();
        assert!(c.handle_challenge(msg).is_err(), "{}", String::from_utf8_lossy(msg));
    }
}

#[test]
fn rfc7677_client_final() {
    let mut c = ScramClient::new(Hash::Sha256, "user", "pencil", None).with_nonce("rOprNGfwEbeRWgbNEkqO");
    c.first_message();
    let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    let last = c.handle_challenge(server_first).unwrap();
    assert_eq!(
        String::from_utf8(last).unwrap(),
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    assert!(c.verify_success(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").is_ok());
}
