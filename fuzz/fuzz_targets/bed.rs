#![no_main]
//! `cargo +nightly fuzz run bed`: see `ssmgen::fuzz_targets::bed`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ssmgen::fuzz_targets::bed(data));
