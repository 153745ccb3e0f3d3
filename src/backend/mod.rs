//! The compute backends: one trait, one implementation per device.
//!
//! The stripe runner, the formats and the scoring code see only [`Backend`]; nothing outside
//! this module knows which device does the arithmetic.

pub mod cpu;
pub mod cuda;
pub mod device;

pub use device::Device;

use crate::error::{Error, Result};
use crate::model::MambaConfig;

/// A device that runs a Mamba model over a stripe of tokens, carrying state between calls.
///
/// Calling [`Backend::forward`] on consecutive stripes of a sequence with the same state gives
/// the same outputs as one call on the whole sequence.
pub trait Backend: Send + Sync {
    /// Per-sequence recurrent state: every layer's conv and SSM state, always f32.
    type State: Clone + Send;

    /// A short name for logs, e.g. `cpu (8 threads)`.
    fn describe(&self) -> String;

    /// The model's hyperparameters.
    fn config(&self) -> &MambaConfig;

    /// Whether the backend computes on the rayon thread pool (the CPU): a loop of many calls
    /// is best run on a pool thread (see [`crate::graph::Ops::computes_on_thread_pool`]).
    fn computes_on_thread_pool(&self) -> bool {
        false
    }

    /// A zeroed state: the start of a sequence.
    fn new_state(&self) -> Result<Self::State>;

    /// Runs `tokens` from `state`, leaves the state after the last token in `state`, and writes
    /// the log-softmax of the next-token prediction after every token to `logp`
    /// (`tokens.len() * vocab_size` values, row-major).
    fn forward(&self, state: &mut Self::State, tokens: &[u32], logp: &mut Vec<f32>) -> Result<()>;

    /// Runs `states.len()` independent sequences of equal length, stacked in `tokens`
    /// (sequence `b` is `tokens[b * len..(b + 1) * len]`), each from its own state, and writes
    /// their log-softmax rows in the same order, leaving each state after its sequence (so long
    /// sequences can run as a batch stripe by stripe). The default runs them one by one; a GPU
    /// runs them as one batch.
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
        let mut rows = Vec::new();
        for (state, seq) in states.iter_mut().zip(tokens.chunks(len)) {
            self.forward(state, seq, &mut rows)?;
            logp.extend_from_slice(&rows);
        }
        Ok(())
    }

    /// Runs `starts.len()` continuations of equal length stacked in `tokens` (sequence `b` is
    /// `tokens[b * len..(b + 1) * len]`), each from a copy of `*starts[b]` (the starts are left
    /// as they are, and several sequences may start from the same state), and writes to
    /// `observed`, sequence by sequence, the log-probability of every token but the first given
    /// the ones before it (`len - 1` values per sequence): bit for bit the values of
    /// [`Backend::forward_batch`]'s rows. The default copies the states and runs
    /// `forward_batch`; a GPU gathers the states into one batch on the device and copies back
    /// only these values.
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
        let mut states: Vec<Self::State> = starts.iter().map(|s| (*s).clone()).collect();
        let mut rows = Vec::new();
        self.forward_batch(&mut states, tokens, &mut rows)?;
        pick_continuations(&rows, self.config().vocab_size, tokens, len, observed);
        Ok(())
    }

    /// Hands back a state that is no longer needed (a checkpoint's snapshot once its
    /// continuations ran), so that the backend may reuse its memory for later checkpoints
    /// instead of freeing it. The default drops it.
    fn recycle(&self, state: Self::State) {
        drop(state);
    }

    /// Stripes that start at multiples of this many tokens from a sequence's start give the
    /// same results bit for bit, whatever their lengths and batching; it is also the spacing
    /// of the positions [`Backend::forward_checkpoints`] can copy the state at. 1 on the CPU,
    /// whose results never depend on stripes; a GPU's scan chunk.
    fn checkpoint_stride(&self) -> usize {
        1
    }

    /// Like [`Backend::forward`], and also returns copies of the state as it stood before each
    /// token index in `at` (strictly ascending, below `tokens.len()`, multiples of
    /// [`Backend::checkpoint_stride`]). The default splits the stripe at those indices.
    fn forward_checkpoints(
        &self,
        state: &mut Self::State,
        tokens: &[u32],
        logp: &mut Vec<f32>,
        at: &[usize],
    ) -> Result<Vec<Self::State>> {
        check_checkpoints(at, tokens.len(), self.checkpoint_stride())?;
        logp.clear();
        let mut snapshots = Vec::with_capacity(at.len());
        let mut rows = Vec::new();
        let mut from = 0;
        for &to in at.iter().chain(std::iter::once(&tokens.len())) {
            if to > from {
                self.forward(state, &tokens[from..to], &mut rows)?;
                logp.extend_from_slice(&rows);
            }
            if to < tokens.len() {
                snapshots.push(state.clone());
            }
            from = to;
        }
        Ok(snapshots)
    }

    /// Like [`Backend::forward`], but returns only what scoring the observed bases needs: in
    /// `observed`, for every token but the last, the log-probability of the token after it
    /// (`tokens.len() - 1` values), and in `last_row` the whole log-softmax row after the last
    /// token (the prediction for what comes next). Bit for bit the values `forward` gives; a
    /// GPU picks them out on the device instead of copying every row back.
    fn forward_observed(
        &self,
        state: &mut Self::State,
        tokens: &[u32],
        observed: &mut Vec<f32>,
        last_row: &mut Vec<f32>,
    ) -> Result<()> {
        let mut rows = Vec::new();
        self.forward(state, tokens, &mut rows)?;
        pick_observed(&rows, self.config().vocab_size, tokens, observed, last_row);
        Ok(())
    }

    /// Like [`Backend::forward`] but writes hidden states instead of log-probabilities:
    /// after block `layer` (0-based) when given, else after the final norm
    /// (`tokens.len() * hidden_size` values, row-major).
    fn forward_hidden(
        &self,
        state: &mut Self::State,
        tokens: &[u32],
        layer: Option<usize>,
        hidden: &mut Vec<f32>,
    ) -> Result<()>;
}

