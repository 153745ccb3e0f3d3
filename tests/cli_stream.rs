//! Streamed `score-variants` equals, to the bit, what the in-memory implementation wrote before
//! streaming (test-data/stream/expected-*, written by commit 5043473's binary through
//! test-data/stream/make_stream_golden.py): three chromosomes, both strands, SNVs, indels,
//! multi-allelic and skipped records, one stripe or many, cached or `--context`; unsorted input
//! is refused or (`--allow-unsorted`) scored; `--vcf -` reads VCF, bgzip and BCF from stdin.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;
use common::assert_clean_error;

const DIR: &str = "test-data/stream";

fn ssmgen(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ssmgen"))
        .args([
            "score-variants",
            "-q",
            "--device",
            "cpu",
            "--model",
            "test-data/fixture-model",
            "--window",
            "40",
        ])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    child.wait_with_output().unwrap()
}

/// The output without the provenance lines that name paths and the command line.
fn body(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.starts_with("##ssmgen"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(Path::new(DIR).join(name)).unwrap()
}

fn ok(out: &Output) -> &[u8] {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    &out.stdout
}

#[test]
fn streamed_scores_equal_the_in_memory_implementation_bit_for_bit() {
    let vcf = format!("{DIR}/stream.vcf");
    for (extra, suffix) in [(&[][..], ""), (&["--context", "50"][..], "-context50")] {
        for stripe in ["100", "100000"] {
            for format in ["tsv", "vcf"] {
                let mut args = vec![
                    "--ref",
                    "test-data/shards.fa",
                    "--vcf",
                    &vcf,
                    "-O",
                    format,
                    "--stripe-len",
                    stripe,
                ];
                args.extend_from_slice(extra);
                let out = ssmgen(&args, None);
                assert_eq!(
                    body(ok(&out)),
                    expected(&format!("expected-sorted{suffix}.{format}")),
                    "{format} {extra:?} --stripe-len {stripe}"
                );
            }
        }
    }
}

/// `--window 0`: an SNV's ALT continuation is its one token, scored from the checkpoint's row
/// without running the model; the scores are still those of the in-memory implementation.
#[test]
fn window_zero_equals_the_in_memory_implementation() {
    let vcf = format!("{DIR}/stream.vcf");
    let out = Command::new(env!("CARGO_BIN_EXE_ssmgen"))
        .args(["score-variants", "-q", "--device", "cpu", "--model"])
        .args([
            "test-data/fixture-model",
            "--ref",
            "test-data/shards.fa",
            "--vcf",
            &vcf,
        ])
        .args(["--window", "0"])
        .output()
        .unwrap();
    assert_eq!(body(ok(&out)), expected("expected-sorted-window0.tsv"));
}

#[test]
fn unsorted_input_is_refused_or_sorted_in_memory() {
    let vcf = format!("{DIR}/stream-unsorted.vcf");
    let out = ssmgen(&["--ref", "test-data/shards.fa", "--vcf", &vcf], None);
    assert_clean_error(&out, &["stream-unsorted.vcf", "line", "--allow-unsorted"]);
    for (extra, suffix) in [(&[][..], ""), (&["--context", "50"][..], "-context50")] {
        let mut args = vec![
            "--ref",
            "test-data/shards.fa",
            "--vcf",
            &vcf,
            "--allow-unsorted",
        ];
        args.extend_from_slice(extra);
        let out = ssmgen(&args, None);
        assert_eq!(
            body(ok(&out)),
            expected(&format!("expected-unsorted{suffix}.tsv"))
        );
    }
}

#[test]
fn position_going_back_names_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let vcf = dir.path().join("back.vcf");
    let text = expected("stream.vcf");
    let mut lines: Vec<&str> = text.lines().collect();
    // Swap two records of chrA (positions 1 and 12): line 9 now goes back to position 1.
    lines.swap(7, 8);
    std::fs::write(&vcf, lines.join("\n") + "\n").unwrap();
    let out = ssmgen(
        &[
            "--ref",
            "test-data/shards.fa",
            "--vcf",
            vcf.to_str().unwrap(),
            "-o",
            dir.path().join("o.tsv").to_str().unwrap(),
        ],
        None,
    );
    assert_clean_error(&out, &["back.vcf", "line 9", "chrA:1 comes after chrA:12"]);
    assert!(!dir.path().join("o.tsv").exists(), "no partial output");
}

