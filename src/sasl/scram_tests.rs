//! SCRAM server tests: RFC 5802 §5 and RFC 7677 §3 vectors, channel
//! binding, downgrade, authzid and malformed input.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::super::client::ScramClient;
use super::super::{derive_keys, Context, Failure, Hash, Mechanism, SaslSession, Step};
use super::*;

const SHA1_SALT: &str = "QSXCR+Q6sek8bf92";
const SHA256_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";

/// "user"/"pencil" with the salts of the RFC examples.
fn lookup(user: &str) -> Option<Credentials> {
    static CREDS: std::sync::OnceLock<Credentials> = std::sync::OnceLock::new();
    let creds = CREDS.get_or_init(|| Credentials {
        sha1: derive_keys(Hash::Sha1, "pencil", &STANDARD.decode(SHA1_SALT).unwrap(), 4096),
        sha256: derive_keys(Hash::Sha256, "pencil", &STANDARD.decode(SHA256_SALT).unwrap(), 4096),
    });
    (user == "user").then(|| creds.clone())
}

fn ctx(exporter: Option<&[u8]>) -> Context {
    Context { tls_exporter: exporter.map(<[u8]>::to_vec), tls_server_end_point: None, secure: true }
}

fn fail(f: Failure) -> Step {
    Step::Failure(f)
}

fn challenge(s: &str) -> Step {
    Step::Challenge(s.as_bytes().to_vec())
}

