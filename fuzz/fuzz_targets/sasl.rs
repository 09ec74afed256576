#![no_main]
//! cargo-fuzz target `sasl`: see harness/sasl.rs for the input format and oracles.

#[path = "../harness/sasl.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
