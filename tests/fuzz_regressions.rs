//! Replays the fuzzers' inputs through the same harnesses in `cargo test`
//! (issue 5 item 8): every crash a fuzzer found is kept as a file under
//! `fuzz/regressions/<target>/` once fixed, and the committed seed corpus
//! `fuzz/seeds/<target>/` runs too, so each oracle of the harnesses (see
//! `fuzz/harness/*.rs`) is checked on every run without cargo-fuzz.

#[path = "../fuzz/harness/c2s.rs"]
mod c2s;
#[path = "../fuzz/harness/jid.rs"]
mod jid;
#[path = "../fuzz/harness/sasl.rs"]
mod sasl;
#[path = "../fuzz/harness/xml.rs"]
mod xml;

use std::path::Path;

/// Run `harness` on every file of the target's regression and seed
/// directories; a failure names the file.
fn replay(target: &str, harness: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for kind in ["regressions", "seeds"] {
        let dir = root.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for f in files.into_iter().filter(|f| f.is_file()) {
            let data = std::fs::read(&f).unwrap();
            if std::panic::catch_unwind(|| harness(&data)).is_err() {
                panic!("{} fails the {target} harness", f.display());
            }
            count += 1;
        }
    }
    assert!(count > 0, "no inputs for {target} under {}", root.display());
}

#[test]
fn xml_inputs() {
    replay("xml", xml::run);
}

#[test]
fn jid_inputs() {
    replay("jid", jid::run);
}

#[test]
fn sasl_inputs() {
    replay("sasl", sasl::run);
}

#[test]
fn c2s_inputs() {
    replay("c2s", c2s::run);
}

/// The harnesses' oracles are live: inputs that break each rule are caught.
#[test]
fn oracles_reject_what_they_should() {
    // Chunking can only change the outcome through a framer bug, so the
    // chunk splitter itself must cover the input exactly.
    let data: Vec<u8> = (0..=255).collect();
    let chunks = xml::chunks(&data, 7);
    assert!(chunks.len() > 3 && chunks.concat() == data);
    let (events, err) = xml::frame(std::iter::once(&b"<stream:stream><a/><b>"[..]));
    assert_eq!((events.len(), err), (2, None));
    let (_, err) = xml::frame(std::iter::once(&b"<stream:stream><!-- x -->"[..]));
    assert!(err.is_some());
}
