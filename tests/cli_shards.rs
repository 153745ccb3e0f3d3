//! CLI tests of `ssmgen shards` and `--warmup`: shard BEDs, sharded outputs that concatenate
//! into exactly the unsharded output, and shard inputs refused before any work.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{assert_clean_error, ok_stdout};

/// Asserts a clean one-line error containing `needle`; returns it.
fn fails(out: Output, needle: &str) -> String {
    assert_clean_error(&out, &[needle]);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const GENOME: &str = "test-data/shards.fa";
const VCF: &str = "test-data/shards.vcf";

fn ssmgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssmgen"))
        .args(args)
        .output()
        .unwrap()
}

/// Writes one BED per shard of `ssmgen shards GENOME EXTRA...` into `dir`, in shard order.
fn shard_beds(dir: &Path, extra: &[&str]) -> Vec<PathBuf> {
    let split = dir.join("split");
    let split_arg = split.to_str().unwrap();
    let mut args = vec!["shards", GENOME, "--split-dir", split_arg];
    args.extend_from_slice(extra);
    ok_stdout(ssmgen(&args));
    let mut beds: Vec<PathBuf> = std::fs::read_dir(&split)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    beds.sort();
    beds
}

/// `ssmgen COMMAND ARGS...` once per shard (`--regions BED` plus `shard_args`), stdout
/// concatenated with the header (`header_lines` lines) kept from the first shard only.
fn sharded(args: &[&str], beds: &[PathBuf], shard_args: &[&str], header_lines: usize) -> String {
    let mut out = String::new();
    for (i, bed) in beds.iter().enumerate() {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--regions", bed.to_str().unwrap()]);
        a.extend_from_slice(shard_args);
        let text = ok_stdout(ssmgen(&a));
        let skip = if i == 0 { 0 } else { header_lines };
        for line in text.lines().skip(skip) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

const MODEL: [&str; 3] = ["-q", "-m", "test-data/fixture-model"];

fn likelihood_args(strand: &str) -> Vec<&str> {
    let mut a = vec!["likelihood", GENOME, "-s", strand];
    a.extend_from_slice(&MODEL);
    a
}

#[test]
fn shards_prints_whole_records_or_pieces() {
    let whole = ok_stdout(ssmgen(&["shards", GENOME]));
    assert_eq!(
        whole,
        "chrA\t0\t1500\tshard0001\nchrB\t0\t1200\tshard0002\nchrC\t0\t300\tshard0003\n"
    );
    let pieces = ok_stdout(ssmgen(&["shards", GENOME, "--size", "0.7k"]));
    let spans: Vec<&str> = pieces.lines().collect();
    assert_eq!(
        spans,
        [
            "chrA\t0\t500\tshard0001",
            "chrA\t500\t1000\tshard0002",
            "chrA\t1000\t1500\tshard0003",
            "chrB\t0\t600\tshard0004",
            "chrB\t600\t1200\tshard0005",
            "chrC\t0\t300\tshard0006"
        ]
    );
    let packed = ok_stdout(ssmgen(&["shards", GENOME, "--size", "1k", "--by", "size"]));
    assert!(packed.ends_with("chrB\t500\t1200\tshard0003\nchrC\t0\t300\tshard0003\n"));
    let dir = tempfile::tempdir().unwrap();
    let beds = shard_beds(dir.path(), &["--size", "700"]);
    assert_eq!(beds.len(), 6);
    assert_eq!(
        std::fs::read_to_string(&beds[1]).unwrap(),
        "chrA\t500\t1000\tshard0002\n"
    );
    let bad_size = ssmgen(&["shards", GENOME, "--size", "ten"]);
    assert!(!bad_size.status.success());
    assert!(String::from_utf8_lossy(&bad_size.stderr).contains("not a base count"));
    fails(ssmgen(&["shards", GENOME, "--by", "size"]), "needs --size");
    // A plain FASTA without .fai gets one built beside it (as `samtools faidx`); plain gzip
    // cannot be indexed.
    let plain = dir.path().join("one.fa");
    std::fs::copy("test-data/fixture.fa", &plain).unwrap();
    let out = ssmgen(&["shards", plain.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("fixture\t0\t3000"));
    assert!(dir.path().join("one.fa.fai").is_file());
    let gz = dir.path().join("one.fa.gz");
    common::gzip(&plain, &gz);
    fails(
        ssmgen(&["shards", gz.to_str().unwrap()]),
        "recompress with bgzip",
    );
}

#[test]
fn whole_record_shards_are_byte_identical_with_any_warmup() {
    let dir = tempfile::tempdir().unwrap();
    let beds = shard_beds(dir.path(), &[]);
    let args = likelihood_args("both");
    let unsharded = ok_stdout(ssmgen(&args));
    for warmup in [&["--warmup"][..], &["--warmup", "0"], &["--warmup", "5"]] {
        assert_eq!(sharded(&args, &beds, warmup, 0), unsharded, "{warmup:?}");
    }
}

#[test]
fn split_records_concatenate_exactly_once_the_warmup_covers_them() {
    let dir = tempfile::tempdir().unwrap();
    let beds = shard_beds(dir.path(), &["--size", "700"]);
    for strand in ["fwd", "rev", "both"] {
        let args = likelihood_args(strand);
        let unsharded = ok_stdout(ssmgen(&args));
        // Another stripe length than the unsharded run: results do not depend on it.
        let exact = sharded(&args, &beds, &["--warmup", "1500", "--stripe-len", "96"], 0);
        assert_eq!(exact, unsharded, "strand {strand}");
        // A short warm-up changes the scores near shard starts, but not the rows.
        let short = sharded(&args, &beds, &["--warmup", "10"], 0);
        assert_ne!(
            short, unsharded,
            "strand {strand}: a 10-base warm-up cannot be exact"
        );
        let rows = |t: &str| -> Vec<String> {
            t.lines()
                .map(|l| l.rsplit_once('\t').unwrap().0.to_string())
                .collect()
        };
        assert_eq!(rows(&short), rows(&unsharded));
    }
    // Without --warmup, a region is a sequence of its own: its first base has no score.
    let args = likelihood_args("fwd");
    let own = sharded(&args, &beds[1..2], &[], 0);
    assert!(own.starts_with("chrA\t501\t502\t"), "{}", &own[..40]);
}

#[test]
fn sharded_embeddings_and_variant_scores_concatenate_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let beds = shard_beds(dir.path(), &["--size", "700"]);
    let warm = ["--warmup", "2k"];
    for pooling in [&["--window", "100", "--stride", "40"][..], &["--per-base"]] {
        let mut args = vec!["embed", GENOME, "-s", "both"];
        args.extend_from_slice(&MODEL);
        args.extend_from_slice(pooling);
        let unsharded = ok_stdout(ssmgen(&args));
        assert_eq!(sharded(&args, &beds, &warm, 1), unsharded, "{pooling:?}");
    }
    let mut args = vec!["score-variants", "--ref", GENOME, "--vcf", VCF];
    args.extend_from_slice(&MODEL);
    let unsharded = ok_stdout(ssmgen(&args));
    assert_eq!(unsharded.lines().count(), 37);
    assert_eq!(sharded(&args, &beds, &warm, 1), unsharded);
    let short = sharded(&args, &beds, &["--warmup", "20"], 1);
    assert_ne!(short, unsharded, "a 20-base warm-up cannot be exact");
}

#[test]
fn bad_shard_inputs_are_refused_before_any_work_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let out = dir.path().join("out.bedgraph");
    let cases = [
        ("overlap.bed", "chrA\t0\t600\nchrA\t500\t900\n", "overlaps"),
        (
            "unsorted.bed",
            "chrB\t0\t100\nchrA\t0\t100\n",
            "record order",
        ),
        ("backwards.bed", "chrA\t600\t900\nchrA\t0\t100\n", "sorted"),
        (
            "missing.bed",
            "chrA\t0\t100\nchrZ\t0\t100\n",
            "no record named 'chrZ'",
        ),
    ];
    for (name, text, message) in cases {
        let bed = write(name, text);
        let bed_arg = bed.to_str().unwrap();
        for command in ["likelihood", "embed"] {
            // An output name in the command's own format (an unknown extension is an error).
            let out = if command == "likelihood" {
                out.clone()
            } else {
                dir.path().join("out.tsv")
            };
            let o = ssmgen(
                &[
                    command,
                    GENOME,
                    "--regions",
                    bed_arg,
                    "--warmup",
                    "--window",
                    "50",
                    "-o",
                    out.to_str().unwrap(),
                ]
                .into_iter()
                .filter(|a| command == "embed" || (*a != "--window" && *a != "50"))
                .collect::<Vec<_>>(),
            );
            let err = fails(o, message);
            assert!(
                err.contains(&format!("{name}:2)")),
                "names file and line: {err}"
            );
        }
        let o = ssmgen(&[
            "score-variants",
            "--ref",
            GENOME,
            "--vcf",
            VCF,
            "--regions",
            bed_arg,
            "--warmup",
            "-o",
            dir.path().join("out.tsv").to_str().unwrap(),
        ]);
        fails(o, message);
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".bed"))
            .collect();
        assert!(left.is_empty(), "no output, no temporary file: {left:?}");
    }

    // Per-record embeddings cannot be split.
    let bed = write("half.bed", "chrA\t0\t700\n");
    let o = ssmgen(&[
        "embed",
        GENOME,
        "--regions",
        bed.to_str().unwrap(),
        "--warmup",
    ]);
    fails(o, "cannot be split into shards");

    // VCFs that do not fit the FASTA.
    let vcf = std::fs::read_to_string(VCF).unwrap();
    let (header, body): (Vec<&str>, Vec<&str>) = vcf.lines().partition(|l| l.starts_with('#'));
    let whole = write("whole.bed", "chrA\t0\t1500\n");
    let score = |vcf: &Path| {
        ssmgen(&[
            "score-variants",
            "--ref",
            GENOME,
            "--vcf",
            vcf.to_str().unwrap(),
            "--regions",
            whole.to_str().unwrap(),
            "--warmup",
        ])
    };
    let mut swapped = body.clone();
    swapped.swap(0, 1);
    let unsorted = write(
        "unsorted.vcf",
        &(header.join("\n") + "\n" + &swapped.join("\n")),
    );
    let err = fails(score(&unsorted), "line 7: chrA:7 comes before");
    assert!(err.contains("unsorted.vcf"), "{err}");
    let foreign = vcf.replacen("chrA\t7\t", "chrQ\t7\t", 1);
    let foreign = write("foreign.vcf", &foreign);
    fails(score(&foreign), "line 6: contig 'chrQ' is not in");
    let lengths = vcf.replace("ID=chrB,length=1200", "ID=chrB,length=1300");
    let lengths = write("lengths.vcf", &lengths);
    fails(score(&lengths), "line 3: contig 'chrB' has length 1300");

    // A masked model's context is on both sides: the causal warm-up is refused for it.
    let masked = [
        "-m",
        "test-data/caduceus-ps",
        "--regions",
        whole.to_str().unwrap(),
    ];
    for command in ["likelihood", "embed"] {
        let mut a = vec![command, GENOME, "--warmup"];
        a.extend_from_slice(&masked);
        fails(ssmgen(&a), "--warmup applies to causal models");
    }
}