#[test]
fn rfc5802_sha1_example() {
    let mut s = SaslSession::with_server_nonce(Mechanism::ScramSha1, ctx(None), "3rfcNHYJY1ZVvWVs7j");
    assert_eq!(
        s.step(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", &mut lookup),
        challenge("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
    );
    let last = b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
    assert_eq!(
        s.step(last, &mut lookup),
        Step::Success { username: "user".into(), additional: Some(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=".to_vec()) }
    );
    assert_eq!(s.step(last, &mut lookup), fail(Failure::MalformedRequest), "step after completion");
}

#[test]
fn rfc7677_sha256_example() {
    let nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    let mut s = SaslSession::with_server_nonce(Mechanism::ScramSha256, ctx(None), nonce);
    assert_eq!(
        s.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &mut lookup),
        challenge("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    );
    let last = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                 p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    let v = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec();
    assert_eq!(s.step(last, &mut lookup), Step::Success { username: "user".into(), additional: Some(v) });
}

/// Run a client against a server session; the last server step.
fn exchange(mech: Mechanism, ctx: Context, mut client: ScramClient) -> Step {
    let mut s = SaslSession::new(mech, ctx);
    let first = match s.step(&client.first_message(), &mut lookup) {
        Step::Challenge(first) => first,
        other => return other,
    };
    let last = client.handle_challenge(&first).unwrap();
    s.step(&last, &mut lookup)
}

#[test]
fn wrong_password() {
    for (mech, hash) in [(Mechanism::ScramSha1, Hash::Sha1), (Mechanism::ScramSha256, Hash::Sha256)] {
        let c = ScramClient::new(hash, "user", "pencil2", None);
        assert_eq!(exchange(mech, ctx(None), c), fail(Failure::NotAuthorized));
    }
}

#[test]
fn unknown_user_fails_only_at_the_end() {
    for name in ["nobody", "bad/name"] {
        let mut s = SaslSession::new(Mechanism::ScramSha256, ctx(None));
        let mut c = ScramClient::new(Hash::Sha256, name, "pencil", None);
        let Step::Challenge(first) = s.step(&c.first_message(), &mut lookup) else { panic!("no server-first") };
        let first = String::from_utf8(first).unwrap();
        // Iterations mirror the last real account seen (4096 in these tests,
        // but other tests in the process may store other counts).
        assert!(first.contains(",s=") && first.contains(",i="), "{first}");
        let last = c.handle_challenge(first.as_bytes()).unwrap();
        assert_eq!(s.step(&last, &mut lookup), fail(Failure::NotAuthorized));
    }
    // The fake salt is stable across attempts.
    let salt = |_| {
        let mut s = SaslSession::new(Mechanism::ScramSha1, ctx(None));
        let Step::Challenge(f) = s.step(b"n,,n=ghost,r=abc", &mut lookup) else { panic!() };
        String::from_utf8(f).unwrap().split(',').nth(1).unwrap().to_owned()
    };
    assert_eq!(salt(0), salt(1));
}

#[test]
fn tls_exporter_plus() {
    let cb = b"exporter-data-32-bytes..........".to_vec();
    for (mech, hash) in [(Mechanism::ScramSha1Plus, Hash::Sha1), (Mechanism::ScramSha256Plus, Hash::Sha256)] {
        let good = ScramClient::new(hash, "user", "pencil", Some(cb.clone()));
        assert!(matches!(exchange(mech, ctx(Some(&cb)), good), Step::Success { .. }));
        let other = ScramClient::new(hash, "user", "pencil", Some(b"other".to_vec()));
        assert_eq!(exchange(mech, ctx(Some(&cb)), other), fail(Failure::NotAuthorized));
        // No exporter on this connection: p= cannot be honoured.
        let good = ScramClient::new(hash, "user", "pencil", Some(cb.clone()));
        assert_eq!(exchange(mech, ctx(None), good), fail(Failure::NotAuthorized));
    }
}

#[test]
fn gs2_flag_rules() {
    let cb: &[u8] = b"exporter";
    let first = |mech, exporter, msg: &[u8]| SaslSession::new(mech, ctx(exporter)).step(msg, &mut lookup);
    // Downgrade: "y" while this connection supports -PLUS.
    assert_eq!(first(Mechanism::ScramSha256, Some(cb), b"y,,n=user,r=abc"), fail(Failure::NotAuthorized));
    assert!(matches!(first(Mechanism::ScramSha256, None, b"y,,n=user,r=abc"), Step::Challenge(_)));
    assert!(matches!(first(Mechanism::ScramSha256, Some(cb), b"n,,n=user,r=abc"), Step::Challenge(_)));
    // -PLUS needs p=; p= needs -PLUS; only tls-exporter is supported.
    for msg in [&b"n,,n=user,r=abc"[..], b"y,,n=user,r=abc"] {
        assert_eq!(first(Mechanism::ScramSha1Plus, Some(cb), msg), fail(Failure::MalformedRequest));
    }
    let p = b"p=tls-exporter,,n=user,r=abc";
    assert_eq!(first(Mechanism::ScramSha1, Some(cb), p), fail(Failure::MalformedRequest));
    assert!(matches!(first(Mechanism::ScramSha1Plus, Some(cb), p), Step::Challenge(_)));
    let unique = b"p=tls-unique,,n=user,r=abc";
    assert_eq!(first(Mechanism::ScramSha1Plus, Some(cb), unique), fail(Failure::NotAuthorized));
    let y_client = ScramClient::new(Hash::Sha1, "user", "pencil", None).with_y_flag();
    assert!(matches!(exchange(Mechanism::ScramSha1, ctx(None), y_client), Step::Success { .. }));
}

#[test]
fn c_attribute_must_match_gs2_header() {
    let mut s = SaslSession::with_server_nonce(Mechanism::ScramSha1, ctx(None), "3rfcNHYJY1ZVvWVs7j");
    s.step(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", &mut lookup);
    // c=eSws is "y,,": not what the client sent first.
    let last = b"c=eSws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
    assert_eq!(s.step(last, &mut lookup), fail(Failure::NotAuthorized));
    // A nonce other than the combined one.
    let mut s = SaslSession::with_server_nonce(Mechanism::ScramSha1, ctx(None), "3rfcNHYJY1ZVvWVs7j");
    s.step(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", &mut lookup);
    let last = b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
    assert_eq!(s.step(last, &mut lookup), fail(Failure::NotAuthorized));
}

#[test]
fn authzid_rules() {
    for (authzid, expect_ok) in
        [("user", true), ("user@example.com", true), ("admin@example.com", false), ("user@example.com/r", false)]
    {
        let c = ScramClient::new(Hash::Sha256, "user", "pencil", None).with_authzid(authzid);
        let step = exchange(Mechanism::ScramSha256, ctx(None), c);
        if expect_ok {
            assert!(matches!(step, Step::Success { .. }), "{authzid}");
        } else {
            assert_eq!(step, fail(Failure::InvalidAuthzid), "{authzid}");
        }
    }
    // Bad password with a foreign authzid is still not-authorized.
    let c = ScramClient::new(Hash::Sha256, "user", "nope", None).with_authzid("admin@example.com");
    assert_eq!(exchange(Mechanism::ScramSha256, ctx(None), c), fail(Failure::NotAuthorized));
}

#[test]
fn malformed_client_first() {
    let bad: &[&[u8]] = &[
        b"\xff\xfe",
        b"garbage",
        b"n,",
        b"n,,",
        b"n,,r=abc",
        b"n,,n=user",
        b"n,,n=user,r=",
        b"n,,n=,r=abc",
        b"n,,n=us=er,r=abc",
        b"n,,n=user=2,r=abc",
        b"n,,n=user,r=ab\x01c",
        b"n,,m=ext,n=user,r=abc",
        b"n,a,n=user,r=abc",
        b"n,a=,n=user,r=abc",
        b"x,,n=user,r=abc",
        b"p=,,n=user,r=abc",
        b"n,,n=user,r=abc,123",
        b"n,,n=user,r=abc,=x",
    ];
    for msg in bad {
        let step = SaslSession::new(Mechanism::ScramSha1, ctx(None)).step(msg, &mut lookup);
        assert_eq!(step, fail(Failure::MalformedRequest), "{}", String::from_utf8_lossy(msg));
    }
    // Optional extensions are accepted; escaped names are decoded.
    let ok = SaslSession::new(Mechanism::ScramSha1, ctx(None)).step(b"n,,n=user,r=abc,x=1", &mut lookup);
    assert!(matches!(ok, Step::Challenge(_)));
    assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
}

#[test]
fn malformed_client_final() {
    let nonce = "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
    let bad: Vec<Vec<u8>> = [
        "\u{0}".to_owned(),
        "garbage".to_owned(),
        format!("c=biws,r={nonce}"),
        format!("c=biws,r={nonce},p=!!notbase64!!"),
        format!("c=biws,r={nonce},p=AAAA"),
        format!("c=biws,r={nonce},p="),
        format!("r={nonce},p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="),
        "c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=".to_owned(),
        format!("c=%%%,r={nonce},p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="),
        format!("c=biws,r={nonce},9,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="),
    ]
    .into_iter()
    .map(String::into_bytes)
    .chain([b"c=biws,\xff,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=".to_vec()])
    .collect();
    for msg in bad {
        let mut s = SaslSession::with_server_nonce(Mechanism::ScramSha1, ctx(None), "3rfcNHYJY1ZVvWVs7j");
        assert!(matches!(s.step(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", &mut lookup), Step::Challenge(_)));
        assert_eq!(s.step(&msg, &mut lookup), fail(Failure::MalformedRequest), "{}", String::from_utf8_lossy(&msg));
        assert_eq!(s.step(&msg, &mut lookup), fail(Failure::MalformedRequest));
    }
}

#[test]
fn empty_initial_response() {
    let mut s = SaslSession::with_server_nonce(Mechanism::ScramSha1, ctx(None), "3rfcNHYJY1ZVvWVs7j");
    assert_eq!(s.step(b"", &mut lookup), Step::Challenge(vec![]));
    assert!(matches!(s.step(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", &mut lookup), Step::Challenge(_)));
    let mut s = SaslSession::new(Mechanism::ScramSha1, ctx(None));
    assert_eq!(s.step(b"", &mut lookup), Step::Challenge(vec![]));
    assert_eq!(s.step(b"", &mut lookup), fail(Failure::MalformedRequest));
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic fuzz over both steps.
    let mut x: u32 = 0x1234_5678;
    let alphabet = b"npyrcsima=,2CD3+/\x00\xffuser";
    for _ in 0..2000 {
        let mut msg = Vec::new();
        for _ in 0..(x % 24) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            msg.push(alphabet[(x as usize) % alphabet.len()]);
        }
        for mech in [Mechanism::ScramSha1, Mechanism::ScramSha256Plus, Mechanism::Plain] {
            let mut s = SaslSession::new(mech, ctx(Some(b"cb")));
            s.step(&msg, &mut lookup);
            s.step(&msg, &mut lookup);
        }
    }
}
