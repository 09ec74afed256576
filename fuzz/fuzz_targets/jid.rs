#![no_main]
//! cargo-fuzz target `jid`: see harness/jid.rs for the input format and oracles.

#[path = "../harness/jid.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
