//! CLI tests of `ssmgen embed`: every format read back with an independent reader, windows as
//! means of per-base rows, reverse-complement symmetry of `--strand both`, and bad input.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{assert_clean_error, ok_stdout};

const MODEL: &str = "test-data/fixture-model";

fn ssmgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssmgen"))
        .arg("embed")
        .args(["-q", "-m", MODEL])
        .args(args)
        .output()
        .unwrap()
}

/// Rows of CSV/TSV output: ((chrom, start, end, name), values).
type Row = ((String, u64, u64, String), Vec<f32>);

fn parse_rows(text: &str, delimiter: u8) -> Vec<Row> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(
        &header.iter().take(5).collect::<Vec<_>>(),
        &["chrom", "start", "end", "name", "e0"]
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                (
                    r[0].to_string(),
                    r[1].parse().unwrap(),
                    r[2].parse().unwrap(),
                    r[3].to_string(),
                ),
                r.iter().skip(4).map(|v| v.parse().unwrap()).collect(),
            )
        })
        .collect()
}

fn rows_bed(path: &Path) -> Vec<(String, u64, u64, String)> {
    std::fs::read_to_string(format!("{}.rows.bed", path.display()))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].into(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].into(),
            )
        })
        .collect()
}

/// The fixture sequence without its N runs (N becomes A), so every base has a per-base row.
fn fixture_without_n() -> String {
    common::fixture_sequence()
        .to_ascii_uppercase()
        .replace('N', "A")
}

#[test]
fn every_format_reads_back_as_the_csv_rows() {
    let dir = tempfile::tempdir().unwrap();
    let fa = "test-data/fixture.fa";
    let args = ["--window", "500", "--stride", "250", "--strand", "both"];
    let csv_rows = parse_rows(&ok_stdout(ssmgen(&[&[fa][..], &args].concat())), b',');
    assert_eq!(csv_rows.len(), 12, "windows start every 250 bases of 3,000");
    assert_eq!(
        csv_rows[0].0,
        ("fixture".into(), 0, 500, "fixture:1-500".into())
    );
    assert_eq!(
        csv_rows[11].0,
        ("fixture".into(), 2750, 3000, "fixture:2751-3000".into())
    );
    assert_eq!(csv_rows[0].1.len(), 64);

    let tsv = dir.path().join("e.tsv.gz");
    ok_stdout(ssmgen(
        &[&[fa, "-o", tsv.to_str().unwrap()][..], &args].concat(),
    ));
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&tsv).unwrap()),
        &mut text,
    )
    .unwrap();
    assert_eq!(parse_rows(&text, b'\t'), csv_rows);

    let npy = dir.path().join("e.npy");
    ok_stdout(ssmgen(
        &[&[fa, "-o", npy.to_str().unwrap()][..], &args].concat(),
    ));
    let file = npyz::NpyFile::new(std::fs::File::open(&npy).unwrap()).unwrap();
    assert_eq!(file.shape(), &[12, 64]);
    let values: Vec<f32> = file.into_vec().unwrap();
    let expected: Vec<f32> = csv_rows.iter().flat_map(|r| r.1.clone()).collect();
    assert_eq!(values, expected);
    let coords: Vec<_> = csv_rows.iter().map(|r| r.0.clone()).collect();
    assert_eq!(rows_bed(&npy), coords);

    let st = dir.path().join("e.safetensors");
    ok_stdout(ssmgen(
        &[&[fa, "-o", st.to_str().unwrap()][..], &args].concat(),
    ));
    let bytes = std::fs::read(&st).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = tensors.tensor("embeddings").unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    assert_eq!(t.shape(), &[12, 64]);
    let values: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(values, expected);
    assert_eq!(rows_bed(&st), coords);
}

#[test]
fn windows_and_records_are_means_of_per_base_rows() {
    let dir = tempfile::tempdir().unwrap();
    let fa = dir.path().join("f.fa");
    common::write_fasta(&fa, &[("fixture", &fixture_without_n())], 60, "\n");
    common::index_fasta(&fa);
    let fa = fa.to_str().unwrap();
    let region = ["--region", "fixture:101-1100", "--strand", "both"];
    let per_base = parse_rows(
        &ok_stdout(ssmgen(&[&[fa, "--per-base"][..], &region].concat())),
        b',',
    );
    assert_eq!(per_base.len(), 1000);
    assert_eq!(
        per_base[0].0,
        ("fixture".into(), 100, 101, "fixture:101-101".into())
    );
    let windows = parse_rows(
        &ok_stdout(ssmgen(
            &[&[fa, "--window", "100", "--stride", "30"][..], &region].concat(),
        )),
        b',',
    );
    let record = parse_rows(&ok_stdout(ssmgen(&[&[fa][..], &region].concat())), b',');
    assert_eq!(record.len(), 1);
    assert_eq!(record[0].0, ("fixture".into(), 100, 1100, "fixture".into()));
    for ((_, start, end, _), values) in windows.iter().chain(&record) {
        let rows = &per_base[(start - 100) as usize..(end - 100) as usize];
        for (j, v) in values.iter().enumerate() {
            let mean = rows.iter().map(|r| r.1[j] as f64).sum::<f64>() / rows.len() as f64;
            assert!(
                (mean - *v as f64).abs() <= 1e-5,
                "[{start},{end}) e{j}: {mean} vs {v}"
            );
        }
    }
    assert_eq!(windows.len(), 1000usize.div_ceil(30));
}

