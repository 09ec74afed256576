//! PBKDF2 cost per derivation at 4096 iterations, single thread: the
//! RustCrypto `pbkdf2` + `sha1`/`sha2` crates xmppd uses (SHA-NI picked at
//! run time through `cpufeatures`) against `ring::pbkdf2` (already in the
//! tree through rustls), plus xmppd's whole `derive_credentials` (both
//! mechanisms). `register_bulk` costs one `derive_credentials` per account.
//!
//! ```sh
//! cargo run --release --example pbkdf2_speed -- 1000
//! ```

use std::num::NonZeroU32;
use std::time::Instant;

const ITERATIONS: u32 = 4096;

fn time(label: &str, n: u32, mut f: impl FnMut(&[u8])) {
    let start = Instant::now();
    for i in 0..n {
        f(format!("password{i}").as_bytes());
    }
    println!("{label:<34} {:.3} ms", start.elapsed().as_secs_f64() * 1e3 / f64::from(n));
}

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(500);
    let salt = [7u8; 16];
    let rounds = NonZeroU32::new(ITERATIONS).expect("non-zero");
    // Both implementations agree (RFC 6070-style cross-check).
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"pencil", &salt, ITERATIONS, &mut a);
    ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA256, rounds, &salt, b"pencil", &mut b);
    assert_eq!(a, b, "ring and RustCrypto disagree");

    #[cfg(target_arch = "x86_64")]
    let sha_ni = if std::is_x86_feature_detected!("sha") { "yes" } else { "no" };
    #[cfg(not(target_arch = "x86_64"))]
    let sha_ni = "n/a";
    println!("per derivation, {ITERATIONS} iterations, {n} runs, one thread (CPU has SHA-NI: {sha_ni})");
    let (mut o20, mut o32) = ([0u8; 20], [0u8; 32]);
    time("RustCrypto PBKDF2-HMAC-SHA-1", n, |p| pbkdf2::pbkdf2_hmac::<sha1::Sha1>(p, &salt, ITERATIONS, &mut o20));
    time("RustCrypto PBKDF2-HMAC-SHA-256", n, |p| pbkdf2::pbkdf2_hmac::<sha2::Sha256>(p, &salt, ITERATIONS, &mut o32));
    time("ring PBKDF2-HMAC-SHA-1", n, |p| {
        ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA1, rounds, &salt, p, &mut o20)
    });
    time("ring PBKDF2-HMAC-SHA-256", n, |p| {
        ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA256, rounds, &salt, p, &mut o32)
    });
    time("xmppd derive_credentials (both)", n, |p| {
        let password = std::str::from_utf8(p).expect("ASCII");
        std::hint::black_box(xmppd::sasl::derive_credentials(password, ITERATIONS));
    });
}
