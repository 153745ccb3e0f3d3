//! Command-line tests of `ssmgen likelihood` and `ssmgen info`: every input format, regions,
//! strands, output formats, and the bad-input cases (clear one-line error, non-zero exit, no
//! output file left behind).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::*;

const MODEL: &str = "test-data/fixture-model";

fn ssmgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ssmgen"))
}

fn likelihood(args: &[&str]) -> Output {
    ssmgen()
        .args(["likelihood", "-m", MODEL, "-q"])
        .args(args)
        .output()
        .unwrap()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn csv_matches_transformers_reference_per_base() {
    let r = reference();
    let seq = fixture_sequence();
    let rows = parse_csv(&ok_stdout(likelihood(&[
        "test-data/fixture.fa",
        "-f",
        "csv",
    ])));
    assert_eq!(rows.len(), seq.len());
    let mut checked = 0;
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.1, i as u64 + 1, "pos is 1-based");
        assert_eq!(
            row.2,
            seq.as_bytes()[i] as char,
            "base column keeps the file's letter"
        );
        let upper = row.2.to_ascii_uppercase();
        if i == 0 || upper == 'N' {
            assert_eq!(row.3, None, "no score at {i} ({upper})");
            continue;
        }
        let want = r.logp_f32[(i - 1) * VOCAB + r.tokens[i] as usize];
        let got = row.3.unwrap();
        assert!((got - want).abs() <= 1e-4, "pos {}: {got} vs {want}", i + 1);
        assert_eq!(row.5, row.3, "fwd only: logp = logp_fwd");
        checked += 1;
    }
    assert!(checked > 2900, "soft-masked bases are scored too");
}

#[test]
fn bedgraph_is_zero_based_and_skips_unscored() {
    let bg = ok_stdout(likelihood(&["test-data/fixture.fa"]));
    let lines: Vec<&str> = bg.lines().collect();
    // 3000 bases - first base - 10 N.
    assert_eq!(lines.len(), 3000 - 1 - 10);
    let first: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(&first[..3], ["fixture", "1", "2"]);
}

