//! The model graphs, written once over the backend [`Ops`].
//!
//! A graph (the causal Mamba-1 and Mamba-2 LMs in [`mamba`], the bidirectional, RC-equivariant Caduceus in
//! [`caduceus`]) says which ops run in which order; a backend (CPU, CUDA) says how each op runs.
//! A new architecture is one more graph, and every backend runs it.

pub mod caduceus;
pub mod mamba;

use crate::error::Result;
use crate::model::{LayerWeights, Mamba2LayerWeights};

/// The sizes of one Mamba-2 mixer, for [`Ops::prepare_mixer2`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mamba2Shape {
    /// Inner width, `num_heads * head_dim`.
    pub d_inner: usize,
    /// State size per head and channel.
    pub d_state: usize,
    /// Conv width.
    pub d_conv: usize,
    /// Heads.
    pub num_heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// Groups of heads sharing `B` and `C`.
    pub n_groups: usize,
    /// Channels per mean square of the gated RMSNorm (`d_inner`: one norm over the row).
    pub norm_group_size: usize,
    /// The gated RMSNorm's epsilon.
    pub eps: f32,
    /// `dt` is clamped to this interval after softplus.
    pub dt_limit: (f32, f32),
}

impl Mamba2Shape {
    /// Channels of the conv: x, B, C.
    pub fn conv_dim(&self) -> usize {
        self.d_inner + 2 * self.n_groups * self.d_state
    }

    /// Width of `in_proj`'s output: z, xBC, dt.
    pub fn in_width(&self) -> usize {
        self.d_inner + self.conv_dim() + self.num_heads
    }
}

/// The operations a device provides for the graphs.
///
/// Activations ([`Ops::Act`]) are row-major `[rows, width]` f32 matrices on the device (an
/// input that only a block projection reads may be kept at that projection's precision: see
/// [`Consumer`]); a batch of `batch` sequences of equal length is stacked sequence by
/// sequence, so ops that look along the sequence (the mixer, flips) take `batch` to know where
/// sequences end.
/// States stay f32 whatever the weights' precision.
pub trait Ops: Send + Sync {
    /// Activations `[rows, width]` on the device.
    type Act: Send;
    /// One Mamba mixer's parameters between `in_proj` and `out_proj` (conv, `x_proj`,
    /// `dt_proj`, `A`, `D`), prepared for the device.
    type Mixer: Send + Sync;
    /// One Mamba-2 mixer's parameters between `in_proj` and `out_proj` (conv, `dt_bias`, `A`,
    /// `D`, gated norm), prepared for the device.
    type Mixer2: Send + Sync;
    /// A projection `[out, in]` with its optional bias; also an embedding table.
    type Linear: Send + Sync;
    /// A per-channel vector (a norm's scale).
    type Vector: Send + Sync;
    /// The carried conv and SSM state of one mixer (Mamba-1 or Mamba-2) for a batch of
    /// sequences.
    type MixerState: Clone + Send;

    /// A short name for logs, e.g. `cpu (8 threads)`.
    fn describe(&self) -> String;
    /// With profiling on, the device time (milliseconds) spent in each stage of ops so far,
    /// longest first; `None` when the backend does not profile.
    fn profile(&self) -> Option<Vec<(&'static str, f64)>> {
        None
    }
    /// Whether the sequences of a batch are best run one by one in parallel (a CPU) rather
    /// than stacked into one pass (a GPU).
    fn runs_batches_in_parallel(&self) -> bool {
        false
    }
    /// Whether the ops run their work on the rayon thread pool (a CPU): a caller that makes
    /// many calls in a row then makes them from a pool thread, where each parallel step starts
    /// at once instead of being handed to the pool and waited for.
    fn computes_on_thread_pool(&self) -> bool {
        false
    }

    /// Prepares a mixer's parameters (`in_proj`/`out_proj` are left to [`Ops::linear`]).
    fn prepare_mixer(&self, w: &LayerWeights) -> Result<Self::Mixer>;
    /// Prepares a Mamba-2 mixer's parameters (`in_proj`/`out_proj` are left to
    /// [`Ops::linear`]).
    fn prepare_mixer2(&self, w: &Mamba2LayerWeights, shape: Mamba2Shape) -> Result<Self::Mixer2>;
    /// A zeroed Mamba-2 mixer state for `batch` sequences: conv `[d_conv - 1, conv_dim]` and
    /// SSM `[num_heads, head_dim, d_state]` per sequence.
    fn new_mixer2_state(&self, mixer: &Self::Mixer2, batch: usize) -> Result<Self::MixerState>;
    /// Prepares a projection `weight` `[out, in]` (row-major) with an optional bias `[out]`.
    fn prepare_linear(
        &self,
        weight: &[f32],
        out: usize,
        bias: Option<&[f32]>,
        role: LinearRole,
    ) -> Result<Self::Linear>;
    /// Prepares a vector.
    fn prepare_vector(&self, v: &[f32]) -> Result<Self::Vector>;
    /// A zeroed mixer state for `batch` sequences (the start of each).
    fn new_mixer_state(&self, mixer: &Self::Mixer, batch: usize) -> Result<Self::MixerState>;