#[test]
fn both_strands_are_the_same_on_the_reverse_complement() {
    let dir = tempfile::tempdir().unwrap();
    let seq = fixture_without_n()[..1200].to_string();
    let fa = dir.path().join("pair.fa");
    common::write_fasta(
        &fa,
        &[("fwd", &seq), ("rc", &common::revcomp(&seq))],
        60,
        "\n",
    );
    let fa = fa.to_str().unwrap();
    let rows = parse_rows(
        &ok_stdout(ssmgen(&[fa, "--per-base", "--strand", "both"])),
        b',',
    );
    let (fwd, rc) = rows.split_at(1200);
    for (i, row) in fwd.iter().enumerate() {
        assert_eq!(row.1, rc[1199 - i].1, "base {i} and its mirror");
    }
    let records = parse_rows(&ok_stdout(ssmgen(&[fa, "--strand", "both"])), b',');
    for (a, b) in records[0].1.iter().zip(&records[1].1) {
        assert!((a - b).abs() <= 1e-5);
    }
    // A single strand is not symmetric: the check above can fail.
    let one = parse_rows(&ok_stdout(ssmgen(&[fa, "--per-base"])), b',');
    assert_ne!(one[0].1, one[2399].1);
}

#[test]
fn n_only_windows_are_skipped_with_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let seq = format!(
        "{}{}{}",
        &common::fixture_sequence()[..200],
        "N".repeat(250),
        "ACGT".repeat(50)
    );
    let fa = dir.path().join("n.fa");
    common::write_fasta(&fa, &[("withn", &seq)], 60, "\n");
    let out = ssmgen(&[fa.to_str().unwrap(), "--window", "100"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let rows = parse_rows(&ok_stdout(out), b',');
    let starts: Vec<u64> = rows.iter().map(|r| r.0.1).collect();
    assert_eq!(
        starts,
        [0, 100, 400, 500, 600],
        "windows 200-300 and 300-400 are all N"
    );
    assert!(err.contains("2 window(s) skipped"), "{err}");
}

#[test]
fn bad_requests_are_clean_errors() {
    let fa = "test-data/fixture.fa";
    assert_clean_error(
        &ssmgen(&[fa, "--per-base", "--max-per-base", "1000"]),
        &["fixture", "3000 bases", "cap"],
    );
    assert_clean_error(&ssmgen(&[fa, "-f", "npy"]), &["NPY", "file name"]);
    assert_clean_error(&ssmgen(&[fa, "--layer", "2"]), &["layer 2", "2 layers"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.npy");
    let bad = dir.path().join("bad.fa");
    std::fs::write(&bad, ">r\nACGTX\n").unwrap();
    assert_clean_error(
        &ssmgen(&[bad.to_str().unwrap(), "-o", out.to_str().unwrap()]),
        &["bad.fa", "r", "5"],
    );
    assert!(!out.exists() && !dir.path().join("x.npy.rows.bed").exists());
    let stride_alone = ssmgen(&[fa, "--stride", "5"]);
    assert!(!stride_alone.status.success());
}

fn sha256_hex(path: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn matrices_record_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let fa = "test-data/fixture.fa";
    let weights = sha256_hex(&format!("{MODEL}/model.safetensors"));
    let config = sha256_hex(&format!("{MODEL}/config.json"));

    // safetensors: in the header's __metadata__, read by the safetensors crate.
    let st = dir.path().join("e.safetensors");
    ok_stdout(ssmgen(&[fa, "--window", "700", "-o", st.to_str().unwrap()]));
    let bytes = std::fs::read(&st).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let kv = meta.metadata().clone().expect("no __metadata__");
    assert_eq!(kv["ssmgen_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(kv["ssmgen_model"], "fixture-model");
    assert_eq!(kv["ssmgen_model_source"], MODEL);
    assert_eq!(kv["ssmgen_model_weights_sha256"], weights);
    assert_eq!(kv["ssmgen_model_config_sha256"], config);
    assert!(kv["ssmgen_command"].contains("embed"), "{kv:?}");
    assert!(kv["ssmgen_command"].contains("--window 700"), "{kv:?}");
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(tensors.tensor("embeddings").unwrap().shape(), &[5, 64]);
    // safetensors' recommended alignment: the data starts at a multiple of 8.
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!((8 + n) % 8, 0);

    // NPY: FILE.json beside it, with the same keys and the matrix's shape.
    let npy = dir.path().join("e.npy");
    ok_stdout(ssmgen(&[
        fa,
        "--window",
        "700",
        "-o",
        npy.to_str().unwrap(),
    ]));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("e.npy.json")).unwrap()).unwrap();
    assert_eq!(json["ssmgen_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["ssmgen_model_weights_sha256"], weights.as_str());
    assert_eq!(json["ssmgen_model_config_sha256"], config.as_str());
    assert_eq!(json["shape"], serde_json::json!([5, 64]));
    assert_eq!(json["dtype"], "float32");
    assert_eq!(json["rows_bed"], "e.npy.rows.bed");
    let file = npyz::NpyFile::new(std::fs::File::open(&npy).unwrap()).unwrap();
    assert_eq!(file.shape(), &[5, 64]);

    // The built-in model by name: its own hashes.
    let st2 = dir.path().join("b.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_ssmgen"))
        .args(["embed", "-q", "-m", "ssmgen-dna-small", fa, "-o"])
        .arg(&st2)
        .output()
        .unwrap();
    ok_stdout(out);
    let bytes = std::fs::read(&st2).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let kv = meta.metadata().clone().unwrap();
    assert_eq!(kv["ssmgen_model_source"], "builtin:ssmgen-dna-small");
    assert_eq!(
        kv["ssmgen_model_weights_sha256"],
        sha256_hex("models/ssmgen-dna-small/model.safetensors")
    );
}
