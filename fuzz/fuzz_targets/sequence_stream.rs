#![no_main]
//! `cargo +nightly fuzz run sequence_stream`: see `ssmgen::fuzz_targets::sequence_stream`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ssmgen::fuzz_targets::sequence_stream(data));