    /// Rows of the embedding table `table` for `tokens`: `[tokens.len(), d]`.
    fn embed(&self, table: &Self::Linear, tokens: &[u32]) -> Result<Self::Act>;
    /// RMSNorm of every row: `x / sqrt(mean(x²) + eps) * weight`. `consumer` says what reads
    /// the result: a block projection's input may be stored at the block precision.
    fn rms_norm(
        &self,
        x: &Self::Act,
        weight: &Self::Vector,
        eps: f32,
        consumer: Consumer,
    ) -> Result<Self::Act>;
    /// `x · wᵀ (+ bias)`.
    fn linear(&self, x: &Self::Act, w: &Self::Linear) -> Result<Self::Act>;
    /// `acc += x · wᵀ (+ bias)`.
    fn linear_add(&self, x: &Self::Act, w: &Self::Linear, acc: &mut Self::Act) -> Result<()>;
    /// The Mamba mixer from `in_proj`'s output `xz` (`[rows, 2 * d_inner]`: x then z) to the
    /// gated scan output `y` (`[rows, d_inner]`): causal conv + SiLU, `x_proj`, `dt_proj`,
    /// softplus, selective scan with `D` skip, SiLU(z) gate, for the batch of sequences
    /// `state` holds (`rows` = batch × length), each carried in from `state` and left there
    /// after its last row. With `reverse`, each sequence runs from its last row to its first
    /// (the mixer of a flipped sequence, flipped back).
    fn mixer(
        &self,
        w: &Self::Mixer,
        xz: &Self::Act,
        state: &mut Self::MixerState,
        reverse: bool,
    ) -> Result<Self::Act>;
    /// The Mamba-2 mixer from `in_proj`'s output `zxbcdt` (`[rows, d_inner + conv_dim +
    /// num_heads]`: z, xBC, dt) to the gated-norm output (`[rows, d_inner]`): causal conv +
    /// SiLU over xBC, `dt = clamp(softplus(dt + dt_bias))`, the scan with per-head scalar decay
    /// `exp(dt·A)`, grouped B and C and `D` skip, then `RMSNorm(y · SiLU(z))`. Batch, state and
    /// `reverse` as [`Ops::mixer`].
    fn mixer2(
        &self,
        w: &Self::Mixer2,
        zxbcdt: &Self::Act,
        state: &mut Self::MixerState,
        reverse: bool,
    ) -> Result<Self::Act>;
    /// [`Ops::mixer2`] forward for one sequence, with state copies as
    /// [`Ops::mixer_checkpoints`].
    fn mixer2_checkpoints(
        &self,
        w: &Self::Mixer2,
        zxbcdt: &Self::Act,
        state: &mut Self::MixerState,
        at: &[usize],
    ) -> Result<(Self::Act, Vec<Self::MixerState>)>;
    /// Positions at which [`Ops::mixer_checkpoints`] can copy a state: multiples of this
    /// from a sequence's start (1 on the CPU; a GPU's scan chunk). Stripes that start at such
    /// multiples give the same results bit for bit, whatever their lengths.
    fn checkpoint_stride(&self) -> usize {
        1
    }
    /// [`Ops::mixer`] forward in time for one sequence (`state` of batch 1), also returning
    /// copies of the state as it stood before each row index in `at` (ascending, below the
    /// row count, multiples of [`Ops::checkpoint_stride`]).
    fn mixer_checkpoints(
        &self,
        w: &Self::Mixer,
        xz: &Self::Act,
        state: &mut Self::MixerState,
        at: &[usize],
    ) -> Result<(Self::Act, Vec<Self::MixerState>)>;
    /// One state for the batch of sequences whose states are `parts`, in order.
    fn stack_states(&self, parts: &[&Self::MixerState]) -> Result<Self::MixerState>;
    /// Takes back a mixer state that is no longer needed, to reuse its memory for the
    /// checkpoint copies of [`Ops::mixer_checkpoints`]. The default drops it.
    fn recycle_state(&self, state: Self::MixerState) {
        drop(state);
    }
    /// Copies each sequence's part of `stacked` back into `parts`.
    fn unstack_states(
        &self,
        stacked: &Self::MixerState,
        parts: &mut [&mut Self::MixerState],
    ) -> Result<()>;
    /// `x += y`.
    fn add(&self, x: &mut Self::Act, y: &Self::Act) -> Result<()>;
    /// `x *= y`, element by element.
    fn mul(&self, x: &mut Self::Act, y: &Self::Act) -> Result<()>;
    /// `x` with each of its `batch` sequences reversed in time (`seq`) and/or each row
    /// reversed in channels (`channels`).
    fn flip(&self, x: &Self::Act, batch: usize, seq: bool, channels: bool) -> Result<Self::Act>;
    /// Joins two equal-shaped matrices row by row: `[a | b]`.
    fn concat_halves(&self, a: &Self::Act, b: &Self::Act) -> Result<Self::Act>;
    /// Replaces every row by its log-softmax.
    fn log_softmax(&self, x: &mut Self::Act) -> Result<()>;
    /// Copies `x` to the host, row-major, replacing `out`.
    fn to_host(&self, x: &Self::Act, out: &mut Vec<f32>) -> Result<()>;
    /// From log-softmax rows `logp` (`[len, v]`) and the `len` tokens they follow: each row
    /// but the last at the next token, into `observed`, and the last row into `last_row`
    /// (see [`crate::backend::Backend::forward_observed`]). The default copies every row.
    fn observed(
        &self,
        logp: &Self::Act,
        tokens: &[u32],
        v: usize,
        observed: &mut Vec<f32>,
        last_row: &mut Vec<f32>,
    ) -> Result<()> {
        let mut rows = Vec::new();
        self.to_host(logp, &mut rows)?;
        crate::backend::pick_observed(&rows, v, tokens, observed, last_row);
        Ok(())
    }
}

/// What reads an op's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumer {
    /// Any op: the output stays f32.
    Any,
    /// Only block projections (`in_proj`), which may take it at their own precision.
    BlockProjection,
}

/// What a projection is for: a backend may store the big per-block projections at a lower
/// precision and keep the small, sensitive ones (LM head, embedding table) in f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearRole {
    /// A block's `in_proj` or `out_proj` (Mamba-1 or Mamba-2).
    Block,
    /// The LM head or the embedding table.
    Head,
}
