//! The causal Mamba language models (`MambaForCausalLM`, `Mamba2ForCausalLM`) over [`Ops`]:
//! embedding, blocks of RMSNorm → `in_proj` → mixer (Mamba-1 or Mamba-2) → `out_proj` added
//! into the residual stream, final norm, LM head.
//!
//! It is a [`Backend`]: the stripe driver carries its per-layer mixer states across stripes.

use rayon::prelude::*;

use super::{Consumer, LinearRole, Mamba2Shape, Ops};
use crate::backend::{Backend, batch_len, check_checkpoints, check_layer, check_tokens};
use crate::error::Result;
use crate::model::{LayerWeights, Mamba2LayerWeights, MambaConfig, Model};

/// One Mamba mixer with its projections: `in_proj` → mixer → `out_proj`.
pub struct MixerPath<O: Ops> {
    /// `in_proj` (with its bias, if any).
    pub in_proj: O::Linear,
    /// Conv, scan and gate.
    pub mixer: O::Mixer,
    /// `out_proj` (with its bias, if any).
    pub out_proj: O::Linear,
}

impl<O: Ops> MixerPath<O> {
    /// Prepares a mixer and its projections on `ops`.
    pub fn new(ops: &O, w: &LayerWeights, d_model: usize, d_inner: usize) -> Result<Self> {
        Ok(MixerPath {
            in_proj: ops.prepare_linear(
                &w.in_proj,
                2 * d_inner,
                w.in_proj_bias.as_deref(),
                LinearRole::Block,
            )?,
            mixer: ops.prepare_mixer(w)?,
            out_proj: ops.prepare_linear(
                &w.out_proj,
                d_model,
                w.out_proj_bias.as_deref(),
                LinearRole::Block,
            )?,
        })
    }

    /// `out_proj(mixer(in_proj(x)))` from fresh states for `batch` stacked sequences
    /// (`reverse`: each sequence scanned from its end).
    pub fn run_fresh(&self, ops: &O, x: &O::Act, batch: usize, reverse: bool) -> Result<O::Act> {
        let mut state = ops.new_mixer_state(&self.mixer, batch)?;
        let xz = ops.linear(x, &self.in_proj)?;
        let y = ops.mixer(&self.mixer, &xz, &mut state, reverse)?;
        ops.linear(&y, &self.out_proj)
    }
}

/// One Mamba-2 mixer with its projections: `in_proj` → mixer (ending in the gated norm) →
/// `out_proj`.
pub struct Mixer2Path<O: Ops> {
    /// `in_proj` (with its bias, if any): z, xBC, dt.
    pub in_proj: O::Linear,
    /// Conv, scan, gated norm.
    pub mixer: O::Mixer2,
    /// `out_proj` (with its bias, if any).
    pub out_proj: O::Linear,
}

impl<O: Ops> Mixer2Path<O> {
    /// Prepares a Mamba-2 mixer of `shape` and its projections on `ops`.
    pub fn new(
        ops: &O,
        w: &Mamba2LayerWeights,
        d_model: usize,
        shape: Mamba2Shape,
    ) -> Result<Self> {
        Ok(Mixer2Path {
            in_proj: ops.prepare_linear(
                &w.in_proj,
                shape.in_width(),
                w.in_proj_bias.as_deref(),
                LinearRole::Block,
            )?,
            mixer: ops.prepare_mixer2(w, shape)?,
            out_proj: ops.prepare_linear(
                &w.out_proj,
                d_model,
                w.out_proj_bias.as_deref(),
                LinearRole::Block,
            )?,
        })
    }
}

/// Per checkpoint, the state of every layer there.
type Snapshots<O> = Vec<Vec<<O as Ops>::MixerState>>;

/// A block's mixer: Mamba-1 or Mamba-2.
enum BlockPath<O: Ops> {
    Mamba1(MixerPath<O>),
    Mamba2(Mixer2Path<O>),
}

struct Block<O: Ops> {
    norm: O::Vector,
    path: BlockPath<O>,
}

impl<O: Ops> Block<O> {
    fn in_proj(&self) -> &O::Linear {
        match &self.path {
            BlockPath::Mamba1(p) => &p.in_proj,
            BlockPath::Mamba2(p) => &p.in_proj,
        }
    }

