//! Caduceus (`CaduceusForMaskedLM`) over [`Ops`]: BiMamba blocks, optionally reverse-complement
//! equivariant (RCPS), computed as the released code computes them with `fused_add_norm`.
//!
//! With RCPS the residual stream has two halves of `d_model` channels: the sequence's own
//! (`a`) and its reverse complement's, stored channel-reversed at forward positions (`b`). Per
//! block, as the released fused path does it:
//! - residual: `r ← h + r` (the embedding alone at the first block), then — fused add-norm
//!   only — the halves swap places: `r = [r_b, r_a]`;
//! - norm: `[rms(r_a) · w, rms(r_b) · flip(w)]`;
//! - mixer: `h_a = Bi(n_a)`, `h_b = flip(Bi(flip(n_b)))`, flips over time and channels;
//! - `Bi(x) = Mf(x) ⊕ flip_t(Mr(flip_t(x)))`, `⊕` being `+` or `×`.
//!
//! Final: `[rms(h_a + r_a) · w_f, rms(h_b + r_b) · flip(w_f)]`; LM head
//! `logits = a · Wᵀ + flip(b) · W[complement]ᵀ`. Without RCPS it is a plain residual stack of
//! BiMamba blocks with a tied (or separate) LM head.

use super::mamba::MixerPath;
use super::{Consumer, LinearRole, Ops};
use crate::error::{Error, Result};
use crate::model::caduceus::{BiStrategy, CaduceusConfig, CaduceusModel};

struct BiBlock<O: Ops> {
    norm: O::Vector,
    /// The norm scale reversed, for the RC half.
    norm_flipped: O::Vector,
    fwd: MixerPath<O>,
    rev: Option<MixerPath<O>>,
}

/// A Caduceus masked LM on a device, run over whole windows (no state carried between calls).
pub struct CaduceusGraph<O: Ops> {
    ops: O,
    config: CaduceusConfig,
    embeddings: O::Linear,
    blocks: Vec<BiBlock<O>>,
    norm_f: O::Vector,
    norm_f_flipped: O::Vector,
    lm_head: O::Linear,
    /// LM head rows in complement order, for the RC half (RCPS only).
    lm_head_complement: Option<O::Linear>,
}

fn reversed(v: &[f32]) -> Vec<f32> {
    v.iter().rev().copied().collect()
}

