#![no_main]
//! `cargo +nightly fuzz run bcf`: see `ssmgen::fuzz_targets::bcf`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ssmgen::fuzz_targets::bcf(data));
