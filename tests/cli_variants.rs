//! CLI tests of `ssmgen score-variants`: every input and output format and the bad-input cases.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{assert_clean_error, ok_stdout};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssmgen"))
        .args([
            "score-variants",
            "-q",
            "-m",
            "test-data/fixture-model",
            "--ref",
            "test-data/fixture.fa",
        ])
        .args(args)
        .output()
        .unwrap()
}

/// A VCF with an SNV, a deletion, a multi-allelic site, a symbolic ALT, a REF mismatch and an
/// unknown contig.
fn write_vcf(dir: &Path) -> PathBuf {
    let seq = common::fixture_sequence().to_ascii_uppercase();
    let b = |p: usize| seq[p - 1..p].to_string();
    let flip = |s: &str| if s == "A" { "C" } else { "A" }.to_string();
    let wrong = if b(900) == "T" { "G" } else { "T" };
    let lines = [
        "##fileformat=VCFv4.2".to_string(),
        "##contig=<ID=fixture>".to_string(),
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO".to_string(),
        format!(
            "fixture\t100\trs1\t{}\t{}\t.\tPASS\tDP=3",
            b(100),
            flip(&b(100))
        ),
        format!(
            "fixture\t300\trs2\t{}\t{}\t.\tPASS\t.",
            &seq[299..302],
            b(300)
        ),
        format!(
            "fixture\t500\trs3\t{}\t{},G\t.\tPASS\t.",
            b(500),
            flip(&b(500))
        ),
        format!("fixture\t600\trs4\t{}\t<DEL>\t.\tPASS\t.", b(600)),
        format!("fixture\t900\trs5\t{wrong}\tC\t.\tPASS\t."),
        "chrUn\t10\trs6\tA\tC\t.\tPASS\t.".to_string(),
    ];
    let path = dir.join("v.vcf");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn tsv_keeps_input_order_and_reports_skips() {
    let dir = tempfile::tempdir().unwrap();
    let vcf = write_vcf(dir.path());
    let out = run(&["--vcf", vcf.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let text = ok_stdout(out);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    let ids: Vec<&str> = rows.iter().map(|r| r[2]).collect();
    assert_eq!(
        ids,
        ["rs1", "rs2", "rs3", "rs3", "rs4", "rs5", "rs6"],
        "one row per ALT, input order"
    );
    assert!(!rows[0][11].is_empty() && rows[0][13].is_empty());
    assert_eq!(rows[4][13], "symbolic_or_missing_alt");
    assert_eq!(
        (rows[5][12], rows[5][13], rows[5][11]),
        ("1", "ref_mismatch", "")
    );
    assert_eq!(rows[6][13], "unknown_contig");
    assert!(
        err.contains("1 variant(s) not scored: ref_mismatch"),
        "{err}"
    );
    // score = mean of the strands' delta_ll
    let f: f64 = rows[0][8].parse().unwrap();
    let r: f64 = rows[0][9].parse().unwrap();
    let s: f64 = rows[0][11].parse().unwrap();
    assert!((s - 0.5 * (f + r)).abs() < 2e-6);
}

#[test]
fn every_output_format_and_gzip_input() {
    let dir = tempfile::tempdir().unwrap();
    let vcf = write_vcf(dir.path());
    let gz = dir.path().join("v.vcf.gz");
    common::gzip(&vcf, &gz);
    let tsv = ok_stdout(run(&["--vcf", vcf.to_str().unwrap()]));
    assert_eq!(
        ok_stdout(run(&["--vcf", gz.to_str().unwrap()])),
        tsv,
        "gzip VCF reads the same"
    );

    let csv_path = dir.path().join("o.csv");
    ok_stdout(run(&[
        "--vcf",
        vcf.to_str().unwrap(),
        "-o",
        csv_path.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(&csv_path).unwrap(),
        tsv.replace('\t', ",")
    );

    let bed = ok_stdout(run(&["--vcf", vcf.to_str().unwrap(), "-f", "bed"]));
    let lines: Vec<&str> = bed.lines().collect();
    assert_eq!(lines.len(), 4, "scored variants only: {bed}");
    assert!(lines[0].starts_with("fixture\t99\t100\trs1\t"));
    assert!(lines[1].starts_with("fixture\t299\t302\trs2\t"));

    let out_vcf = dir.path().join("o.vcf.gz");
    ok_stdout(run(&[
        "--vcf",
        vcf.to_str().unwrap(),
        "-o",
        out_vcf.to_str().unwrap(),
    ]));
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&out_vcf).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("##INFO=<ID=SSM_DLL,Number=A"));
    let rec: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(rec.len(), 6, "one line per input record");
    assert!(
        rec[0]
            .split('\t')
            .nth(7)
            .unwrap()
            .starts_with("DP=3;SSM_LLR=")
    );
    assert_eq!(
        rec[2]
            .split('\t')
            .nth(7)
            .unwrap()
            .split(";SSM_DLL=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .split(',')
            .count(),
        2
    );
    assert!(rec[4].contains("SSM_SKIP=ref_mismatch"));

    // A table in, same scores as the VCF.
    let table = dir.path().join("t.csv");
    let vtext = std::fs::read_to_string(&vcf).unwrap();
    let mut t = String::from("chrom,pos,id,ref,alt\n");
    for l in vtext.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = l.split('\t').collect();
        for alt in f[4].split(',') {
            t.push_str(&format!("{},{},{},{},{}\n", f[0], f[1], f[2], f[3], alt));
        }
    }
    std::fs::write(&table, t).unwrap();
    assert_eq!(ok_stdout(run(&["--vcf", table.to_str().unwrap()])), tsv);
}

/// test-data/variants.bcf is test-data/variants.vcf encoded by bcftools
/// (test-data/make_variants_bcf.sh): both must give the same rows, also as annotated VCF.
#[test]
fn bcf_input_scores_like_the_same_vcf() {
    for format in ["tsv", "vcf"] {
        let from_vcf = ok_stdout(run(&["--vcf", "test-data/variants.vcf", "-f", format]));
        let from_bcf = ok_stdout(run(&["--vcf", "test-data/variants.bcf", "-f", format]));
        let body = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with("##"))
                .map(String::from)
                .collect()
        };
        assert_eq!(body(&from_vcf), body(&from_bcf), "{format}");
        assert_eq!(body(&from_vcf).len(), if format == "tsv" { 9 } else { 8 });
    }
}

#[test]
fn bad_inputs_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let vcf = write_vcf(dir.path());
    let out_path = dir.path().join("o.tsv");
    assert_clean_error(
        &run(&[
            "--vcf",
            vcf.to_str().unwrap(),
            "--strict",
            "-o",
            out_path.to_str().unwrap(),
        ]),
        &["fixture:900", "does not match", "--strict"],
    );
    assert!(!out_path.exists(), "no output after an error");
    assert_clean_error(&run(&["--vcf", "no-such.vcf"]), &["no-such.vcf"]);
    let bad = dir.path().join("bad.vcf");
    std::fs::write(
        &bad,
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\nfixture\tx\t.\tA\tC\n",
    )
    .unwrap();
    assert_clean_error(
        &run(&["--vcf", bad.to_str().unwrap()]),
        &["bad.vcf", "line 3", "POS"],
    );
    let bcf = dir.path().join("v.bcf");
    std::fs::write(&bcf, b"BCF\x02\x02").unwrap();
    assert_clean_error(
        &run(&["--vcf", bcf.to_str().unwrap()]),
        &["v.bcf", "cannot decode BCF"],
    );
    // Aliases map VCF names onto the FASTA's.
    let alias = dir.path().join("alias.txt");
    std::fs::write(&alias, "chrUn fixture\n").unwrap();
    let text = ok_stdout(run(&[
        "--vcf",
        vcf.to_str().unwrap(),
        "--chrom-alias",
        alias.to_str().unwrap(),
    ]));
    assert!(!text.contains("unknown_contig"));
}