#[test]
fn vcf_bgzip_and_bcf_on_stdin() {
    let plain = std::fs::read(format!("{DIR}/stream.vcf")).unwrap();
    let mut bgzip = noodles_bgzf::io::Writer::new(Vec::new());
    bgzip.write_all(&plain).unwrap();
    let bgzip = bgzip.finish().unwrap();
    for (what, bytes) in [("vcf", &plain), ("bgzip", &bgzip)] {
        let out = ssmgen(
            &["--ref", "test-data/shards.fa", "--vcf", "-", "-O", "tsv"],
            Some(bytes),
        );
        assert_eq!(body(ok(&out)), expected("expected-sorted.tsv"), "{what}");
    }
    // BCF (written by bcftools, test-data/make_variants_bcf.sh) against its VCF from a file.
    let args = ["--ref", "test-data/fixture.fa", "-O", "vcf"];
    let from_file = ssmgen(
        &[&args[..], &["--vcf", "test-data/variants.vcf"]].concat(),
        None,
    );
    let bcf = std::fs::read("test-data/variants.bcf").unwrap();
    let from_stdin = ssmgen(&[&args[..], &["--vcf", "-"]].concat(), Some(&bcf));
    let (a, b) = (body(ok(&from_file)), body(ok(&from_stdin)));
    // noodles writes the BCF's header in its own words; the records must agree.
    let records = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(records(&a), records(&b));
    assert!(records(&a).len() > 3);
}

#[test]
fn reference_from_stdin_or_gzip_is_spooled_and_scores_the_same() {
    let fasta = std::fs::read("test-data/shards.fa").unwrap();
    let vcf = format!("{DIR}/stream.vcf");
    let out = ssmgen(&["--ref", "-", "--vcf", &vcf], Some(&fasta));
    assert_eq!(body(ok(&out)), expected("expected-sorted.tsv"));
}

#[test]
fn cost_line_comes_before_the_pass() {
    let vcf = format!("{DIR}/stream.vcf");
    let out = Command::new(env!("CARGO_BIN_EXE_ssmgen"))
        .args([
            "score-variants",
            "--device",
            "cpu",
            "--model",
            "test-data/fixture-model",
            "--ref",
            "test-data/shards.fa",
            "--vcf",
            &vcf,
            "-o",
            "/dev/null",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("ssmgen: chrA: 87 variant(s), 86 scored;")
                && l.contains("bases, about ")
                && l.contains("bases/s")),
        "{err}"
    );
}

