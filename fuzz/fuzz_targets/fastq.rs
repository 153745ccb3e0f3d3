#![no_main]
//! `cargo +nightly fuzz run fastq`: see `ssmgen::fuzz_targets::fastq`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ssmgen::fuzz_targets::fastq(data));
