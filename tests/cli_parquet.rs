//! CLI tests of Parquet output: each command's Parquet, read back with the parquet crate's
//! reader, holds the same rows as the text output of the same inputs (bedGraph for
//! `likelihood`, CSV for `embed`, TSV for `score-variants`), and records the provenance.

use std::path::Path;
use std::process::{Command, Output};

use arrow_array::{
    Array, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int64Array, RecordBatch,
    StringArray,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::Digest;

mod common;
use common::{assert_clean_error, ok_stdout};

const GENOME: &str = "test-data/shards.fa";
const VCF: &str = "test-data/shards.vcf";

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

/// The batches of a Parquet file, its row-group count and its key-value metadata.
fn read(path: &Path) -> (Vec<RecordBatch>, usize, Vec<(String, String)>) {
    let file = std::fs::File::open(path).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let groups = builder.metadata().num_row_groups();
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let batches = builder.build().unwrap().map(|b| b.unwrap()).collect();
    (batches, groups, kv)
}

fn col<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("column {name}: unexpected type"))
}

fn sha256_hex(path: &str) -> String {
    let digest = sha2::Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn assert_provenance(kv: &[(String, String)], command: &str) {
    let get = |k: &str| {
        kv.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no metadata {k}: {kv:?}"))
    };
    assert_eq!(get("ssmgen_version"), env!("CARGO_PKG_VERSION"));
    assert!(get("ssmgen_command").contains(command), "{kv:?}");
    assert_eq!(get("ssmgen_model"), "ssmgen-dna-small");
    assert_eq!(
        get("ssmgen_model_weights_sha256"),
        sha256_hex("models/ssmgen-dna-small/model.safetensors")
    );
    assert_eq!(
        get("ssmgen_model_config_sha256"),
        sha256_hex("models/ssmgen-dna-small/config.json")
    );
}

#[test]
fn likelihood_parquet_rows_are_the_bedgraph_rows() {
    let dir = tempfile::tempdir().unwrap();
    for bin in [None, Some("7")] {
        let bg = dir.path().join("t.bedgraph");
        let pq = dir.path().join("t.parquet");
        let mut common_args = vec!["likelihood", GENOME, "--strand", "both"];
        if let Some(b) = bin {
            common_args.extend(["--bin", b]);
        }
        ok_stdout(ssmgen(&[&common_args[..], &["-o", p(&bg)]].concat()));
        ok_stdout(ssmgen(&[&common_args[..], &["-o", p(&pq)]].concat()));
        let text = std::fs::read_to_string(&bg).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let (batches, groups, kv) = read(&pq);
        assert!(groups >= 1);
        assert_provenance(&kv, "likelihood");
        let mut i = 0;
        for b in &batches {
            let (chrom, start, end, logp) = (
                col::<StringArray>(b, "chrom"),
                col::<Int64Array>(b, "start"),
                col::<Int64Array>(b, "end"),
                col::<Float32Array>(b, "logp"),
            );
            for r in 0..b.num_rows() {
                let f: Vec<&str> = lines[i].split('\t').collect();
                assert_eq!(chrom.value(r), f[0], "row {i}");
                assert_eq!(start.value(r).to_string(), f[1], "row {i}");
                assert_eq!(end.value(r).to_string(), f[2], "row {i}");
                // bedGraph writes the shortest text that reads back as the same f32.
                assert_eq!(logp.value(r), f[3].parse::<f32>().unwrap(), "row {i}");
                i += 1;
            }
        }
        assert_eq!(i, lines.len(), "bin {bin:?}: row counts differ");
        assert!(i > 1000 / bin.map_or(1, |_| 7));
    }
}

#[test]
fn embed_parquet_rows_are_the_csv_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("e.csv");
    let pq = dir.path().join("e.parquet");
    let args = ["embed", GENOME, "--window", "100", "--stride", "70"];
    ok_stdout(ssmgen(&[&args[..], &["-o", p(&csv)]].concat()));
    ok_stdout(ssmgen(&[&args[..], &["-o", p(&pq)]].concat()));
    let (batches, _, kv) = read(&pq);
    assert_provenance(&kv, "embed");
    let text = std::fs::read_to_string(&csv).unwrap();
    let csv_lines: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let mut i = 0;
    for b in &batches {
        let list = col::<FixedSizeListArray>(b, "embedding");
        let (chrom, start, end, name) = (
            col::<StringArray>(b, "chrom"),
            col::<Int64Array>(b, "start"),
            col::<Int64Array>(b, "end"),
            col::<StringArray>(b, "name"),
        );
        assert_eq!(list.value_length() as usize, csv_lines[0].len() - 4);
        for r in 0..b.num_rows() {
            let f = &csv_lines[i];
            assert_eq!(chrom.value(r), f[0]);
            assert_eq!(start.value(r).to_string(), f[1]);
            assert_eq!(end.value(r).to_string(), f[2]);
            assert_eq!(name.value(r), f[3]);
            let values = list.value(r);
            let values = values.as_any().downcast_ref::<Float32Array>().unwrap();
            for (k, v) in values.values().iter().enumerate() {
                assert_eq!(*v, f[4 + k].parse::<f32>().unwrap(), "row {i} e{k}");
            }
            i += 1;
        }
    }
    assert_eq!(i, csv_lines.len());
    assert!(i >= 3 * 10, "expected windows over three records, got {i}");
}

