//! Replays every committed fuzz input — the seed corpora under `fuzz/corpus/TARGET/` and any
//! crash reproducers kept under `fuzz/artifacts/TARGET/` — through the same target functions
//! `cargo fuzz` runs (`ssmgen::fuzz_targets`), on stable Rust, in seconds. A panic fails the
//! test and names the file.

use std::path::Path;

use ssmgen::fuzz_targets::{TARGETS, by_name};

fn replay(dir: &Path) -> usize {
    let Ok(targets) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut count = 0;
    for target in targets {
        let target = target.unwrap();
        let name = target.file_name().to_string_lossy().into_owned();
        let f =
            by_name(&name).unwrap_or_else(|| panic!("{}: no target named {name}", dir.display()));
        for input in std::fs::read_dir(target.path()).unwrap() {
            let path = input.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| f(&data));
            assert!(outcome.is_ok(), "{} panics", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn corpus_and_reproducers_replay_without_panics() {
    let seeds = replay(Path::new("fuzz/corpus"));
    let crashes = replay(Path::new("fuzz/artifacts"));
    assert!(seeds >= TARGETS.len(), "only {seeds} seed inputs");
    eprintln!("replayed {seeds} corpus inputs and {crashes} reproducers");
}

#[test]
fn every_target_has_a_seed_corpus() {
    for (name, _) in TARGETS {
        let dir = Path::new("fuzz/corpus").join(name);
        assert!(
            std::fs::read_dir(&dir).is_ok_and(|d| d.count() > 0),
            "{} is empty",
            dir.display()
        );
    }
}

/// The seeds are meant to be valid: check the main ones parse, so the fuzzer starts from
/// inputs that reach deep into each parser.
#[test]
fn seeds_are_valid_inputs() {
    let tiny = std::fs::read("fuzz/corpus/safetensors/tiny").unwrap();
    let config = ssmgen::model::MambaConfig::from_json(ssmgen::fuzz_targets::TINY_CONFIG).unwrap();
    ssmgen::model::ModelWeights::from_bytes(&config, &tiny, Path::new("tiny")).unwrap();
    let data = std::fs::read("fuzz/corpus/indexed_fasta/plain").unwrap();
    let n = u16::from_le_bytes([data[1], data[2]]) as usize;
    let (fai, fasta) = data[3..].split_at(n);
    let mut f =
        ssmgen::input::IndexedFasta::from_bytes(Path::new("p.fa"), fasta.to_vec(), fai, None)
            .unwrap();
    let mut buf = Vec::new();
    f.fetch("y", 0, 70, &mut buf).unwrap();
    assert_eq!(buf.len(), 70);
    let mut bcf = b"BCF\x02\x02".to_vec();
    bcf.extend(std::fs::read("fuzz/corpus/bcf/variants").unwrap());
    let v = ssmgen::variants::VariantFile::from_bytes(Path::new("v.bcf"), bcf).unwrap();
    assert!(!v.variants.is_empty());
}
