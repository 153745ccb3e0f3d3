//! The CPU backend: the Mamba-1 forward pass on the host, parallel with rayon.

pub mod ops;
mod simd;

use ops::ScanInputs;

use super::{Backend, batch_len, check_layer, check_tokens};
use crate::error::Result;
use crate::model::{MambaConfig, Model, ModelWeights};
use rayon::prelude::*;

/// Carried state of one sequence on the CPU.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuState {
    /// Per layer: the last `d_conv - 1` conv inputs, `[d_conv - 1, d_inner]`, oldest first.
    pub conv: Vec<Vec<f32>>,
    /// Per layer: the SSM state, `[d_inner, d_state]`.
    pub ssm: Vec<Vec<f32>>,
}

/// Runs a model on the CPU.
pub struct CpuBackend {
    config: MambaConfig,
    weights: std::sync::Arc<ModelWeights>,
    /// Per layer `A = -exp(A_log)` transposed to `[d_state, d_inner]`, computed once.
    a_t: Vec<Vec<f32>>,
    /// Per layer conv kernel transposed to `[d_conv, d_inner]`.
    conv_t: Vec<Vec<f32>>,
}

impl CpuBackend {
    /// Prepares `model` for the CPU: the f32 host weights are shared with `model`, not copied.
    pub fn new(model: &Model) -> Self {
        let (e, k, n) = (
            model.config.intermediate_size,
            model.config.conv_kernel,
            model.config.state_size,
        );
        let a_t = model
            .weights
            .layers
            .iter()
            .map(|l| {
                (0..n * e)
                    .map(|i| -l.a_log[(i % e) * n + i / e].exp())
                    .collect()
            })
            .collect();
        let conv_t = model
            .weights
            .layers
            .iter()
            .map(|l| {
                (0..k * e)
                    .map(|i| l.conv_weight[(i % e) * k + i / e])
                    .collect()
            })
            .collect();
        CpuBackend {
            config: model.config.clone(),
            weights: std::sync::Arc::clone(&model.weights),
            a_t,
            conv_t,
        }
    }

    /// Runs the blocks over `tokens` from `state`, stopping after block `stop_after` (all when
    /// `None`), and returns the residual stream `[len, d_model]`.
    fn run_blocks(
        &self,
        state: &mut CpuState,
        tokens: &[u32],
        stop_after: Option<usize>,
    ) -> Vec<f32> {
        let c = &self.config;
        let (d, e, r) = (c.hidden_size, c.intermediate_size, c.time_step_rank);
        let len = tokens.len();
        let xw = c.x_proj_width();

        let mut hidden = Vec::with_capacity(len * d);
        for &t in tokens {
            let t = t as usize;
            hidden.extend_from_slice(&self.weights.embeddings[t * d..(t + 1) * d]);
        }
        let mut normed = vec![0.0; len * d];
        let mut xz = vec![0.0; len * 2 * e];
        let mut u = vec![0.0; len * e];
        let mut x_dbl = vec![0.0; len * xw];
        let mut delta = vec![0.0; len * e];
        let mut y = vec![0.0; len * e];
        let mut y_rows = vec![0.0; len * e];

        let last = stop_after.unwrap_or(c.num_hidden_layers - 1);
        for (i, w) in self.weights.layers.iter().enumerate().take(last + 1) {
            ops::rms_norm(&hidden, &w.norm, c.layer_norm_epsilon, &mut normed);
            ops::matmul_wt(len, 2 * e, d, &normed, d, &w.in_proj, &mut xz, 2 * e, false);
            if let Some(b) = &w.in_proj_bias {
                ops::add_bias(&mut xz, 2 * e, b);
            }
            ops::causal_conv_silu(
                &xz,
                2 * e,
                len,
                &mut state.conv[i],
                &self.conv_t[i],
                w.conv_bias.as_deref(),
                &mut u,
            );
            ops::matmul_wt(len, xw, e, &u, e, &w.x_proj, &mut x_dbl, xw, false);
            ops::matmul_wt(len, e, r, &x_dbl, xw, &w.dt_proj, &mut delta, e, false);
            ops::softplus_bias_rows(&mut delta, &w.dt_bias);
            let inputs = ScanInputs {
                u: &u,
                delta: &delta,
                z: &xz[e..],
                z_stride: 2 * e,
                bc: &x_dbl,
                bc_stride: xw,
                b_offset: r,
                d: &w.d,
            };
            ops::selective_scan(&inputs, &self.a_t[i], len, &mut state.ssm[i], &mut y);
            // The scan writes y channel-major; out_proj reads it row-major and adds into the residual.
            ops::transpose(&y, e, len, &mut y_rows);
            ops::matmul_wt(len, d, e, &y_rows, e, &w.out_proj, &mut hidden, d, true);
            if let Some(b) = &w.out_proj_bias {
                ops::add_bias(&mut hidden, d, b);
            }
        }
        hidden
    }
}

