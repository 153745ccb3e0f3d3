#![no_main]
//! `cargo +nightly fuzz run indexed_fasta`: see `ssmgen::fuzz_targets::indexed_fasta`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ssmgen::fuzz_targets::indexed_fasta(data));
