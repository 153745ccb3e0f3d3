#![no_main]
//! `cargo +nightly fuzz run safetensors`: see `ssmgen::fuzz_targets::safetensors`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ssmgen::fuzz_targets::safetensors(data));
