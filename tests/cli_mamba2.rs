//! `ssmgen likelihood`, `embed`, `score-variants` and `info` on a Mamba-2 checkpoint, against
//! transformers' log-probabilities (`test-data/make_mamba2_fixture.py`).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{ok_stdout, parse_csv};

const MODEL: &str = "test-data/mamba2-fixture";
const VOCAB: usize = 12;

fn ssmgen(args: &[&str]) -> String {
    ok_stdout(
        Command::new(env!("CARGO_BIN_EXE_ssmgen"))
            .args(args)
            .args(["-q", "--device", "cpu", "-m", MODEL])
            .output()
            .unwrap(),
    )
}

/// The reference tokens and log-probabilities.
fn reference() -> (Vec<u32>, Vec<f32>) {
    let (tokens, mut logp) =
        common::read_reference("test-data/mamba2-reference.safetensors", &["logp"]);
    (tokens, logp.remove(0))
}

/// The reference's bases (the first of `fixture.fa`) as a FASTA record `fixture`, `len` long.
fn write_fasta(dir: &Path, len: usize) -> PathBuf {
    let seq = common::fixture_sequence();
    let path = dir.join("m2.fa");
    common::write_fasta(&path, &[("fixture", &seq[..len])], 60, "\n");
    path
}

#[test]
fn likelihood_matches_transformers_whatever_the_stripe() {
    let (tokens, logp) = reference();
    let dir = tempfile::tempdir().unwrap();
    let fa = write_fasta(dir.path(), tokens.len());
    let fa = fa.to_str().unwrap();
    let text = ssmgen(&["likelihood", fa, "-f", "csv"]);
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), tokens.len());
    let mut worst = 0.0f32;
    let mut checked = 0;
    for (i, row) in rows.iter().enumerate() {
        if i == 0 || tokens[i] == 11 {
            assert_eq!(row.3, None, "no score at {i}");
            continue;
        }
        let want = logp[(i - 1) * VOCAB + tokens[i] as usize];
        worst = worst.max((row.3.unwrap() - want).abs());
        checked += 1;
    }
    assert!(checked > 700);
    assert!(worst <= 1e-4, "max |Δ logp| = {worst}");
    for stripe in ["1", "7", "1000"] {
        let striped = ssmgen(&["likelihood", fa, "-f", "csv", "--stripe-len", stripe]);
        assert_eq!(striped, text, "--stripe-len {stripe}");
    }
}

/// Per-base embeddings are the final normalised hidden states: through the LM head they give
/// transformers' log-probabilities.
#[test]
fn per_base_embeddings_give_the_reference_through_the_head() {
    let (tokens, logp) = reference();
    let model = ssmgen::model::Model::load(Path::new(MODEL)).unwrap();
    let (d, head) = (model.config.hidden_size, &model.weights.lm_head);
    let dir = tempfile::tempdir().unwrap();
    let len = 690; // no N: every base has a row
    let fa = write_fasta(dir.path(), len);
    let text = ssmgen(&["embed", fa.to_str().unwrap(), "--per-base", "-O", "csv"]);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut rows = 0;
    let mut worst = 0.0f64;
    for (t, record) in reader.records().enumerate() {
        let record = record.unwrap();
        let h: Vec<f64> = record.iter().skip(4).map(|v| v.parse().unwrap()).collect();
        assert_eq!(h.len(), d);
        let logits: Vec<f64> = (0..VOCAB)
            .map(|j| (0..d).map(|i| h[i] * head[j * d + i] as f64).sum())
            .collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + logits.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        for (j, logit) in logits.iter().enumerate() {
            let want = logp[t * VOCAB + j] as f64;
            worst = worst.max((logit - lse - want).abs());
        }
        rows += 1;
    }
    assert_eq!(rows, len);
    assert!(worst <= 1e-4, "max |Δ logp| via embeddings = {worst}");
    assert_eq!(tokens.len(), 800);
}

/// An SNV's `llr_fwd` is `log P(alt) − log P(ref)` given the upstream bases.
#[test]
fn score_variants_llr_matches_transformers() {
    let (tokens, logp) = reference();
    let dir = tempfile::tempdir().unwrap();
    let fa = write_fasta(dir.path(), tokens.len());
    let letters = ['A', 'C', 'G', 'T'];
    let mut lines = vec![
        "##fileformat=VCFv4.2".to_string(),
        "##contig=<ID=fixture>".to_string(),
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO".to_string(),
    ];
    let sites = [100usize, 333, 650];
    let mut want = Vec::new();
    for pos in sites {
        let r = tokens[pos - 1];
        let a = if r == 7 { 8 } else { 7 };
        let row = &logp[(pos - 2) * VOCAB..(pos - 1) * VOCAB];
        want.push(row[a as usize] - row[r as usize]);
        lines.push(format!(
            "fixture\t{pos}\t.\t{}\t{}\t.\tPASS\t.",
            letters[r as usize - 7],
            letters[a as usize - 7]
        ));
    }
    let vcf = dir.path().join("v.vcf");
    std::fs::write(&vcf, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("v.tsv");
    ssmgen(&[
        "score-variants",
        "--ref",
        fa.to_str().unwrap(),
        "--vcf",
        vcf.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .from_reader(text.as_bytes());
    let col = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "llr_fwd")
        .unwrap();
    let got: Vec<f32> = reader
        .records()
        .map(|r| r.unwrap()[col].parse().unwrap())
        .collect();
    assert_eq!(got.len(), sites.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 2e-4, "llr_fwd {g} vs {w}");
    }
}

#[test]
fn info_describes_the_mamba2_model() {
    let text = ssmgen(&["info"]);
    for needle in [
        "architecture       mamba2",
        "parameters         99304",
        "heads              8 of head_dim 16",
        "n_groups           2",
        "time_step_limit    0 to inf",
        "3744 floats (672 conv + 3072 ssm)",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}
