//! The stripe loop: a sequence fed stripe by stripe through a [`Backend`], state carried across
//! stripe boundaries, turned into per-base log-probabilities of the observed bases.

use crate::backend::Backend;
use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// Scores one sequence incrementally. Feeding it the sequence in stripes of any lengths gives
/// the same scores as feeding it whole.
pub struct ScoreStream<'a, B: Backend> {
    backend: &'a B,
    tokenizer: &'a Tokenizer,
    state: B::State,
    /// Log-softmax predicting the next token, from the last token seen (or BOS).
    next_row: Option<Vec<f32>>,
    rows: Vec<f32>,
}

impl<'a, B: Backend> ScoreStream<'a, B> {
    /// Starts a sequence. With `bos`, that token is run first so the first base gets a score.
    pub fn new(backend: &'a B, tokenizer: &'a Tokenizer, bos: Option<u32>) -> Result<Self> {
        let mut stream = ScoreStream {
            backend,
            tokenizer,
            state: backend.new_state()?,
            next_row: None,
            rows: Vec::new(),
        };
        if let Some(bos) = bos {
            stream
                .backend
                .forward(&mut stream.state, &[bos], &mut stream.rows)?;
            stream.next_row = Some(stream.rows.clone());
        }
        Ok(stream)
    }

    /// Feeds the next stripe and replaces `scores` with, for each of its tokens, the natural-log
    /// probability of that token given everything before it; `NaN` where there is no score
    /// (the sequence's first token without BOS, and N/ambiguity tokens).
    pub fn push(&mut self, tokens: &[u32], scores: &mut Vec<f32>) -> Result<()> {
        scores.clear();
        if tokens.is_empty() {
            return Ok(());
        }
        self.backend
            .forward(&mut self.state, tokens, &mut self.rows)?;
        let v = self.backend.config().vocab_size;
        scores.reserve(tokens.len());
        for (i, &t) in tokens.iter().enumerate() {
            let row = if i == 0 {
                self.next_row.as_deref()
            } else {
                Some(&self.rows[(i - 1) * v..i * v])
            };
            let score = match row {
                Some(row) if self.tokenizer.is_scored(t) => row[t as usize],
                _ => f32::NAN,
            };
            scores.push(score);
        }
        let last = (tokens.len() - 1) * v;
        match &mut self.next_row {
            Some(row) => row.copy_from_slice(&self.rows[last..last + v]),
            None => self.next_row = Some(self.rows[last..last + v].to_vec()),
        }
        Ok(())
    }

    /// An independent copy that continues from the same point (state and next-token row), so
    /// several continuations can share one upstream pass.
    pub fn fork(&self) -> Self {
        ScoreStream {
            backend: self.backend,
            tokenizer: self.tokenizer,
            state: self.state.clone(),
            next_row: self.next_row.clone(),
            rows: Vec::new(),
        }
    }

    /// Feeds `tokens` in stripes of at most `stripe_len`, discarding the scores.
    pub fn advance(
        &mut self,
        tokens: &[u32],
        stripe_len: usize,
        scratch: &mut Vec<f32>,
    ) -> Result<()> {
        for chunk in tokens.chunks(stripe_len.max(1)) {
            self.push(chunk, scratch)?;
        }
        Ok(())
    }

    /// A copy of the state and of the row predicting the next token: everything a
    /// continuation from this point needs.
    pub fn snapshot(&self) -> (B::State, Option<Vec<f32>>) {
        (self.state.clone(), self.next_row.clone())
    }

    /// The state after the tokens fed so far.
    pub fn state(&self) -> &B::State {
        &self.state
    }
}

/// Appends to `scores`, for each of `tokens`, the log-probability of that token: from
/// `first_row` for the first token (no score when `None`), from `rows[i - 1]` (log-softmax rows
/// of width `v`) for the others; `NaN` for tokens that are never scored (N).
pub fn observed_scores(
    tokenizer: &Tokenizer,
    first_row: Option<&[f32]>,
    rows: &[f32],
    v: usize,
    tokens: &[u32],
    scores: &mut Vec<f32>,
) {
    scores.reserve(tokens.len());
    for (i, &t) in tokens.iter().enumerate() {
        let row = if i == 0 {
            first_row
        } else {
            Some(&rows[(i - 1) * v..i * v])
        };
        scores.push(match row {
            Some(row) if tokenizer.is_scored(t) => row[t as usize],
            _ => f32::NAN,
        });
    }
}

/// Default stripe length for a model: as many tokens as fit activation buffers of about
/// 256 MiB, between 1,024 and 65,536.
pub fn default_stripe_len(config: &crate::model::MambaConfig) -> usize {
    let floats_per_token = 3 * config.hidden_size
        + 6 * config.intermediate_size
        + config.x_proj_width()
        + config.vocab_size;
    let budget = 256usize << 20;
    (budget / (4 * floats_per_token)).clamp(1024, 65536)
}