/// `--all-snvs` rows equal scoring the same SNVs read from a VCF (whole-chromosome context, both
/// strands), and the `--track` bigWigs hold each position's minimum and mean score.
#[test]
fn all_snvs_equal_the_same_variants_from_a_vcf_and_tracks_hold_min_and_mean() {
    let dir = tempfile::tempdir().unwrap();
    let tsv = dir.path().join("all.tsv");
    let (min_bw, mean_bw) = (dir.path().join("min.bw"), dir.path().join("mean.bw"));
    let regions = [
        "--region",
        "chrA:1-20",
        "--region",
        "chrC:290-300",
        "--region",
        "chrA:15-25",
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["--ref", "test-data/shards.fa", "--all-snvs"];
        args.extend_from_slice(&regions);
        args.extend_from_slice(extra);
        let out = ssmgen(&args, None);
        ok(&out);
    };
    run(&["-o", tsv.to_str().unwrap()]);
    run(&["-o", min_bw.to_str().unwrap(), "--track", "min"]);
    run(&["-o", mean_bw.to_str().unwrap(), "--track", "mean"]);
    let text = std::fs::read_to_string(&tsv).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    // chrA 1..=25 (two regions merged) and chrC 290..=300, three substitutions each.
    assert_eq!(rows.len(), (25 + 11) * 3);
    assert!(rows.iter().all(|r| r[13].is_empty() && !r[11].is_empty()));
    // The same SNVs as a VCF, one record per position with its three ALTs.
    let mut vcf =
        String::from("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n");
    for site in rows.chunks(3) {
        let alts: Vec<&str> = site.iter().map(|r| r[4]).collect();
        vcf += &format!(
            "{}\t{}\t.\t{}\t{}\t.\t.\t.\n",
            site[0][0],
            site[0][1],
            site[0][3],
            alts.join(",")
        );
    }
    let vcf_path = dir.path().join("same.vcf");
    std::fs::write(&vcf_path, vcf).unwrap();
    let from_vcf = ssmgen(
        &[
            "--ref",
            "test-data/shards.fa",
            "--vcf",
            vcf_path.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(String::from_utf8_lossy(ok(&from_vcf)), text);
    // Tracks: one value per position, the minimum / mean of its three scores.
    for (bw, stat) in [(&min_bw, "min"), (&mean_bw, "mean")] {
        let mut reader = bigtools::BigWigRead::open_file(bw.to_str().unwrap()).unwrap();
        let mut got = Vec::new();
        for (chrom, size) in [("chrA", 1500), ("chrC", 300)] {
            for v in reader.get_interval(chrom, 0, size).unwrap() {
                let v = v.unwrap();
                got.push((chrom.to_string(), v.start, v.end, v.value));
            }
        }
        assert_eq!(got.len(), 25 + 11, "{stat}");
        for (site, (chrom, start, end, value)) in rows.chunks(3).zip(&got) {
            let pos: u32 = site[0][1].parse().unwrap();
            assert_eq!((chrom.as_str(), *start, *end), (site[0][0], pos - 1, pos));
            let scores: Vec<f64> = site.iter().map(|r| r[11].parse().unwrap()).collect();
            let want = if stat == "min" {
                scores.iter().copied().fold(f64::INFINITY, f64::min)
            } else {
                scores.iter().sum::<f64>() / 3.0
            };
            assert!(
                (*value as f64 - want).abs() < 1e-4,
                "{stat} {pos}: {value} vs {want}"
            );
        }
    }
}

#[test]
fn all_snvs_needs_regions_and_bigwig_needs_a_track() {
    let out = ssmgen(&["--ref", "test-data/shards.fa", "--all-snvs"], None);
    assert_clean_error(&out, &["--all-snvs needs the regions"]);
    let dir = tempfile::tempdir().unwrap();
    let bw = dir.path().join("t.bw");
    let out = ssmgen(
        &[
            "--ref",
            "test-data/shards.fa",
            "--all-snvs",
            "--region",
            "chrA:1-5",
            "-o",
            bw.to_str().unwrap(),
        ],
        None,
    );
    assert_clean_error(&out, &["t.bw", "--track"]);
    assert!(!bw.exists());
}

/// On a non-terminal stderr the passes log `ssmgen: progress:` lines in bases against the
/// total the cost line announced, one per `--log-interval` at most.
#[test]
fn passes_log_progress_in_bases_on_a_non_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 11u64;
    let seq: String = (0..100_000)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            b"ACGT"[(state >> 62) as usize] as char
        })
        .collect();
    let fa = dir.path().join("long.fa");
    common::write_fasta(&fa, &[("chrL", &seq)], 60, "\n");
    common::index_fasta(&fa);
    let mut vcf =
        String::from("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n");
    for pos in [10usize, 50_000, 99_990] {
        let r = &seq[pos - 1..pos];
        let a = if r == "A" { "C" } else { "A" };
        vcf += &format!("chrL\t{pos}\t.\t{r}\t{a}\t.\t.\t.\n");
    }
    let vcf_path = dir.path().join("v.vcf");
    std::fs::write(&vcf_path, vcf).unwrap();
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ssmgen"))
        .args(["score-variants", "--device", "cpu", "--ref"])
        .arg(&fa)
        .arg("--vcf")
        .arg(&vcf_path)
        .args(["--log-interval", "1", "-o", "/dev/null"])
        .output()
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("ssmgen: chrL: 3 variant(s), 3 scored; two passes"),
        "{err}"
    );
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("ssmgen: progress: "))
        .collect();
    assert!(lines.len() as f64 <= elapsed + 1.0, "{err}");
    assert!(lines.iter().all(|l| l.contains(" bases (")), "{err}");
    if elapsed >= 3.0 {
        assert!(!lines.is_empty(), "no lines in {elapsed:.1} s: {err}");
    }
}