    fn out_proj(&self) -> &O::Linear {
        match &self.path {
            BlockPath::Mamba1(p) => &p.out_proj,
            BlockPath::Mamba2(p) => &p.out_proj,
        }
    }

    /// The mixer over `xz` from and to `state`, with checkpoint copies when `at` is not empty.
    fn mix(
        &self,
        ops: &O,
        xz: &O::Act,
        state: &mut O::MixerState,
        at: &[usize],
    ) -> Result<(O::Act, Vec<O::MixerState>)> {
        match (&self.path, at.is_empty()) {
            (BlockPath::Mamba1(p), true) => Ok((ops.mixer(&p.mixer, xz, state, false)?, vec![])),
            (BlockPath::Mamba1(p), false) => ops.mixer_checkpoints(&p.mixer, xz, state, at),
            (BlockPath::Mamba2(p), true) => Ok((ops.mixer2(&p.mixer, xz, state, false)?, vec![])),
            (BlockPath::Mamba2(p), false) => ops.mixer2_checkpoints(&p.mixer, xz, state, at),
        }
    }

    fn new_state(&self, ops: &O, batch: usize) -> Result<O::MixerState> {
        match &self.path {
            BlockPath::Mamba1(p) => ops.new_mixer_state(&p.mixer, batch),
            BlockPath::Mamba2(p) => ops.new_mixer2_state(&p.mixer, batch),
        }
    }
}

/// A causal Mamba LM on a device.
pub struct MambaGraph<O: Ops> {
    ops: O,
    config: MambaConfig,
    embeddings: O::Linear,
    blocks: Vec<Block<O>>,
    norm_f: O::Vector,
    lm_head: O::Linear,
}