impl<O: Ops> CaduceusGraph<O> {
    /// Prepares `model`'s weights on `ops`.
    pub fn build(ops: O, model: &CaduceusModel) -> Result<Self> {
        let c = &model.config;
        let w = &model.weights;
        let blocks = w
            .blocks
            .iter()
            .map(|b| {
                Ok(BiBlock {
                    norm: ops.prepare_vector(&b.norm)?,
                    norm_flipped: ops.prepare_vector(&reversed(&b.norm))?,
                    fwd: MixerPath::new(&ops, &b.fwd, c.d_model, c.d_inner)?,
                    rev: b
                        .rev
                        .as_ref()
                        .map(|r| MixerPath::new(&ops, r, c.d_model, c.d_inner))
                        .transpose()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lm_head_complement = if c.rcps {
            let d = c.d_model;
            let rows: Vec<f32> = c
                .complement
                .iter()
                .flat_map(|&t| {
                    w.lm_head[t as usize * d..(t as usize + 1) * d]
                        .iter()
                        .copied()
                })
                .collect();
            Some(ops.prepare_linear(&rows, c.vocab_size, None, LinearRole::Head)?)
        } else {
            None
        };
        Ok(CaduceusGraph {
            embeddings: ops.prepare_linear(&w.embeddings, c.vocab_size, None, LinearRole::Head)?,
            norm_f: ops.prepare_vector(&w.norm_f)?,
            norm_f_flipped: ops.prepare_vector(&reversed(&w.norm_f))?,
            lm_head: ops.prepare_linear(&w.lm_head, c.vocab_size, None, LinearRole::Head)?,
            lm_head_complement,
            blocks,
            config: c.clone(),
            ops,
        })
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &CaduceusConfig {
        &self.config
    }

    /// The device ops this graph runs on.
    pub fn ops(&self) -> &O {
        &self.ops
    }

    fn check(&self, tokens: &[u32], batch: usize) -> Result<()> {
        if batch == 0 || !tokens.len().is_multiple_of(batch) {
            return Err(Error::Backend(
                "batched windows must have equal lengths".into(),
            ));
        }
        match tokens
            .iter()
            .find(|&&t| t as usize >= self.config.vocab_size)
        {
            Some(t) => Err(Error::Backend(format!(
                "token id {t} is outside the vocabulary of {} tokens",
                self.config.vocab_size
            ))),
            None => Ok(()),
        }
    }

    /// `Bi(x)` for `batch` stacked sequences.
    fn bimamba(&self, block: &BiBlock<O>, x: &O::Act, batch: usize) -> Result<O::Act> {
        let ops = &self.ops;
        let mut out = block.fwd.run_fresh(ops, x, batch, false)?;
        if let Some(rev) = &block.rev {
            let back = rev.run_fresh(ops, x, batch, true)?;
            match self.config.strategy {
                BiStrategy::Add => ops.add(&mut out, &back)?,
                BiStrategy::Multiply => ops.mul(&mut out, &back)?,
            }
        }
        Ok(out)
    }

    /// `flip(Bi(flip(x)))`, flips over time and channels: the mixer of the RC half.
    fn bimamba_rc(&self, block: &BiBlock<O>, x: &O::Act, batch: usize) -> Result<O::Act> {
        let flipped = self.ops.flip(x, batch, true, true)?;
        let out = self.bimamba(block, &flipped, batch)?;
        self.ops.flip(&out, batch, true, true)
    }

    /// The final hidden states of `batch` stacked windows (`[rows, stream_width]`: RCPS models
    /// give both halves, the RC half channel-reversed at forward positions).
    pub fn hidden(&self, tokens: &[u32], batch: usize) -> Result<O::Act> {
        self.check(tokens, batch)?;
        if self.config.rcps {
            let (a, b) = self.hidden_halves(tokens, batch)?;
            self.ops.concat_halves(&a, &b)
        } else {
            self.hidden_plain(tokens, batch)
        }
    }

    fn hidden_plain(&self, tokens: &[u32], batch: usize) -> Result<O::Act> {
        let (ops, eps) = (&self.ops, self.config.norm_epsilon);
        let mut h = ops.embed(&self.embeddings, tokens)?;
        let mut residual: Option<O::Act> = None;
        for block in &self.blocks {
            let r = match residual.take() {
                None => h,
                Some(r) => {
                    ops.add(&mut h, &r)?;
                    h
                }
            };
            let normed = ops.rms_norm(&r, &block.norm, eps, Consumer::BlockProjection)?;
            h = self.bimamba(block, &normed, batch)?;
            residual = Some(r);
        }
        if let Some(r) = residual {
            ops.add(&mut h, &r)?;
        }
        ops.rms_norm(&h, &self.norm_f, eps, Consumer::Any)
    }

    fn hidden_halves(&self, tokens: &[u32], batch: usize) -> Result<(O::Act, O::Act)> {
        let (ops, eps) = (&self.ops, self.config.norm_epsilon);
        let complement: Vec<u32> = tokens
            .iter()
            .map(|&t| self.config.complement[t as usize])
            .collect();
        let mut h_a = ops.embed(&self.embeddings, tokens)?;
        let mut h_b = ops.flip(
            &ops.embed(&self.embeddings, &complement)?,
            batch,
            false,
            true,
        )?;
        let mut residual: Option<(O::Act, O::Act)> = None;
        for block in &self.blocks {
            let (r_a, r_b) = match residual.take() {
                None => (h_a, h_b),
                Some((r_a, r_b)) => {
                    ops.add(&mut h_a, &r_a)?;
                    ops.add(&mut h_b, &r_b)?;
                    (h_a, h_b)
                }
            };
            let (r_a, r_b) = if self.config.fused_add_norm {
                (r_b, r_a)
            } else {
                (r_a, r_b)
            };
            let n_a = ops.rms_norm(&r_a, &block.norm, eps, Consumer::BlockProjection)?;
            // n_b is flipped before the projections read it: it stays f32.
            let n_b = ops.rms_norm(&r_b, &block.norm_flipped, eps, Consumer::Any)?;
            h_a = self.bimamba(block, &n_a, batch)?;
            h_b = self.bimamba_rc(block, &n_b, batch)?;
            residual = Some((r_a, r_b));
        }
        if let Some((r_a, r_b)) = residual {
            ops.add(&mut h_a, &r_a)?;
            ops.add(&mut h_b, &r_b)?;
        }
        Ok((
            ops.rms_norm(&h_a, &self.norm_f, eps, Consumer::Any)?,
            ops.rms_norm(&h_b, &self.norm_f_flipped, eps, Consumer::Any)?,
        ))
    }

    /// Logits `[rows, vocab]` of `batch` stacked windows, as the released LM head computes them.
    pub fn logits(&self, tokens: &[u32], batch: usize) -> Result<O::Act> {
        self.check(tokens, batch)?;
        let ops = &self.ops;
        match &self.lm_head_complement {
            Some(head_rc) => {
                let (a, b) = self.hidden_halves(tokens, batch)?;
                let mut logits = ops.linear(&a, &self.lm_head)?;
                let b = ops.flip(&b, batch, false, true)?;
                ops.linear_add(&b, head_rc, &mut logits)?;
                Ok(logits)
            }
            None => {
                let hidden = self.hidden_plain(tokens, batch)?;
                ops.linear(&hidden, &self.lm_head)
            }
        }
    }

    /// Copies the logits of `batch` stacked windows to the host (`[rows, vocab]`).
    pub fn logits_host(&self, tokens: &[u32], batch: usize, out: &mut Vec<f32>) -> Result<()> {
        let logits = self.logits(tokens, batch)?;
        self.ops.to_host(&logits, out)
    }

    /// Copies the final hidden states of `batch` stacked windows to the host.
    pub fn hidden_host(&self, tokens: &[u32], batch: usize, out: &mut Vec<f32>) -> Result<()> {
        let hidden = self.hidden(tokens, batch)?;
        self.ops.to_host(&hidden, out)
    }
}
