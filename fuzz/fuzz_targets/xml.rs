#![no_main]
//! cargo-fuzz target `xml`: see harness/xml.rs for the input format and oracles.

#[path = "../harness/xml.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
