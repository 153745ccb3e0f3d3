//! CLI tests of regions: given in any order they come out in the FASTA index's order (records,
//! then start), so bedGraph is sorted and bigWig valid; overlapping ones are refused for
//! `likelihood`; a plain FASTA without `.fai` gets one built (written beside it, or kept in
//! memory when the name is taken); plain gzip asks for bgzip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{assert_clean_error, ok_stdout};

const GENOME: &str = "test-data/shards.fa";

fn ssmgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssmgen"))
        .args(args)
        .args(["-q", "--device", "cpu", "-t", "2"])
        .output()
        .unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A copy of the test genome, without its `.fai`.
fn genome_copy(dir: &Path) -> PathBuf {
    let fa = dir.join("g.fa");
    std::fs::copy(GENOME, &fa).unwrap();
    fa
}

/// Unsorted regions: BED lines out of order, plus `--region`s before them.
const BED: &str = "chrB\t100\t200\nchrA\t500\t600\nchrC\t0\t50\nchrA\t10\t20\n";
const REGIONS: [&str; 2] = ["chrB:1-5", "chrA:1400-1500"];
/// The same regions, in the index's order (chrA, chrB, chrC), 1-based inclusive.
const SORTED: [&str; 6] = [
    "chrA:11-20",
    "chrA:501-600",
    "chrA:1400-1500",
    "chrB:1-5",
    "chrB:101-200",
    "chrC:1-50",
];

#[test]
fn unsorted_regions_give_sorted_bedgraph_and_bigwig() {
    let dir = tempfile::tempdir().unwrap();
    let bed = dir.path().join("r.bed");
    std::fs::write(&bed, BED).unwrap();
    let mut args = vec!["likelihood", GENOME, "--regions", p(&bed)];
    for r in REGIONS {
        args.extend(["--region", r]);
    }
    let text = ok_stdout(ssmgen(&args));

    // Reference: each region on its own, concatenated in sorted order.
    let mut expected = String::new();
    for r in SORTED {
        expected.push_str(&ok_stdout(ssmgen(&["likelihood", GENOME, "--region", r])));
    }
    assert_eq!(text, expected);

    // Sorted as `sort -k1,1 -k2,2n` would check within each chromosome, and chromosomes in the
    // .fai's order, not interleaved.
    let fai = std::fs::read_to_string(format!("{GENOME}.fai")).unwrap();
    let order: Vec<&str> = fai.lines().map(|l| l.split('\t').next().unwrap()).collect();
    let rows: Vec<(usize, u64, u64)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let rank = order.iter().position(|c| *c == f[0]).unwrap();
            (rank, f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    assert!(
        rows.windows(2)
            .all(|w| w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].2 <= w[1].1))
    );
    // Every base once, less each region's first (no upstream context, no BOS).
    assert_eq!(rows.len(), 10 + 100 + 101 + 5 + 100 + 50 - 6);

    // bigWig from the same unsorted regions: valid, and holding the bedGraph's rows.
    let bw = dir.path().join("x.bw");
    let mut bw_args = args.clone();
    bw_args.extend(["-o", p(&bw)]);
    ok_stdout(ssmgen(&bw_args));
    let mut reader = bigtools::BigWigRead::open_file(p(&bw)).unwrap();
    let mut from_bw = Vec::new();
    for chrom in &order {
        let size = reader
            .chroms()
            .iter()
            .find(|c| c.name == *chrom)
            .unwrap()
            .length;
        for v in reader.get_interval(chrom, 0, size).unwrap() {
            let v = v.unwrap();
            from_bw.push(format!("{chrom}\t{}\t{}\t{}", v.start, v.end, v.value));
        }
    }
    let from_bg: Vec<String> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            format!(
                "{}\t{}\t{}\t{}",
                f[0],
                f[1],
                f[2],
                f[3].parse::<f32>().unwrap()
            )
        })
        .collect();
    assert_eq!(from_bw, from_bg);
}