#[test]
fn every_input_format_gives_the_same_scores() {
    let dir = tmp();
    let seq = fixture_sequence();
    let records = [("fixture", seq.as_str()), ("second", &seq[100..900])];
    let plain = dir.path().join("plain.fa");
    write_fasta(&plain, &records, 60, "\n");
    let want = ok_stdout(likelihood(&[p(&plain), "-f", "csv"]));
    assert_eq!(want.lines().count(), 1 + 3000 + 800);

    let crlf = dir.path().join("crlf.fa");
    write_fasta(&crlf, &records, 17, "\r\n");
    let gz = dir.path().join("plain.fa.gz");
    gzip(&plain, &gz);
    let indexed = dir.path().join("indexed.fa");
    write_fasta(&indexed, &records, 80, "\n");
    index_fasta(&indexed);
    let bgz = dir.path().join("bgzipped.fa.gz");
    bgzip_with_index(&plain, &bgz);
    let fastq = dir.path().join("reads.fq");
    let mut fq = String::new();
    for (name, s) in &records {
        fq.push_str(&format!("@{name}\n{s}\n+\n{}\n", "I".repeat(s.len())));
    }
    std::fs::write(&fastq, &fq).unwrap();
    let fastq_gz = dir.path().join("reads.fq.gz");
    gzip(&fastq, &fastq_gz);

    for input in [&crlf, &gz, &indexed, &bgz, &fastq, &fastq_gz] {
        let got = ok_stdout(likelihood(&[p(input), "-f", "csv", "--stripe-len", "333"]));
        assert!(got == want, "{} differs from plain FASTA", input.display());
    }
    // stdin
    let out = ssmgen()
        .args(["likelihood", "-m", MODEL, "-q", "-f", "csv", "-"])
        .stdin(std::fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert!(ok_stdout(out) == want, "stdin (gzip) differs");
}

#[test]
fn regions_are_scored_as_standalone_sequences_at_chromosome_coordinates() {
    let dir = tmp();
    let seq = fixture_sequence();
    let fa = dir.path().join("g.fa");
    write_fasta(&fa, &[("chr1", &seq)], 70, "\n");
    index_fasta(&fa);
    // The same bases as their own record.
    let sub = dir.path().join("sub.fa");
    write_fasta(&sub, &[("chr1", &seq[100..200])], 70, "\n");
    let sub_rows = parse_csv(&ok_stdout(likelihood(&[p(&sub), "-f", "csv"])));

    let rows = parse_csv(&ok_stdout(likelihood(&[
        p(&fa),
        "-r",
        "chr1:101-200",
        "-f",
        "csv",
    ])));
    assert_eq!(rows.len(), 100);
    assert_eq!(rows[0].1, 101);
    for (a, b) in rows.iter().zip(&sub_rows) {
        assert_eq!(a.1, b.1 + 100);
        assert_eq!(a.3, b.3);
    }
    let bed = dir.path().join("r.bed");
    std::fs::write(&bed, "chr1\t100\t200\n").unwrap();
    let via_bed = ok_stdout(likelihood(&[p(&fa), "--regions", p(&bed), "-f", "csv"]));
    let via_r = ok_stdout(likelihood(&[p(&fa), "-r", "chr1:101-200", "-f", "csv"]));
    assert_eq!(via_bed, via_r);
    // bedGraph coordinates are 0-based: first scored base is 1-based 102.
    let bg = ok_stdout(likelihood(&[p(&fa), "-r", "chr1:101-200"]));
    assert!(bg.starts_with("chr1\t101\t102\t"), "{}", &bg[..40]);
}

#[test]
fn reverse_strand_equals_forward_scores_of_the_reverse_complement() {
    let dir = tmp();
    let seq = fixture_sequence();
    let rc = common::revcomp(&seq);
    let fa = dir.path().join("rc.fa");
    write_fasta(&fa, &[("fixture", &rc)], 70, "\n");
    let rc_rows = parse_csv(&ok_stdout(likelihood(&[p(&fa), "-f", "csv"])));
    let n = seq.len();
    for (indexed, label) in [(false, "streamed"), (true, "indexed")] {
        let input = dir.path().join(format!("{label}.fa"));
        write_fasta(&input, &[("fixture", &seq)], 70, "\n");
        if indexed {
            index_fasta(&input);
        }
        let rows = parse_csv(&ok_stdout(likelihood(&[
            p(&input),
            "-s",
            "both",
            "-f",
            "csv",
            "--stripe-len",
            "256",
        ])));
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.4, rc_rows[n - 1 - i].3, "{label}: rev at {}", i + 1);
            let mean = match (row.3, row.4) {
                (Some(a), Some(b)) => Some(0.5 * (a + b)),
                (a, b) => a.or(b),
            };
            let close = match (mean, row.5) {
                (Some(a), Some(b)) => (a - b).abs() < 1e-6,
                (a, b) => a == b,
            };
            assert!(close, "{label}: both = mean at {}", i + 1);
        }
        let rev = parse_csv(&ok_stdout(likelihood(&[
            p(&input),
            "-s",
            "rev",
            "-f",
            "csv",
        ])));
        assert!(rev.iter().all(|r| r.3.is_none()));
        assert_eq!(
            rev.iter().map(|r| r.4).collect::<Vec<_>>(),
            rows.iter().map(|r| r.4).collect::<Vec<_>>()
        );
    }
}