impl<O: Ops> MambaGraph<O> {
    /// Prepares `model`'s weights on `ops`.
    pub fn build(ops: O, model: &Model) -> Result<Self> {
        let c = &model.config;
        let w = &model.weights;
        let mut blocks = w
            .layers
            .iter()
            .map(|l| {
                Ok(Block {
                    norm: ops.prepare_vector(&l.norm)?,
                    path: BlockPath::Mamba1(MixerPath::new(
                        &ops,
                        l,
                        c.hidden_size,
                        c.intermediate_size,
                    )?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(m2) = &c.mamba2 {
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
            for l in &w.mamba2_layers {
                blocks.push(Block {
                    norm: ops.prepare_vector(&l.norm)?,
                    path: BlockPath::Mamba2(Mixer2Path::new(&ops, l, c.hidden_size, shape)?),
                });
            }
        }
        Ok(MambaGraph {
            embeddings: ops.prepare_linear(&w.embeddings, c.vocab_size, None, LinearRole::Head)?,
            norm_f: ops.prepare_vector(&w.norm_f)?,
            lm_head: ops.prepare_linear(&w.lm_head, c.vocab_size, None, LinearRole::Head)?,
            blocks,
            config: c.clone(),
            ops,
        })
    }

    /// The device ops this graph runs on.
    pub fn ops(&self) -> &O {
        &self.ops
    }

    /// Runs the blocks over `tokens` (`batch` stacked sequences) from `states` (one per
    /// layer, each holding the batch), stopping after block `stop_after` (all when `None`):
    /// the residual stream `[rows, d_model]`. With checkpoints `at` (batch 1), also the
    /// states before those token indices: `snapshots[j][layer]`.
    fn run_blocks(
        &self,
        states: &mut [O::MixerState],
        tokens: &[u32],
        stop_after: Option<usize>,
        at: &[usize],
    ) -> Result<(O::Act, Snapshots<O>)> {
        let ops = &self.ops;
        let eps = self.config.layer_norm_epsilon;
        let mut hidden = ops.embed(&self.embeddings, tokens)?;
        let mut snapshots: Snapshots<O> = at.iter().map(|_| Vec::new()).collect();
        let last = stop_after.unwrap_or(self.blocks.len() - 1);
        for (block, st) in self.blocks.iter().zip(states.iter_mut()).take(last + 1) {
            let normed = ops.rms_norm(&hidden, &block.norm, eps, Consumer::BlockProjection)?;
            let xz = ops.linear(&normed, block.in_proj())?;
            drop(normed);
            let (y, copies) = block.mix(ops, &xz, st, at)?;
            for (snap, copy) in snapshots.iter_mut().zip(copies) {
                snap.push(copy);
            }
            drop(xz);
            ops.linear_add(&y, block.out_proj(), &mut hidden)?;
        }
        Ok((hidden, snapshots))
    }

    /// Log-softmax rows of `batch` stacked sequences from per-layer `states` (each holding the
    /// batch), into `logp`; snapshots as [`MambaGraph::run_blocks`].
    fn logp_rows(
        &self,
        states: &mut [O::MixerState],
        tokens: &[u32],
        at: &[usize],
        logp: &mut Vec<f32>,
    ) -> Result<Snapshots<O>> {
        let (logits, snapshots) = self.logp_device(states, tokens, at)?;
        self.ops.to_host(&logits, logp)?;
        Ok(snapshots)
    }

    /// The log-softmax rows on the device; snapshots as [`MambaGraph::run_blocks`].
    fn logp_device(
        &self,
        states: &mut [O::MixerState],
        tokens: &[u32],
        at: &[usize],
    ) -> Result<(O::Act, Snapshots<O>)> {
        let ops = &self.ops;
        let (hidden, snapshots) = self.run_blocks(states, tokens, None, at)?;
        let normed = ops.rms_norm(
            &hidden,
            &self.norm_f,
            self.config.layer_norm_epsilon,
            Consumer::Any,
        )?;
        drop(hidden);
        let mut logits = ops.linear(&normed, &self.lm_head)?;
        ops.log_softmax(&mut logits)?;
        Ok((logits, snapshots))
    }
}

impl<O: Ops> Backend for MambaGraph<O>
where
    O::MixerState: Sync,
{
    type State = Vec<O::MixerState>;

    fn describe(&self) -> String {
        self.ops.describe()
    }

    fn config(&self) -> &MambaConfig {
        &self.config
    }

    fn computes_on_thread_pool(&self) -> bool {
        self.ops.computes_on_thread_pool()
    }

    fn new_state(&self) -> Result<Self::State> {
        self.blocks
            .iter()
            .map(|b| b.new_state(&self.ops, 1))
            .collect()
    }

    fn forward(&self, state: &mut Self::State, tokens: &[u32], logp: &mut Vec<f32>) -> Result<()> {
        check_tokens(&self.config, tokens)?;
        if tokens.is_empty() {
            logp.clear();
            return Ok(());
        }
        self.logp_rows(state, tokens, &[], logp)?;
        Ok(())
    }

    fn forward_observed(
        &self,
        state: &mut Self::State,
        tokens: &[u32],
        observed: &mut Vec<f32>,
        last_row: &mut Vec<f32>,
    ) -> Result<()> {
        check_tokens(&self.config, tokens)?;
        if tokens.is_empty() {
            observed.clear();
            last_row.clear();
            return Ok(());
        }
        let (logp, _) = self.logp_device(state, tokens, &[])?;
        self.ops
            .observed(&logp, tokens, self.config.vocab_size, observed, last_row)
    }

    fn checkpoint_stride(&self) -> usize {
        self.ops.checkpoint_stride()
    }

    fn recycle(&self, state: Self::State) {
        for layer in state {
            self.ops.recycle_state(layer);
        }
    }

    fn forward_checkpoints(
        &self,
        state: &mut Self::State,
        tokens: &[u32],
        logp: &mut Vec<f32>,
        at: &[usize],
    ) -> Result<Vec<Self::State>> {
        check_tokens(&self.config, tokens)?;
        check_checkpoints(at, tokens.len(), self.ops.checkpoint_stride())?;
        if tokens.is_empty() {
            logp.clear();
            return Ok(Vec::new());
        }
        self.logp_rows(state, tokens, at, logp)
    }

    /// On a device that runs batches in parallel (the CPU), one rayon task per sequence:
    /// short sequences leave the per-op parallelism inside one pass with too little work.
    /// Elsewhere (a GPU) the sequences run stacked as one batch.
    fn forward_batch(
        &self,
        states: &mut [Self::State],
        tokens: &[u32],
        logp: &mut Vec<f32>,
    ) -> Result<()> {
        logp.clear();
        let Some(len) = batch_len(states.len(), tokens.len())? else {
            return Ok(());
        };
        if !self.ops.runs_batches_in_parallel() {
            check_tokens(&self.config, tokens)?;
            let mut stacked = (0..self.blocks.len())
                .map(|i| {
                    let parts: Vec<&O::MixerState> = states.iter().map(|s| &s[i]).collect();
                    self.ops.stack_states(&parts)
                })
                .collect::<Result<Vec<_>>>()?;
            self.logp_rows(&mut stacked, tokens, &[], logp)?;
            for (i, layer) in stacked.iter().enumerate() {
                let mut parts: Vec<&mut O::MixerState> =
                    states.iter_mut().map(|s| &mut s[i]).collect();
                self.ops.unstack_states(layer, &mut parts)?;
            }
            return Ok(());
        }
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

    /// On a device that runs batches in parallel (the CPU), one rayon task per continuation
    /// from its own copy of its start, as [`Backend::forward_batch`] runs them. Elsewhere (a
    /// GPU) the starts are gathered into one stacked state on the device (no copy of each, and
    /// nothing scattered back: the states after the continuations are not needed), the batch
    /// runs as one pass, and only the observed tokens' values come back to the host.
    fn forward_continuations(
        &self,
        starts: &[&Self::State],
        tokens: &[u32],
        observed: &mut Vec<f32>,
    ) -> Result<()> {
        observed.clear();
        let Some(len) = batch_len(starts.len(), tokens.len())? else {
            return Ok(());
        };
        check_tokens(&self.config, tokens)?;
        let v = self.config.vocab_size;
        if self.ops.runs_batches_in_parallel() {
            let picked: Vec<Result<Vec<f32>>> = starts
                .par_iter()
                .zip(tokens.par_chunks(len))
                .map(|(start, seq)| {
                    let (mut state, mut rows, mut out) = ((*start).clone(), Vec::new(), Vec::new());
                    self.forward(&mut state, seq, &mut rows)?;
                    crate::backend::pick_continuations(&rows, v, seq, len, &mut out);
                    Ok(out)
                })
                .collect();
            for p in picked {
                observed.extend_from_slice(&p?);
            }
            return Ok(());
        }
        let mut stacked = (0..self.blocks.len())
            .map(|i| {
                let parts: Vec<&O::MixerState> = starts.iter().map(|s| &s[i]).collect();
                self.ops.stack_states(&parts)
            })
            .collect::<Result<Vec<_>>>()?;
        let (logp, _) = self.logp_device(&mut stacked, tokens, &[])?;
        drop(stacked);
        let (mut flat, mut last) = (Vec::new(), Vec::new());
        // Row r at token r + 1 over the whole stack; the values that cross from one sequence
        // into the next are left out below.
        self.ops.observed(&logp, tokens, v, &mut flat, &mut last)?;
        observed.reserve(starts.len() * (len - 1));
        for b in 0..starts.len() {
            observed.extend_from_slice(&flat[b * len..b * len + len - 1]);
        }
        Ok(())
    }

    fn forward_hidden(
        &self,
        state: &mut Self::State,
        tokens: &[u32],
        layer: Option<usize>,
        hidden: &mut Vec<f32>,
    ) -> Result<()> {
        check_tokens(&self.config, tokens)?;
        check_layer(&self.config, layer)?;
        if tokens.is_empty() {
            hidden.clear();
            return Ok(());
        }
        let (out, _) = self.run_blocks(state, tokens, layer, &[])?;
        match layer {
            Some(_) => self.ops.to_host(&out, hidden),
            None => {
                let normed = self.ops.rms_norm(
                    &out,
                    &self.norm_f,
                    self.config.layer_norm_epsilon,
                    Consumer::Any,
                )?;
                self.ops.to_host(&normed, hidden)
            }
        }
    }
}
