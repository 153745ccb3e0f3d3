//! Parity with an independent implementation: transformers' `MambaForCausalLM`
//! (fixture written by `test-data/make_fixtures.py`, reference computed in float64).

use std::path::Path;

use ssmgen::backend::Backend;
use ssmgen::backend::cpu::CpuBackend;
use ssmgen::model::Model;

mod common;
use common::reference;

fn run_in_stripes(backend: &CpuBackend, tokens: &[u32], stripe: usize) -> Vec<f32> {
    let mut state = backend.new_state().unwrap();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for chunk in tokens.chunks(stripe) {
        backend.forward(&mut state, chunk, &mut buf).unwrap();
        out.extend_from_slice(&buf);
    }
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn cpu_matches_transformers_f32() {
    let r = reference();
    assert!(r.tokens.len() >= 2000);
    let model = Model::load(Path::new("test-data/fixture-model")).unwrap();
    let backend = CpuBackend::new(&model);
    let ours = run_in_stripes(&backend, &r.tokens, r.tokens.len());
    let diff = max_abs_diff(&ours, &r.logp_f32);
    eprintln!("f32 fixture: max |Δ logp| = {diff:e}");
    assert!(diff <= 1e-4, "max |Δ logp| = {diff}");
}

#[test]
fn cpu_matches_transformers_bf16_weights_tied_head() {
    let r = reference();
    let model = Model::load(Path::new("test-data/fixture-model-bf16")).unwrap();
    assert_eq!(model.weights.dtype.to_string(), "bf16");
    let backend = CpuBackend::new(&model);
    let ours = run_in_stripes(&backend, &r.tokens, 4096);
    let diff = max_abs_diff(&ours, &r.logp_bf16);
    eprintln!("bf16 fixture: max |Δ logp| = {diff:e}");
    assert!(diff <= 1e-4, "max |Δ logp| = {diff}");
}

#[test]
fn stripe_length_does_not_change_outputs() {
    let r = reference();
    let model = Model::load(Path::new("test-data/fixture-model")).unwrap();
    let backend = CpuBackend::new(&model);
    let whole = run_in_stripes(&backend, &r.tokens, r.tokens.len());
    for stripe in [1, 7, 1000] {
        let striped = run_in_stripes(&backend, &r.tokens, stripe);
        let diff = max_abs_diff(&whole, &striped);
        assert!(diff <= 1e-5, "stripe {stripe}: max |Δ| = {diff}");
    }
}
