#![no_main]
//! cargo-fuzz target `c2s`: see harness/c2s.rs for the input format and oracles.

#[path = "../harness/c2s.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