#[test]
fn score_variants_parquet_rows_are_the_tsv_rows() {
    let dir = tempfile::tempdir().unwrap();
    let tsv = dir.path().join("s.tsv");
    let pq = dir.path().join("s.parquet");
    ok_stdout(ssmgen(&[
        "score-variants",
        "--ref",
        GENOME,
        "--vcf",
        VCF,
        "-o",
        p(&tsv),
        "-o",
        p(&pq),
    ]));
    let text = std::fs::read_to_string(&tsv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    let (batches, _, kv) = read(&pq);
    assert_provenance(&kv, "score-variants");
    let names: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, header, "the Parquet columns are the TSV's");
    let mut i = 0;
    let mut scored = 0;
    for b in &batches {
        for r in 0..b.num_rows() {
            let f = &rows[i];
            for (k, name) in header.iter().enumerate() {
                let column = b.column(k);
                let cell = match *name {
                    "pos" => col::<Int64Array>(b, name).value(r).to_string(),
                    "ref_mismatch" => u8::from(col::<BooleanArray>(b, name).value(r)).to_string(),
                    _ if column.as_any().is::<Float64Array>() => {
                        let a = col::<Float64Array>(b, name);
                        if a.is_null(r) {
                            String::new()
                        } else {
                            scored += 1;
                            format!("{:.6}", a.value(r))
                        }
                    }
                    _ => {
                        let a = col::<StringArray>(b, name);
                        if a.is_null(r) {
                            String::new()
                        } else {
                            a.value(r).to_string()
                        }
                    }
                };
                assert_eq!(cell, f[k], "row {i} column {name}");
            }
            i += 1;
        }
    }
    assert_eq!(i, rows.len());
    assert!(scored > 0);
}

#[test]
fn parquet_on_stdout_with_o_type_and_refusals() {
    let out = ssmgen(&["likelihood", GENOME, "-r", "chrC:1-50", "-O", "parquet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&out.stdout[..4], b"PAR1");
    assert_eq!(&out.stdout[out.stdout.len() - 4..], b"PAR1");
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("x.parquet.gz");
    let refused = ssmgen(&["likelihood", GENOME, "-o", p(&gz)]);
    assert_clean_error(&refused, &[".gz compresses text formats only"]);
    assert!(!gz.exists());
    let pq = dir.path().join("x.parquet");
    let refused = ssmgen(&["likelihood", GENOME, "-o", p(&pq), "--write-index"]);
    assert_clean_error(&refused, &["--write-index"]);
    assert!(!pq.exists());
}