#[test]
fn output_files_bins_and_gzip() {
    let dir = tmp();
    let out_csv = dir.path().join("x.csv");
    ok_stdout(likelihood(&["test-data/fixture.fa", "-o", p(&out_csv)]));
    let csv = std::fs::read_to_string(&out_csv).unwrap();
    assert!(
        csv.starts_with("chrom,pos,base,logp_fwd"),
        "format from the extension"
    );

    let out_gz = dir.path().join("x.bedgraph.gz");
    ok_stdout(likelihood(&["test-data/fixture.fa", "-o", p(&out_gz)]));
    let mut text = String::new();
    use std::io::Read;
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&out_gz).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let per_base = ok_stdout(likelihood(&["test-data/fixture.fa"]));
    assert_eq!(text, per_base);

    // Bins are the mean of the per-base values in each 100-base window.
    let binned = ok_stdout(likelihood(&["test-data/fixture.fa", "--bin", "100"]));
    let lines: Vec<&str> = binned.lines().collect();
    assert_eq!(lines.len(), 30);
    let values: Vec<(u64, f64)> = per_base
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[1].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect();
    for line in &lines {
        let f: Vec<&str> = line.split('\t').collect();
        let (s, e): (u64, u64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        assert_eq!(s % 100, 0);
        assert_eq!(e, s + 100);
        let inside: Vec<f64> = values
            .iter()
            .filter(|(p, _)| *p >= s && *p < e)
            .map(|v| v.1)
            .collect();
        let mean = inside.iter().sum::<f64>() / inside.len() as f64;
        let got: f64 = f[3].parse().unwrap();
        assert!((got - mean).abs() < 1e-4, "{line}: {mean}");
    }
    // No temp files left next to the outputs.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn info_prints_sizes() {
    let out = ssmgen().args(["info", "-m", MODEL]).output().unwrap();
    let text = ok_stdout(out);
    assert!(text.contains("parameters         67008"), "{text}");
    assert!(text.contains("2432 floats"), "{text}");
}

fn bad_case(input: &Path, extra: &[&str], needles: &[&str]) {
    let dir = tmp();
    let out_path: PathBuf = dir.path().join("out.bedgraph");
    let mut args = vec![p(input), "-o", p(&out_path)];
    args.extend_from_slice(extra);
    let out = likelihood(&args);
    assert_clean_error(&out, needles);
    assert!(!out_path.exists(), "no output file after an error");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "temp file left behind"
    );
}

#[test]
fn missing_file_is_a_clean_error() {
    bad_case(
        Path::new("test-data/does-not-exist.fa"),
        &[],
        &["does-not-exist.fa", "No such file"],
    );
}

#[test]
fn malformed_fasta_is_a_clean_error() {
    let dir = tmp();
    let f = dir.path().join("bad.fa");
    std::fs::write(&f, "ACGT\n>x\nACGT\n").unwrap();
    bad_case(&f, &[], &["bad.fa", "not FASTA or FASTQ"]);
    let fq = dir.path().join("bad.fq");
    std::fs::write(&fq, "@r1\nACGT\n+\nII\n").unwrap();
    bad_case(&fq, &[], &["bad.fq", "record 1"]);
}

#[test]
fn unknown_character_names_record_and_position() {
    let dir = tmp();
    let f = dir.path().join("x.fa");
    std::fs::write(&f, ">ok\nACGT\n>chrZ\nACGTAC\nGTXA\n").unwrap();
    bad_case(
        &f,
        &["--stripe-len", "4"],
        &["x.fa", "record 'chrZ'", "position 9", "'X'"],
    );
    index_fasta(&f);
    bad_case(&f, &["-s", "rev"], &["record 'chrZ'", "position 9"]);
}

#[test]
fn region_off_the_end_is_a_clean_error() {
    let dir = tmp();
    let f = dir.path().join("x.fa");
    std::fs::write(&f, ">chr1\nACGTACGTAC\n").unwrap();
    index_fasta(&f);
    bad_case(&f, &["-r", "chr1:5-11"], &["chr1:5-11", "10 bases"]);
    bad_case(&f, &["-r", "chr9:1-5"], &["no record named 'chr9'"]);
    bad_case(&f, &["-r", "chr1:0-5"], &["1-based"]);
}

#[test]
fn missing_index_is_a_clean_error() {
    let dir = tmp();
    let f = dir.path().join("x.fa");
    std::fs::write(&f, ">chr1\nACGTACGTAC\n").unwrap();
    // A plain FASTA gets its index built (tests/cli_regions.rs); a bgzip one without .fai does not.
    let bgz = dir.path().join("x.fa.gz");
    common::bgzip_with_index(&f, &bgz);
    std::fs::remove_file(format!("{}.fai", bgz.display())).unwrap();
    bad_case(
        &bgz,
        &["-r", "chr1:1-5"],
        &["x.fa.gz.fai", "samtools faidx"],
    );
    let gz = dir.path().join("x.fa.gz");
    gzip(&f, &gz);
    std::fs::copy(format!("{}", f.display()), dir.path().join("unused")).unwrap();
    // Plain gzip cannot be indexed: the advice is to recompress with bgzip (issue 12, class 7).
    bad_case(
        &gz,
        &["-r", "chr1:1-5"],
        &["x.fa.gz", "recompress with bgzip"],
    );
}

