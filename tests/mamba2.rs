//! Mamba-2 (`Mamba2ForCausalLM`) parity with transformers' torch path (fixtures and reference
//! written by `test-data/make_mamba2_fixture.py`), and stripe invariance of the carried state.

use std::path::Path;

use ssmgen::backend::Backend;
use ssmgen::backend::cpu::CpuBackend;
use ssmgen::model::Model;

mod common;

const REFERENCE: &str = "test-data/mamba2-reference.safetensors";

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

fn load(dir: &str) -> (Model, CpuBackend) {
    let model = Model::load(Path::new(dir)).unwrap();
    assert!(model.config.mamba2.is_some(), "{dir} must load as Mamba-2");
    let backend = CpuBackend::new(&model);
    (model, backend)
}

#[test]
fn cpu_matches_transformers_mamba2() {
    let (tokens, logp) = common::read_reference(REFERENCE, &["logp", "logp_tied"]);
    assert!(tokens.len() >= 500);
    for (dir, reference) in [
        ("test-data/mamba2-fixture", &logp[0]),
        ("test-data/mamba2-fixture-tied", &logp[1]),
    ] {
        let (model, backend) = load(dir);
        let m2 = model.config.mamba2.as_ref().unwrap();
        assert!(m2.n_groups > 1 && m2.head_dim == 16 && model.config.state_size == 24);
        let ours = run_in_stripes(&backend, &tokens, tokens.len());
        let diff = max_abs_diff(&ours, reference);
        eprintln!("{dir}: max |Δ logp| = {diff:e}");
        assert!(diff <= 1e-4, "{dir}: max |Δ logp| = {diff}");
    }
}

/// The time-step clamp of the tied fixture, `(0, 0.05)`, matters: without it the outputs move
/// away from transformers' (so the parity test above can see a wrong clamp).
#[test]
fn the_time_step_clamp_is_applied() {
    let (tokens, logp) = common::read_reference(REFERENCE, &["logp_tied"]);
    let mut model = Model::load(Path::new("test-data/mamba2-fixture-tied")).unwrap();
    let m2 = model.config.mamba2.as_mut().unwrap();
    assert_eq!(m2.time_step_limit, (0.0, 0.05));
    m2.time_step_limit = (0.0, f32::INFINITY);
    let backend = CpuBackend::new(&model);
    let diff = max_abs_diff(&run_in_stripes(&backend, &tokens, 97), &logp[0]);
    assert!(diff > 1e-3, "unclamped max |Δ logp| = {diff}");
}

/// The gated norm is taken per group of heads (`n_groups` = 2 here), as transformers 5 and
/// mamba-ssm take it; one norm over the whole width would move the outputs.
#[test]
fn the_gated_norm_is_per_group() {
    let (tokens, logp) = common::read_reference(REFERENCE, &["logp"]);
    let mut model = Model::load(Path::new("test-data/mamba2-fixture")).unwrap();
    let m2 = model.config.mamba2.as_mut().unwrap();
    assert_eq!(m2.norm_group_size, 64);
    m2.norm_group_size = 128;
    let backend = CpuBackend::new(&model);
    let diff = max_abs_diff(&run_in_stripes(&backend, &tokens, 800), &logp[0]);
    assert!(diff > 1e-3, "whole-width norm: max |Δ logp| = {diff}");
}

#[test]
fn stripe_length_does_not_change_mamba2_outputs() {
    let (tokens, _) = common::read_reference(REFERENCE, &[]);
    let (_, backend) = load("test-data/mamba2-fixture");
    let whole = run_in_stripes(&backend, &tokens, tokens.len());
    for stripe in [1, 7, 1000] {
        let striped = run_in_stripes(&backend, &tokens, stripe);
        assert_eq!(whole, striped, "stripe {stripe} changed the outputs");
    }
}

