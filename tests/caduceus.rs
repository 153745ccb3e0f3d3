//! Parity with the released Caduceus code (`CaduceusForMaskedLM` on mamba-ssm's kernels, fused
//! add-norm; fixtures and outputs written by `test-data/make_caduceus_fixtures.py` on a GPU).

use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use ssmgen::backend::cpu::CpuOps;
use ssmgen::graph::caduceus::CaduceusGraph;
use ssmgen::model::caduceus::{CaduceusModel, MASK_TOKEN};

const FIXTURES: [&str; 3] = ["caduceus-ps", "caduceus-ph", "caduceus-ph-mul"];
const VOCAB: usize = 16;

struct Reference {
    st_bytes: Vec<u8>,
}

impl Reference {
    fn load() -> Self {
        Reference {
            st_bytes: std::fs::read("test-data/caduceus-reference.safetensors").unwrap(),
        }
    }
    fn ints(&self, name: &str) -> Vec<u32> {
        let st = SafeTensors::deserialize(&self.st_bytes).unwrap();
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), Dtype::I64);
        t.data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
            .collect()
    }
    fn floats(&self, name: &str) -> Vec<f32> {
        let st = SafeTensors::deserialize(&self.st_bytes).unwrap();
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), Dtype::F32);
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
}

fn graph(dir: &str) -> CaduceusGraph<CpuOps> {
    let model = CaduceusModel::load(Path::new("test-data").join(dir).as_path()).unwrap();
    CaduceusGraph::build(CpuOps, &model).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z = row
        .iter()
        .map(|&x| (x as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    row.iter().map(|&x| (x as f64 - z) as f32).collect()
}

/// logit[ALT] − logit[REF] at each site, the site masked, one batched pass over all copies.
fn masked_llr(g: &CaduceusGraph<CpuOps>, tokens: &[u32], sites: &[(usize, u32, u32)]) -> Vec<f32> {
    let len = tokens.len();
    let mut batch = Vec::with_capacity(len * sites.len());
    for &(pos, _, _) in sites {
        let mut copy = tokens.to_vec();
        copy[pos] = MASK_TOKEN;
        batch.extend(copy);
    }
    let mut logits = Vec::new();
    g.logits_host(&batch, sites.len(), &mut logits).unwrap();
    sites
        .iter()
        .enumerate()
        .map(|(b, &(pos, r, a))| {
            let row = &logits[(b * len + pos) * VOCAB..(b * len + pos + 1) * VOCAB];
            row[a as usize] - row[r as usize]
        })
        .collect()
}

fn complement(t: u32) -> u32 {
    match t {
        7 => 10,
        8 => 9,
        9 => 8,
        10 => 7,
        other => other,
    }
}

#[test]
fn logits_and_hidden_states_equal_the_released_code() {
    let r = Reference::load();
    let tokens = r.ints("tokens");
    for name in FIXTURES {
        let key = name.replace('-', "_");
        let want_logits = r.floats(&format!("{key}.logits"));
        let want_hidden = r.floats(&format!("{key}.hidden"));
        for dir in [name.to_string(), format!("{name}-lean")] {
            let g = graph(&dir);
            let mut logits = Vec::new();
            g.logits_host(&tokens, 1, &mut logits).unwrap();
            let d_logits = max_abs_diff(&logits, &want_logits);
            let d_logp = logits
                .chunks(VOCAB)
                .zip(want_logits.chunks(VOCAB))
                .map(|(a, b)| max_abs_diff(&log_softmax(a), &log_softmax(b)))
                .fold(0.0, f32::max);
            let mut hidden = Vec::new();
            g.hidden_host(&tokens, 1, &mut hidden).unwrap();
            let d_hidden = max_abs_diff(&hidden, &want_hidden);
            eprintln!(
                "{dir}: max |Δ logits| {d_logits:.2e}, |Δ logp| {d_logp:.2e}, |Δ hidden| {d_hidden:.2e}"
            );
            assert!(d_logits <= 1e-4, "{dir}: logits differ by {d_logits}");
            assert!(
                d_logp <= 1e-4,
                "{dir}: log-probabilities differ by {d_logp}"
            );
            assert!(
                d_hidden <= 1e-4,
                "{dir}: hidden states differ by {d_hidden}"
            );
        }
    }
}

#[test]
fn masked_llrs_equal_the_released_code_on_both_strands() {
    let r = Reference::load();
    let tokens = r.ints("tokens");
    let (pos, refs, alts) = (
        r.ints("variant_pos"),
        r.ints("variant_ref"),
        r.ints("variant_alt"),
    );
    let sites: Vec<(usize, u32, u32)> = pos
        .iter()
        .zip(&refs)
        .zip(&alts)
        .map(|((&p, &r), &a)| (p as usize, r, a))
        .collect();
    let len = tokens.len();
    let rc: Vec<u32> = tokens.iter().rev().map(|&t| complement(t)).collect();
    let rc_sites: Vec<(usize, u32, u32)> = sites
        .iter()
        .map(|&(p, r, a)| (len - 1 - p, complement(r), complement(a)))
        .collect();
    for name in FIXTURES {
        let key = name.replace('-', "_");
        for dir in [name.to_string(), format!("{name}-lean")] {
            let g = graph(&dir);
            let fwd = masked_llr(&g, &tokens, &sites);
            let rev = masked_llr(&g, &rc, &rc_sites);
            let d_fwd = max_abs_diff(&fwd, &r.floats(&format!("{key}.llr_fwd")));
            let d_rev = max_abs_diff(&rev, &r.floats(&format!("{key}.llr_rev")));
            eprintln!("{dir}: max |Δ llr_fwd| {d_fwd:.2e}, |Δ llr_rev| {d_rev:.2e}");
            assert!(d_fwd <= 1e-4 && d_rev <= 1e-4, "{dir}: {d_fwd} {d_rev}");
        }
    }
}

#[test]
fn rcps_is_reverse_complement_equivariant() {
    let r = Reference::load();
    let tokens = r.ints("tokens");
    let len = tokens.len();
    let rc: Vec<u32> = tokens.iter().rev().map(|&t| complement(t)).collect();
    let g = graph("caduceus-ps");
    let width = 2 * g.config().d_model;
    let (mut h, mut h_rc) = (Vec::new(), Vec::new());
    g.hidden_host(&tokens, 1, &mut h).unwrap();
    g.hidden_host(&rc, 1, &mut h_rc).unwrap();
    // RC of the input = the hidden states flipped over time and over all 2·d_model channels.
    let mut worst = 0.0f32;
    for t in 0..len {
        let row = &h[t * width..(t + 1) * width];
        let mirrored = &h_rc[(len - 1 - t) * width..(len - t) * width];
        for (c, v) in row.iter().enumerate() {
            worst = worst.max((v - mirrored[width - 1 - c]).abs());
        }
    }
    eprintln!("RCPS equivariance: max |Δ| {worst:.2e}");
    assert!(worst <= 1e-5, "{worst}");
    // A BiMamba model without RCPS is not equivariant: the check can fail.
    let g = graph("caduceus-ph");
    let width = g.config().d_model;
    g.hidden_host(&tokens, 1, &mut h).unwrap();
    g.hidden_host(&rc, 1, &mut h_rc).unwrap();
    let differs = (0..len).any(|t| {
        let row = &h[t * width..(t + 1) * width];
        let mirrored = &h_rc[(len - 1 - t) * width..(len - t) * width];
        row.iter()
            .enumerate()
            .any(|(c, v)| (v - mirrored[width - 1 - c]).abs() > 1e-3)
    });
    assert!(differs);
}
