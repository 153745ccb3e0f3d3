//! The commands on Caduceus (masked) models, against the released code's outputs
//! (`test-data/make_caduceus_fixtures.py`).

use std::process::Command;

use safetensors::{Dtype, SafeTensors};

mod common;
use common::{ok_stdout, parse_csv};

const LETTERS: [(u32, char); 4] = [(7, 'A'), (8, 'C'), (9, 'G'), (10, 'T')];

fn ssmgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ssmgen"))
}

fn reference_tensor(name: &str) -> (Dtype, Vec<u8>) {
    let bytes = std::fs::read("test-data/caduceus-reference.safetensors").unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    (t.dtype(), t.data().to_vec())
}

fn ints(name: &str) -> Vec<u32> {
    let (dtype, data) = reference_tensor(name);
    assert_eq!(dtype, Dtype::I64);
    data.chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
        .collect()
}

fn floats(name: &str) -> Vec<f32> {
    let (dtype, data) = reference_tensor(name);
    assert_eq!(dtype, Dtype::F32);
    data.chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn letter(id: u32) -> char {
    LETTERS.iter().find(|(t, _)| *t == id).map_or('N', |p| p.1)
}

/// log_softmax(logits[t])[token t] from the reference, NaN for N.
fn reference_logp(key: &str) -> Vec<f64> {
    let tokens = ints("tokens");
    let logits = floats(&format!("{key}.logits"));
    tokens
        .iter()
        .zip(logits.chunks(16))
        .map(|(&t, row)| {
            if !(7..=10).contains(&t) {
                return f64::NAN;
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let z = row
                .iter()
                .map(|&x| (x as f64 - max).exp())
                .sum::<f64>()
                .ln()
                + max;
            row[t as usize] as f64 - z
        })
        .collect()
}

#[test]
fn likelihood_scores_every_base_as_the_released_code() {
    for (name, key) in [
        ("caduceus-ps", "caduceus_ps"),
        ("caduceus-ph", "caduceus_ph"),
    ] {
        let out = ok_stdout(
            ssmgen()
                .args([
                    "likelihood",
                    "-q",
                    "--device",
                    "cpu",
                    "-f",
                    "csv",
                    "--model",
                ])
                .arg(format!("test-data/{name}"))
                .arg("test-data/caduceus.fa")
                .output()
                .unwrap(),
        );
        let rows = parse_csv(&out);
        let want = reference_logp(key);
        assert_eq!(rows.len(), want.len(), "every base has a row");
        let mut worst = 0.0f64;
        for (row, w) in rows.iter().zip(&want) {
            match row.3 {
                Some(v) => worst = worst.max((v as f64 - w).abs()),
                None => assert!(w.is_nan(), "only N goes unscored"),
            }
        }
        eprintln!("{name}: likelihood max |Δ logp| {worst:.2e}");
        assert!(worst <= 1e-4, "{name}: {worst}");
        assert!(rows[0].3.is_some(), "the first base is scored too");
    }
}

#[test]
fn windows_report_each_base_once_and_rcps_strands_agree() {
    let run = |extra: &[&str]| {
        parse_csv(&ok_stdout(
            ssmgen()
                .args(["likelihood", "-q", "--device", "cpu", "-f", "csv"])
                .args(["--model", "test-data/caduceus-ps", "test-data/caduceus.fa"])
                .args(extra)
                .output()
                .unwrap(),
        ))
    };
    let windowed = run(&["--window-len", "100", "--window-overlap", "30"]);
    let positions: Vec<u64> = windowed.iter().map(|r| r.1).collect();
    assert_eq!(positions, (1..=300).collect::<Vec<_>>());
    let whole = run(&[]);
    let differs = windowed
        .iter()
        .zip(&whole)
        .any(|(a, b)| a.3.zip(b.3).is_some_and(|(x, y)| (x - y).abs() > 1e-3));
    assert!(
        differs,
        "100-base windows see less context than the whole record"
    );
    let both = run(&["--strand", "both"]);
    for row in &both {
        if let (Some(f), Some(r)) = (row.3, row.4) {
            assert!(
                (f - r).abs() <= 1e-4,
                "RCPS: both strands agree at {}",
                row.1
            );
        }
    }
}

#[test]
fn masked_llrs_equal_the_released_code_and_rcps_strands_agree() {
    let dir = tempfile::tempdir().unwrap();
    let vcf = dir.path().join("v.vcf");
    let tokens = ints("tokens");
    let (pos, refs, alts) = (
        ints("variant_pos"),
        ints("variant_ref"),
        ints("variant_alt"),
    );
    let mut text = String::from(
        "##fileformat=VCFv4.2\n##contig=<ID=cad,length=300>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n",
    );
    for ((&p, &r), &a) in pos.iter().zip(&refs).zip(&alts) {
        assert_eq!(tokens[p as usize], r);
        text += &format!("cad\t{}\t.\t{}\t{}\t.\t.\t.\n", p + 1, letter(r), letter(a));
    }
    text += "cad\t10\t.\tA\tAT\t.\t.\t.\n";
    std::fs::write(&vcf, text).unwrap();
    for (name, key) in [
        ("caduceus-ps", "caduceus_ps"),
        ("caduceus-ph-lean", "caduceus_ph"),
        ("caduceus-ph-mul", "caduceus_ph_mul"),
    ] {
        let out = ok_stdout(
            ssmgen()
                .args(["score-variants", "-q", "--device", "cpu", "-f", "csv"])
                .arg("--model")
                .arg(format!("test-data/{name}"))
                .args(["--ref", "test-data/caduceus.fa", "--vcf"])
                .arg(&vcf)
                .output()
                .unwrap(),
        );
        let mut lines = out.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        let (want_f, want_r) = (
            floats(&format!("{key}.llr_fwd")),
            floats(&format!("{key}.llr_rev")),
        );
        for (i, row) in rows.iter().take(pos.len()).enumerate() {
            let f: f32 = row[col("llr_fwd")].parse().unwrap();
            let r: f32 = row[col("llr_rev")].parse().unwrap();
            assert!(
                (f - want_f[i]).abs() <= 1e-4,
                "{name} {i}: {f} vs {}",
                want_f[i]
            );
            assert!(
                (r - want_r[i]).abs() <= 1e-4,
                "{name} {i}: {r} vs {}",
                want_r[i]
            );
            if name == "caduceus-ps" {
                assert!((f - r).abs() <= 1e-5, "RCPS: llr_fwd = llr_rev ({f} {r})");
            }
            assert_eq!(row[col("delta_ll")], "", "a masked model has no delta_ll");
        }
        let indel = rows.last().unwrap();
        assert_eq!(indel[col("skip_reason")], "not_snv");
    }
}

/// Per-base embedding rows of `ssmgen embed --per-base` on `fasta`, by 0-based position
/// (`None` for an N, which gets no row).
fn per_base_rows(model: &str, fasta: &std::path::Path, extra: &[&str]) -> Vec<Option<Vec<f32>>> {
    let out = ok_stdout(
        ssmgen()
            .args([
                "embed",
                "-q",
                "--device",
                "cpu",
                "--per-base",
                "--model",
                model,
            ])
            .arg(fasta)
            .args(extra)
            .output()
            .unwrap(),
    );
    let mut rows = vec![None; 300];
    for l in out.lines().skip(1) {
        let start: usize = l.split(',').nth(1).unwrap().parse().unwrap();
        rows[start] = Some(l.split(',').skip(4).map(|v| v.parse().unwrap()).collect());
    }
    rows
}

/// Pairs of rows present in both, with the second taken at the mirrored position.
fn mirrored_pairs<'a>(
    a: &'a [Option<Vec<f32>>],
    b: &'a [Option<Vec<f32>>],
) -> impl Iterator<Item = (&'a Vec<f32>, &'a Vec<f32>)> {
    let len = a.len();
    (0..len).filter_map(move |t| a[t].as_ref().zip(b[len - 1 - t].as_ref()))
}

#[test]
fn rcps_embeddings_are_the_averaged_halves_and_mirror_under_reverse_complement() {
    let fasta = std::path::Path::new("test-data/caduceus.fa");
    let hidden = floats("caduceus_ps.hidden");
    let (len, d) = (300, 32);
    let halves = per_base_rows("test-data/caduceus-ps", fasta, &["--rc-halves"]);
    let averaged = per_base_rows("test-data/caduceus-ps", fasta, &[]);
    assert_eq!(
        halves.iter().flatten().count(),
        len - 3,
        "the three N have no row"
    );
    let mut worst = 0.0f32;
    for t in 0..len {
        let (Some(h), Some(a)) = (&halves[t], &averaged[t]) else {
            continue;
        };
        assert_eq!((h.len(), a.len()), (2 * d, d));
        let row = &hidden[t * 2 * d..(t + 1) * 2 * d];
        for c in 0..d {
            let want = 0.5 * (row[c] + row[2 * d - 1 - c]);
            worst = worst.max((a[c] - want).abs());
        }
        for c in 0..2 * d {
            worst = worst.max((h[c] - row[c]).abs());
        }
    }
    assert!(
        worst <= 1e-4,
        "embeddings vs the released code's hidden states: {worst}"
    );

    // The reverse complement's embeddings are this sequence's, mirrored.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fasta).unwrap();
    let seq: String = text.lines().skip(1).collect();
    let rc = common::revcomp(&seq);
    let rc_path = dir.path().join("rc.fa");
    std::fs::write(&rc_path, format!(">cad\n{rc}\n")).unwrap();
    let mirrored = per_base_rows("test-data/caduceus-ps", &rc_path, &[]);
    let mut worst = 0.0f32;
    let mut pairs = 0;
    for (a, b) in mirrored_pairs(&averaged, &mirrored) {
        pairs += 1;
        for c in 0..d {
            worst = worst.max((a[c] - b[c]).abs());
        }
    }
    assert_eq!(pairs, len - 3);
    assert!(worst <= 1e-5, "RC mirror: {worst}");
    // A causal-style single strand of a non-RCPS model does not mirror: the check can fail.
    let ph = per_base_rows("test-data/caduceus-ph", fasta, &[]);
    let ph_rc = per_base_rows("test-data/caduceus-ph", &rc_path, &[]);
    assert!(mirrored_pairs(&ph, &ph_rc).any(|(a, b)| (a[0] - b[0]).abs() > 1e-3));
}

#[test]
fn variant_windows_shift_at_record_ends_and_are_centred_elsewhere() {
    use ssmgen::backend::cpu::CpuOps;
    use ssmgen::graph::caduceus::CaduceusGraph;
    use ssmgen::model::caduceus::{CaduceusModel, MASK_TOKEN};
    let tokens = ints("tokens");
    let dir = tempfile::tempdir().unwrap();
    let vcf = dir.path().join("v.vcf");
    // First base, a middle base, the last base (0-based 0, 150, 299); ALT = next base id.
    let sites = [0usize, 150, 299];
    let alt = |t: u32| 7 + (t - 7 + 1) % 4;
    let mut text =
        String::from("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n");
    for &p in &sites {
        let (r, a) = (tokens[p], alt(tokens[p]));
        text += &format!("cad\t{}\t.\t{}\t{}\t.\t.\t.\n", p + 1, letter(r), letter(a));
    }
    std::fs::write(&vcf, text).unwrap();
    let out = ok_stdout(
        ssmgen()
            .args(["score-variants", "-q", "--device", "cpu", "-f", "csv"])
            .args(["--model", "test-data/caduceus-ph", "--window-len", "64"])
            .args(["--ref", "test-data/caduceus.fa", "--vcf"])
            .arg(&vcf)
            .output()
            .unwrap(),
    );
    let got: Vec<f32> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(5).unwrap().parse().unwrap())
        .collect();
    // The windows the documentation promises: [0, 64), [118, 182), [236, 300).
    let model = CaduceusModel::load(std::path::Path::new("test-data/caduceus-ph")).unwrap();
    let g = CaduceusGraph::build(CpuOps, &model).unwrap();
    for (&p, (&start, llr)) in sites.iter().zip([0usize, 118, 236].iter().zip(got)) {
        let mut window = tokens[start..start + 64].to_vec();
        let q = p - start;
        window[q] = MASK_TOKEN;
        let mut logits = Vec::new();
        g.logits_host(&window, 1, &mut logits).unwrap();
        let row = &logits[q * 16..(q + 1) * 16];
        let want = row[alt(tokens[p]) as usize] - row[tokens[p] as usize];
        assert!((llr - want).abs() <= 1e-5, "site {p}: {llr} vs {want}");
    }
}

#[test]
fn info_describes_a_caduceus_model() {
    let out = ok_stdout(
        ssmgen()
            .args(["info", "--model", "test-data/caduceus-ps"])
            .output()
            .unwrap(),
    );
    assert!(out.contains("rcps               true"), "{out}");
    // 3 blocks of (forward mixer 9,920 + reverse mixer without its tied projections 3,776 +
    // norm 32), embedding 16 x 32, final norm 32, LM head tied.
    assert!(out.contains("parameters         41728"), "{out}");
}
