#![no_main]
//! `cargo +nightly fuzz run config_json`: see `ssmgen::fuzz_targets::config_json`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ssmgen::fuzz_targets::config_json(data));