/// From log-softmax `rows` (`[tokens.len(), v]`): row `i`'s value at `tokens[i + 1]` for every
/// row but the last, into `observed`, and the last row into `last_row`.
pub fn pick_observed(
    rows: &[f32],
    v: usize,
    tokens: &[u32],
    observed: &mut Vec<f32>,
    last_row: &mut Vec<f32>,
) {
    observed.clear();
    last_row.clear();
    if tokens.is_empty() {
        return;
    }
    observed.extend(
        tokens[1..]
            .iter()
            .enumerate()
            .map(|(i, &t)| rows[i * v + t as usize]),
    );
    let last = (tokens.len() - 1) * v;
    last_row.extend_from_slice(&rows[last..last + v]);
}

/// From log-softmax `rows` (`[tokens.len(), v]`) of sequences of `len` tokens stacked in
/// `tokens`: for each sequence, row `i`'s value at its token `i + 1` (`len - 1` values per
/// sequence), appended to `observed`.
pub fn pick_continuations(
    rows: &[f32],
    v: usize,
    tokens: &[u32],
    len: usize,
    observed: &mut Vec<f32>,
) {
    if len == 0 {
        return;
    }
    observed.reserve(tokens.len() / len * (len - 1));
    for (b, seq) in tokens.chunks(len).enumerate() {
        observed.extend(
            seq[1..]
                .iter()
                .enumerate()
                .map(|(i, &t)| rows[(b * len + i) * v + t as usize]),
        );
    }
}

/// Checks that every token id is inside the model's vocabulary.
pub fn check_tokens(config: &MambaConfig, tokens: &[u32]) -> Result<()> {
    match tokens.iter().find(|&&t| t as usize >= config.vocab_size) {
        Some(t) => Err(Error::Backend(format!(
            "token id {t} is outside the vocabulary of {} tokens",
            config.vocab_size
        ))),
        None => Ok(()),
    }
}

/// Tokens per sequence of a batch of `batch` sequences stacked in `tokens` tokens: `None` when
/// there is nothing to run, an error when they cannot all have the same length.
pub fn batch_len(batch: usize, tokens: usize) -> Result<Option<usize>> {
    if batch == 0 || tokens == 0 {
        Ok(None)
    } else if tokens.is_multiple_of(batch) {
        Ok(Some(tokens / batch))
    } else {
        Err(Error::Backend(
            "batched sequences must have equal lengths".into(),
        ))
    }
}

/// Checks checkpoint indices for [`Backend::forward_checkpoints`] on a stripe of `len` tokens.
pub fn check_checkpoints(at: &[usize], len: usize, stride: usize) -> Result<()> {
    let ascending = at.windows(2).all(|w| w[0] < w[1]);
    let inside = at.last().is_none_or(|&p| p < len);
    if ascending && inside && at.iter().all(|p| p % stride.max(1) == 0) {
        Ok(())
    } else {
        Err(Error::Backend(format!(
            "checkpoints must ascend, lie inside the stripe of {len} tokens and be multiples of {stride}"
        )))
    }
}

/// Checks that `layer`, when given, names one of the model's blocks.
pub fn check_layer(config: &MambaConfig, layer: Option<usize>) -> Result<()> {
    match layer {
        Some(k) if k >= config.num_hidden_layers => Err(Error::Backend(format!(
            "layer {k} does not exist: the model has {} layers",
            config.num_hidden_layers
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_observed_takes_each_row_at_the_next_token() {
        // Three rows over a vocabulary of 4; tokens 1, 3, 0: row 0 at 3, row 1 at 0.
        let rows = [0.0, 0.1, 0.2, 0.3, 1.0, 1.1, 1.2, 1.3, 2.0, 2.1, 2.2, 2.3];
        let (mut observed, mut last) = (vec![9.0], vec![9.0]);
        pick_observed(&rows, 4, &[1, 3, 0], &mut observed, &mut last);
        assert_eq!(observed, [0.3, 1.0]);
        assert_eq!(last, [2.0, 2.1, 2.2, 2.3]);
        pick_observed(&[], 4, &[], &mut observed, &mut last);
        assert!(observed.is_empty() && last.is_empty());
    }

    #[test]
    fn forward_observed_gives_the_forward_rows_values() {
        let model = crate::model::builtin::load().unwrap();
        let backend = cpu::CpuBackend::new(&model);
        let tokens: Vec<u32> = (0..300u32).map(|i| 7 + (i * i + i / 3) % 5).collect();
        let (mut s1, mut s2) = (backend.new_state().unwrap(), backend.new_state().unwrap());
        let mut rows = Vec::new();
        backend.forward(&mut s1, &tokens, &mut rows).unwrap();
        let (mut observed, mut last) = (Vec::new(), Vec::new());
        backend
            .forward_observed(&mut s2, &tokens, &mut observed, &mut last)
            .unwrap();
        let v = model.config.vocab_size;
        for (i, o) in observed.iter().enumerate() {
            assert_eq!(o.to_bits(), rows[i * v + tokens[i + 1] as usize].to_bits());
        }
        assert_eq!(last, rows[rows.len() - v..]);
        assert_eq!(s1, s2, "the state moves on the same way");
    }
}