impl Backend for CpuBackend {
    type State = CpuState;

    fn describe(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn config(&self) -> &MambaConfig {
        &self.config
    }

    fn new_state(&self) -> Result<CpuState> {
        let c = &self.config;
        let layers = c.num_hidden_layers;
        Ok(CpuState {
            conv: vec![vec![0.0; (c.conv_kernel - 1) * c.intermediate_size]; layers],
            ssm: vec![vec![0.0; c.intermediate_size * c.state_size]; layers],
        })
    }

    fn forward(&self, state: &mut CpuState, tokens: &[u32], logp: &mut Vec<f32>) -> Result<()> {
        check_tokens(&self.config, tokens)?;
        let (d, v) = (self.config.hidden_size, self.config.vocab_size);
        let hidden = self.run_blocks(state, tokens, None);
        let mut normed = vec![0.0; hidden.len()];
        ops::rms_norm(
            &hidden,
            &self.weights.norm_f,
            self.config.layer_norm_epsilon,
            &mut normed,
        );
        logp.clear();
        logp.resize(tokens.len() * v, 0.0);
        ops::matmul_wt(
            tokens.len(),
            v,
            d,
            &normed,
            d,
            &self.weights.lm_head,
            logp,
            v,
            false,
        );
        ops::log_softmax_rows(logp, v);
        Ok(())
    }

    /// Runs the sequences in parallel, one per rayon task: short sequences leave the per-op
    /// parallelism inside one forward pass with too little work to share.
    fn forward_batch(
        &self,
        states: &mut [CpuState],
        tokens: &[u32],
        logp: &mut Vec<f32>,
    ) -> Result<()> {
        logp.clear();
        let Some(len) = batch_len(states.len(), tokens.len())? else {
            return Ok(());
        };
        let rows: Vec<Result<Vec<f32>>> = states
            .par_iter_mut()
            .zip(tokens.par_chunks(len))
            .map(|(state, seq)| {
                let mut rows = Vec::new();
                self.forward(state, seq, &mut rows).map(|()| rows)
            })
            .collect();
        for r in rows {
            logp.extend_from_slice(&r?);
        }
        Ok(())
    }

    fn forward_hidden(
        &self,
        state: &mut CpuState,
        tokens: &[u32],
        layer: Option<usize>,
        hidden: &mut Vec<f32>,
    ) -> Result<()> {
        check_tokens(&self.config, tokens)?;
        check_layer(&self.config, layer)?;
        let out = self.run_blocks(state, tokens, layer);
        match layer {
            Some(_) => *hidden = out,
            None => {
                hidden.clear();
                hidden.resize(out.len(), 0.0);
                ops::rms_norm(
                    &out,
                    &self.weights.norm_f,
                    self.config.layer_norm_epsilon,
                    hidden,
                );
            }
        }
        Ok(())
    }
}
