#![no_main]
//! `cargo +nightly fuzz run vcf`: see `ssmgen::fuzz_targets::vcf`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ssmgen::fuzz_targets::vcf(data));