/// Checkpointed runs, batches and hidden states go through the same mixer and state.
#[test]
fn checkpoints_batches_and_hidden_states_agree() {
    let (tokens, _) = common::read_reference(REFERENCE, &[]);
    let (model, backend) = load("test-data/mamba2-fixture");
    let whole = run_in_stripes(&backend, &tokens, tokens.len());
    let v = model.config.vocab_size;

    let mut state = backend.new_state().unwrap();
    let mut logp = Vec::new();
    let at = [0, 5, 300, 301];
    let snaps = backend
        .forward_checkpoints(&mut state, &tokens, &mut logp, &at)
        .unwrap();
    assert_eq!(logp, whole);
    // Resuming from the snapshot at 300 gives the rows from 300 on.
    let mut resumed = snaps[2].clone();
    backend
        .forward(&mut resumed, &tokens[300..], &mut logp)
        .unwrap();
    assert_eq!(logp, whole[300 * v..]);

    // Two sequences as one batch: each as if run alone.
    let half = tokens.len() / 2;
    let mut states = vec![backend.new_state().unwrap(), backend.new_state().unwrap()];
    let mut batched = Vec::new();
    backend
        .forward_batch(&mut states, &tokens[..2 * half], &mut batched)
        .unwrap();
    assert_eq!(batched[..half * v], whole[..half * v]);
    assert_eq!(
        batched[half * v..],
        run_in_stripes(&backend, &tokens[half..2 * half], 50)[..]
    );

    // The final hidden states projected by the LM head give the log-probabilities.
    let d = model.config.hidden_size;
    let mut state = backend.new_state().unwrap();
    let mut hidden = Vec::new();
    backend
        .forward_hidden(&mut state, &tokens, None, &mut hidden)
        .unwrap();
    assert_eq!(hidden.len(), tokens.len() * d);
    let head = &model.weights.lm_head;
    let mut worst = 0.0f64;
    for (t, h) in hidden.chunks_exact(d).enumerate() {
        let logits: Vec<f64> = (0..v)
            .map(|j| (0..d).map(|i| h[i] as f64 * head[j * d + i] as f64).sum())
            .collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + logits.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        for (logit, ours) in logits.iter().zip(&whole[t * v..(t + 1) * v]) {
            worst = worst.max((logit - lse - *ours as f64).abs());
        }
    }
    assert!(worst <= 1e-4, "max |Δ logp| via hidden states = {worst}");
    let mut layer0 = Vec::new();
    let mut state = backend.new_state().unwrap();
    backend
        .forward_hidden(&mut state, &tokens[..10], Some(0), &mut layer0)
        .unwrap();
    assert_eq!(layer0.len(), 10 * d);
}

/// A tensor of the wrong shape is refused with its name.
#[test]
fn wrong_shapes_name_the_tensor() {
    let dir = Path::new("test-data/mamba2-fixture");
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    // One more head than the checkpoint has: the per-head tensors no longer fit.
    let wrong = config
        .replace("\"num_heads\": 8", "\"num_heads\": 16")
        .replace("\"head_dim\": 16", "\"head_dim\": 8");
    let err = Model::from_bytes("m2", &wrong, &weights).unwrap_err();
    assert!(
        err.to_string()
            .contains("backbone.layers.0.mixer.in_proj.weight"),
        "{err}"
    );
    let wrong = config.replace("\"state_size\": 24", "\"state_size\": 16");
    let err = Model::from_bytes("m2", &wrong, &weights).unwrap_err();
    assert!(err.to_string().contains("in_proj.weight"), "{err}");
    let wrong = config.replace("\"num_hidden_layers\": 3", "\"num_hidden_layers\": 4");
    let err = Model::from_bytes("m2", &wrong, &weights).unwrap_err();
    assert!(
        err.to_string()
            .contains("'backbone.layers.3.norm.weight' is missing"),
        "{err}"
    );
}

/// The reverse mixer (what a bidirectional model's reverse direction runs) is the forward mixer
/// of the time-flipped rows, flipped back, for each sequence of a batch.
#[test]
fn reverse_mixer_is_the_flipped_forward_mixer() {
    use ssmgen::backend::cpu::{CpuAct, CpuOps};
    use ssmgen::graph::{Mamba2Shape, Ops};
    let model = Model::load(Path::new("test-data/mamba2-fixture")).unwrap();
    let (c, m2) = (&model.config, model.config.mamba2.as_ref().unwrap());
    let shape = Mamba2Shape {
        d_inner: c.intermediate_size,
        d_state: c.state_size,
        d_conv: c.conv_kernel,
        num_heads: m2.num_heads,
        head_dim: m2.head_dim,
        n_groups: m2.n_groups,
        norm_group_size: m2.norm_group_size,
        eps: c.layer_norm_epsilon,
        dt_limit: m2.time_step_limit,
    };
    let ops = CpuOps;
    let mixer = ops
        .prepare_mixer2(&model.weights.mamba2_layers[1], shape)
        .unwrap();
    let (len, width) = (37, shape.in_width());
    // Deterministic inputs in [-1.5, 1.5].
    let data: Vec<f32> = (0..2 * len * width)
        .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 3.0)
        .collect();
    let xz = CpuAct { data, width };
    let mut state = ops.new_mixer2_state(&mixer, 2).unwrap();
    let reversed = ops.mixer2(&mixer, &xz, &mut state, true).unwrap();
    let flipped = ops.flip(&xz, 2, true, false).unwrap();
    let mut fresh = ops.new_mixer2_state(&mixer, 2).unwrap();
    let forward = ops.mixer2(&mixer, &flipped, &mut fresh, false).unwrap();
    let back = ops.flip(&forward, 2, true, false).unwrap();
    assert_eq!(reversed, back);
    assert_eq!(
        state, fresh,
        "the reverse pass leaves the state after the first row"
    );
    assert_ne!(
        reversed,
        ops.mixer2(
            &mixer,
            &xz,
            &mut ops.new_mixer2_state(&mixer, 2).unwrap(),
            false
        )
        .unwrap()
    );
}
