//! CLI tests of the output formats that other tools read: each file is read back with an
//! independent reader (bigtools for bigWig, the npy / safetensors crates for embeddings) and
//! compared with what ssmgen reports in text form.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{assert_clean_error, ok_stdout};

fn ssmgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssmgen"))
        .args(args)
        .output()
        .unwrap()
}

/// Two records, indexed: the fixture and a shorter piece of it.
fn indexed_fasta(dir: &Path) -> String {
    let seq = common::fixture_sequence();
    let fa = dir.join("two.fa");
    common::write_fasta(&fa, &[("chrA", &seq), ("chrB", &seq[500..1700])], 70, "\n");
    common::index_fasta(&fa);
    fa.to_str().unwrap().to_string()
}

fn bedgraph_rows(text: &str) -> Vec<(String, u32, u32, f32)> {
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

fn bigwig_rows(path: &Path, chroms: &[&str]) -> Vec<(String, u32, u32, f32)> {
    let mut reader = bigtools::BigWigRead::open_file(path.to_str().unwrap()).unwrap();
    let sizes: Vec<(String, u32)> = reader
        .chroms()
        .iter()
        .map(|c| (c.name.clone(), c.length))
        .collect();
    let mut rows = Vec::new();
    for chrom in chroms {
        let size = sizes.iter().find(|(n, _)| n == chrom).unwrap().1;
        for v in reader.get_interval(chrom, 0, size).unwrap() {
            let v = v.unwrap();
            rows.push((chrom.to_string(), v.start, v.end, v.value));
        }
    }
    rows
}

#[test]
fn bigwig_holds_the_bedgraph_values_per_base_and_binned() {
    let dir = tempfile::tempdir().unwrap();
    let fa = indexed_fasta(dir.path());
    let model = "test-data/fixture-model";
    for bin in [None, Some("100")] {
        let bw = dir.path().join("t.bw");
        let mut args = vec!["likelihood", "-q", "-m", model, &fa, "--strand", "both"];
        if let Some(b) = bin {
            args.extend(["--bin", b]);
        }
        let text = ok_stdout(ssmgen(&args));
        args.extend(["-o", bw.to_str().unwrap()]);
        ok_stdout(ssmgen(&args));
        let expected = bedgraph_rows(&text);
        let got = bigwig_rows(&bw, &["chrA", "chrB"]);
        assert!(
            expected.len() >= 42,
            "{bin:?}: at least one row per 100-base bin"
        );
        assert_eq!(got, expected, "bin {bin:?}");
        let reader = bigtools::BigWigRead::open_file(bw.to_str().unwrap()).unwrap();
        let sizes: Vec<(String, u32)> = reader
            .chroms()
            .iter()
            .map(|c| (c.name.clone(), c.length))
            .collect();
        assert!(sizes.contains(&("chrA".to_string(), 3000)));
        assert!(sizes.contains(&("chrB".to_string(), 1200)));
    }
}

#[test]
fn bigwig_needs_a_file_and_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let fa = indexed_fasta(dir.path());
    let model = "test-data/fixture-model";
    assert_clean_error(
        &ssmgen(&["likelihood", "-q", "-m", model, &fa, "-f", "bigwig"]),
        &["bigWig", "file name"],
    );
    let plain = dir.path().join("plain.fa");
    std::fs::copy(&fa, &plain).unwrap();
    let bw = dir.path().join("x.bw");
    assert_clean_error(
        &ssmgen(&[
            "likelihood",
            "-q",
            "-m",
            model,
            plain.to_str().unwrap(),
            "-o",
            bw.to_str().unwrap(),
        ]),
        &["plain.fa.fai", "samtools faidx"],
    );
    assert!(!bw.exists());
    // bigWig needs each chromosome's intervals sorted and disjoint.
    assert_clean_error(
        &ssmgen(&[
            "likelihood",
            "-q",
            "-m",
            model,
            &fa,
            "-r",
            "chrA:100-200",
            "-r",
            "chrA:150-300",
            "-o",
            bw.to_str().unwrap(),
        ]),
        &["chrA:100-200", "chrA:150-300", "overlap", "disjoint"],
    );
    assert!(!bw.exists());
}