#[test]
fn overlapping_regions_are_refused_for_likelihood_and_kept_for_embed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.bedgraph");
    let result = ssmgen(&[
        "likelihood",
        GENOME,
        "-r",
        "chrB:50-60",
        "-r",
        "chrA:1-100",
        "-r",
        "chrA:90-95",
        "-o",
        p(&out),
    ]);
    assert_clean_error(
        &result,
        &["chrA:1-100", "chrA:90-95", "overlap", "bedtools merge"],
    );
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // Touching regions are not overlapping.
    ok_stdout(ssmgen(&[
        "likelihood",
        GENOME,
        "-r",
        "chrA:11-20",
        "-r",
        "chrA:1-10",
    ]));

    // embed: one row per region, overlapping allowed, rows in sorted order.
    let csv = ok_stdout(ssmgen(&[
        "embed",
        GENOME,
        "-r",
        "chrC:5-9",
        "-r",
        "chrA:10-50",
        "-r",
        "chrA:1-100",
    ]));
    let spans: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(":"))
        .collect();
    assert_eq!(spans, ["chrA:0:100", "chrA:9:50", "chrC:4:9"]);
}

#[test]
fn plain_fasta_without_fai_gets_one_built() {
    let dir = tempfile::tempdir().unwrap();
    let fa = genome_copy(dir.path());
    let fai = dir.path().join("g.fa.fai");
    assert!(!fai.exists());
    let before = std::fs::read(&fa).unwrap();
    let text = ok_stdout(ssmgen(&["likelihood", p(&fa), "-r", "chrB:100-150"]));
    // Written beside it, the same bytes as the .fai samtools made for the test genome.
    assert_eq!(
        std::fs::read_to_string(&fai).unwrap(),
        std::fs::read_to_string(format!("{GENOME}.fai")).unwrap()
    );
    assert_eq!(
        std::fs::read(&fa).unwrap(),
        before,
        "the input is untouched"
    );
    let reference = ok_stdout(ssmgen(&["likelihood", GENOME, "-r", "chrB:100-150"]));
    assert_eq!(text, reference);
    // No temporary file left in the folder.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["g.fa", "g.fa.fai"]);
}

#[cfg(unix)]
#[test]
fn fai_name_taken_keeps_the_index_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let fa = genome_copy(dir.path());
    let fai = dir.path().join("g.fa.fai");
    // A dangling link where the index would go: left as it is, never written through.
    std::os::unix::fs::symlink("elsewhere/none.fai", &fai).unwrap();
    let text = ok_stdout(ssmgen(&["likelihood", p(&fa), "-r", "chrC:1-40"]));
    let reference = ok_stdout(ssmgen(&["likelihood", GENOME, "-r", "chrC:1-40"]));
    assert_eq!(text, reference);
    assert_eq!(
        std::fs::read_link(&fai).unwrap(),
        Path::new("elsewhere/none.fai")
    );
    assert!(!dir.path().join("elsewhere").exists());
}

#[test]
fn unindexable_inputs_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Uneven line lengths: no index can describe it.
    let bad = dir.path().join("bad.fa");
    std::fs::write(&bad, ">c\nACGTACGT\nACG\nACGTACGT\n").unwrap();
    let result = ssmgen(&["likelihood", p(&bad), "-r", "c:1-5"]);
    assert_clean_error(&result, &["bad.fa", "no .fai", "same length"]);
    assert!(!dir.path().join("bad.fa.fai").exists());
    // Plain gzip: random access needs bgzip.
    let gz = dir.path().join("g.fa.gz");
    common::gzip(Path::new(GENOME), &gz);
    let result = ssmgen(&["likelihood", p(&gz), "-r", "chrA:1-5"]);
    assert_clean_error(&result, &["g.fa.gz", "recompress with bgzip"]);
    assert!(!dir.path().join("g.fa.gz.fai").exists());
    // Without regions neither needs an index: both stream.
    ok_stdout(ssmgen(&["likelihood", p(&gz)]));
    assert!(!dir.path().join("g.fa.gz.fai").exists());
}