#[test]
fn shape_mismatch_names_the_tensor() {
    let dir = tmp();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::copy(
        "test-data/fixture-model/model.safetensors",
        model.join("model.safetensors"),
    )
    .unwrap();
    let config = std::fs::read_to_string("test-data/fixture-model/config.json").unwrap();
    std::fs::write(
        model.join("config.json"),
        config.replace("\"state_size\": 16", "\"state_size\": 8"),
    )
    .unwrap();
    let out_path = dir.path().join("out.bedgraph");
    let out = ssmgen()
        .args([
            "likelihood",
            "-q",
            "-m",
            p(&model),
            "test-data/fixture.fa",
            "-o",
            p(&out_path),
        ])
        .output()
        .unwrap();
    assert_clean_error(&out, &["backbone.layers.0.mixer.x_proj.weight", "shape"]);
    assert!(!out_path.exists());
    let out = ssmgen()
        .args([
            "likelihood",
            "-q",
            "-m",
            "test-data",
            "test-data/fixture.fa",
        ])
        .output()
        .unwrap();
    assert_clean_error(&out, &["config.json"]);
}

#[test]
fn device_cuda_without_a_gpu_is_a_clean_error() {
    if ssmgen::backend::cuda::cuda_available().is_ok() {
        eprintln!("skipped: this machine has a usable GPU");
        return;
    }
    bad_case(
        Path::new("test-data/fixture.fa"),
        &["--device", "cuda"],
        &["--device cuda"],
    );
    bad_case(
        Path::new("test-data/fixture.fa"),
        &["--device", "tpu"],
        &["expected auto, cpu, cuda"],
    );
    // auto falls back to the CPU and says so in one stderr line.
    let out = ssmgen()
        .args([
            "likelihood",
            "-m",
            MODEL,
            "test-data/fixture.fa",
            "--device",
            "auto",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(
        err.starts_with("ssmgen: device: cpu") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn batched_short_records_equal_unbatched_scoring() {
    // 300 short records (more than one batch) with a long one in the middle: streamed input
    // batches the short ones; the indexed copy scores every record on its own.
    let seq = fixture_sequence().to_ascii_uppercase();
    let long = seq.repeat(2);
    let mut records: Vec<(String, String)> = (0..300)
        .map(|i| {
            (
                format!("read{i}"),
                seq[i..i + 20 + (i * 7) % 150].to_string(),
            )
        })
        .collect();
    records.insert(150, ("long".to_string(), long));
    let refs: Vec<(&str, &str)> = records
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();
    let dir = tmp();
    let streamed = dir.path().join("reads.fa");
    write_fasta(&streamed, &refs, 60, "\n");
    let indexed = dir.path().join("indexed.fa");
    write_fasta(&indexed, &refs, 60, "\n");
    index_fasta(&indexed);
    for strand in ["fwd", "both"] {
        let a = ok_stdout(likelihood(&[p(&streamed), "-f", "csv", "-s", strand]));
        let b = ok_stdout(likelihood(&[p(&indexed), "-f", "csv", "-s", strand]));
        assert!(a == b, "strand {strand}: batched output differs");
        assert_eq!(
            a.lines().count(),
            1 + refs.iter().map(|(_, s)| s.len()).sum::<usize>()
        );
    }
}

#[test]
fn device_warmup_changes_nothing_on_the_cpu() {
    // A GPU option: accepted by every command, ignored on the CPU (no warm-up pass there).
    let dir = tmp();
    let (a, b) = (dir.path().join("a.bg"), dir.path().join("b.bg"));
    let plain = likelihood(&["--device", "cpu", "test-data/fixture.fa", "-o", p(&a)]);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let warm = likelihood(&[
        "--device",
        "cpu",
        "--device-warmup",
        "test-data/fixture.fa",
        "-o",
        p(&b),
    ]);
    assert!(
        warm.status.success(),
        "{}",
        String::from_utf8_lossy(&warm.stderr)
    );
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    for command in ["embed", "score-variants"] {
        let help = ssmgen().args([command, "--help"]).output().unwrap();
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("--device-warmup"),
            "{command}"
        );
    }
}
