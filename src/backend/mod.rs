//! The compute backends: one trait, one implementation per device.
//!
//! The stripe runner, the formats and the scoring code see only [`Backend`]; nothing outside
//! this module knows which device does the arithmetic.

pub mod cpu;
pub mod cuda;

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

    /// A zeroed state: the start of a sequence.
    fn new_state(&self) -> Result<Self::State>;

    /// Runs `tokens` from `state`, leaves the state after the last token in `state`, and writes
    /// the log-softmax of the next-token prediction after every token to `logp`
    /// (`tokens.len() * vocab_size` values, row-major).
    fn forward(&self, state: &mut Self::State, tokens: &[u32], logp: &mut Vec<f32>) -> Result<()>;

    /// Runs `states.len()` independent sequences of equal length, stacked in `tokens`
    /// (sequence `b` is `tokens[b * len..(b + 1) * len]`), each from its own state, and writes
    /// their log-softmax rows in the same order. The states' values afterwards are unspecified:
    /// callers pass copies. The default runs them one by one; a GPU runs them as one batch.
    fn forward_batch(
        &self,
        states: &mut [Self::State],
        tokens: &[u32],
        logp: &mut Vec<f32>,
    ) -> Result<()> {
        logp.clear();
        if states.is_empty() {
            return Ok(());
        }
        let len = tokens.len() / states.len();
        let mut rows = Vec::new();
        for (state, seq) in states.iter_mut().zip(tokens.chunks(len.max(1))) {
            self.forward(state, seq, &mut rows)?;
            logp.extend_from_slice(&rows);
        }
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
