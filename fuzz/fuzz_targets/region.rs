#![no_main]
//! `cargo +nightly fuzz run region`: see `ssmgen::fuzz_targets::region`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ssmgen::fuzz_targets::region(data));
