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
        self.push_checkpointed(tokens, scores, &[])?;
        Ok(())
    }

    /// Like [`ScoreStream::push`], and also returns a [`Snapshot`] of the stream before each
    /// token index in `at` (see [`Backend::forward_checkpoints`] for what `at` may hold).
    pub fn push_checkpointed(
        &mut self,
        tokens: &[u32],
        scores: &mut Vec<f32>,
        at: &[usize],
    ) -> Result<Vec<Snapshot<B>>> {
        scores.clear();
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        if at.is_empty() {
            self.push_observed(tokens, scores)?;
            return Ok(Vec::new());
        }
        let states =
            self.backend
                .forward_checkpoints(&mut self.state, tokens, &mut self.rows, at)?;
        let v = self.backend.config().vocab_size;
        let snapshots = states
            .into_iter()
            .zip(at)
            .map(|(state, &p)| Snapshot {
                state,
                next_row: match p {
                    0 => self.next_row.clone(),
                    _ => Some(self.rows[(p - 1) * v..p * v].to_vec()),
                },
            })
            .collect();
        observed_scores(
            self.tokenizer,
            self.next_row.as_deref(),
            &self.rows,
            v,
            tokens,
            scores,
        );
        let last = (tokens.len() - 1) * v;
        match &mut self.next_row {
            Some(row) => row.copy_from_slice(&self.rows[last..last + v]),
            None => self.next_row = Some(self.rows[last..last + v].to_vec()),
        }
        Ok(snapshots)
    }

    /// [`ScoreStream::push`] through [`Backend::forward_observed`]: only the observed tokens'
    /// values and the last row come back from the device.
    fn push_observed(&mut self, tokens: &[u32], scores: &mut Vec<f32>) -> Result<()> {
        let mut last_row = Vec::new();
        self.backend
            .forward_observed(&mut self.state, tokens, &mut self.rows, &mut last_row)?;
        // The backend checked the tokens against the vocabulary: tokens[0] indexes a row.
        let first = self.next_row.as_ref().map(|row| row[tokens[0] as usize]);
        scores.reserve(tokens.len());
        for (i, &t) in tokens.iter().enumerate() {
            let value = if i == 0 {
                first
            } else {
                Some(self.rows[i - 1])
            };
            scores.push(match value {
                Some(v) if self.tokenizer.is_scored(t) => v,
                _ => f32::NAN,
            });
        }
        self.next_row = Some(last_row);
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

    /// A copy of the stream's current point: everything a continuation from here needs.
    pub fn snapshot(&self) -> Snapshot<B> {
        Snapshot {
            state: self.state.clone(),
            next_row: self.next_row.clone(),
        }
    }

    /// The state after the tokens fed so far.
    pub fn state(&self) -> &B::State {
        &self.state
    }
}

/// What a [`pipeline`] source yields: the next stripe's tokens with a value of the caller's, or
/// `None` at the end.
pub type Feed<T> = Result<Option<(T, Vec<u32>)>>;

/// Runs `stream` over stripes on a worker thread, so that the caller reads and tokenises the
/// next stripe, and writes out the previous one, while the device works on the current one.
/// `next` yields each stripe's tokens with a value of the caller's (`None` at the end); `done`
/// gets the value and the stripe's scores, in order. At most three stripes are alive at once.
pub fn pipeline<B: Backend, T: Send>(
    stream: &mut ScoreStream<'_, B>,
    mut next: impl FnMut() -> Feed<T>,
    mut done: impl FnMut(T, &[f32]) -> Result<()>,
) -> Result<()> {
    use std::sync::mpsc::sync_channel;
    std::thread::scope(|scope| {
        let (to_device, device_in) = sync_channel::<(T, Vec<u32>)>(1);
        let (device_out, from_device) = sync_channel::<Result<(T, Vec<f32>)>>(1);
        scope.spawn(move || {
            let on_pool = stream.backend.computes_on_thread_pool();
            let work = move || {
                for (value, tokens) in device_in {
                    let mut scores = Vec::with_capacity(tokens.len());
                    let result = stream.push(&tokens, &mut scores).map(|()| (value, scores));
                    let failed = result.is_err();
                    if device_out.send(result).is_err() || failed {
                        break;
                    }
                }
            };
            if on_pool {
                // On a pool thread each parallel step of the CPU ops starts at once (one
                // thread: runs inline), instead of being handed to the pool and waited for.
                rayon::scope(|_| work());
            } else {
                work();
            }
        });
        let mut in_flight = 0usize;
        let mut finish_one = |in_flight: &mut usize| -> Result<()> {
            let (value, scores) = from_device.recv().map_err(|_| {
                crate::error::Error::Backend("the device thread stopped early".into())
            })??;
            *in_flight -= 1;
            done(value, &scores)
        };
        while let Some(item) = next()? {
            if to_device.send(item).is_err() {
                // The worker stopped after an error: report it.
                finish_one(&mut in_flight)?;
            }
            in_flight += 1;
            if in_flight == 2 {
                finish_one(&mut in_flight)?;
            }
        }
        drop(to_device);
        while in_flight > 0 {
            finish_one(&mut in_flight)?;
        }
        Ok(())
    })
}

/// A point of a sequence to continue from: the state there and the log-softmax row that
/// predicts the next token (`None` at a sequence's start without BOS).
pub struct Snapshot<B: Backend> {
    /// The backend state after the tokens before this point.
    pub state: B::State,
    /// The row predicting the token at this point.
    pub next_row: Option<Vec<f32>>,
}

impl<B: Backend> Clone for Snapshot<B> {
    fn clone(&self) -> Self {
        Snapshot {
            state: self.state.clone(),
            next_row: self.next_row.clone(),
        }
    }
}

/// Scores independent sequences that all start from `start`, as one batch on the backend:
/// `cols` tokens of every sequence per backend call (shorter ones padded with N, which a causal
/// model never lets change the real positions). Returns each sequence's scores, as
/// [`ScoreStream::push`] would give them.
pub fn score_batch<B: Backend>(
    backend: &B,
    tokenizer: &Tokenizer,
    start: &Snapshot<B>,
    seqs: &[Vec<u32>],
    cols: usize,
) -> Result<Vec<Vec<f32>>> {
    let v = backend.config().vocab_size;
    let max_len = seqs.iter().map(Vec::len).max().unwrap_or(0);
    let cols = cols.max(1);
    let mut states = vec![start.state.clone(); seqs.len()];
    let mut next_rows = vec![start.next_row.clone(); seqs.len()];
    let mut out: Vec<Vec<f32>> = seqs.iter().map(|s| Vec::with_capacity(s.len())).collect();
    let (mut flat, mut rows) = (Vec::new(), Vec::new());
    for off in (0..max_len).step_by(cols) {
        let w = cols.min(max_len - off);
        flat.clear();
        for seq in seqs {
            let piece = &seq[off.min(seq.len())..(off + w).min(seq.len())];
            flat.extend_from_slice(piece);
            flat.resize(flat.len() + w - piece.len(), tokenizer.n_token());
        }
        backend.forward_batch(&mut states, &flat, &mut rows)?;
        for (b, seq) in seqs.iter().enumerate() {
            let own = seq.len().min(off + w).saturating_sub(off);
            if own == 0 {
                continue;
            }
            let (lo, hi) = (b * w, b * w + own);
            observed_scores(
                tokenizer,
                next_rows[b].as_deref(),
                &rows[lo * v..hi * v],
                v,
                &flat[lo..hi],
                &mut out[b],
            );
            next_rows[b] = Some(rows[(hi - 1) * v..hi * v].to_vec());
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::model::Model;

    #[test]
    fn pipeline_gives_plain_push_scores_and_stops_at_an_error() {
        let model = Model::load(std::path::Path::new("test-data/fixture-model")).unwrap();
        let backend = CpuBackend::new(&model);
        let tokenizer = Tokenizer::new(&model.config);
        let tokens: Vec<u32> = (0..1000u32).map(|i| 7 + (i * i + 3 * i) % 4).collect();
        let mut plain = Vec::new();
        let mut stream = ScoreStream::new(&backend, &tokenizer, None).unwrap();
        let mut scores = Vec::new();
        for stripe in tokens.chunks(96) {
            stream.push(stripe, &mut scores).unwrap();
            plain.extend_from_slice(&scores);
        }

        let run = |bad_stripe: Option<usize>| {
            let mut stream = ScoreStream::new(&backend, &tokenizer, None).unwrap();
            let mut stripes = tokens.chunks(96).enumerate();
            let mut out = Vec::new();
            let result = pipeline(
                &mut stream,
                || {
                    Ok(stripes.next().map(|(i, s)| {
                        let mut s = s.to_vec();
                        if Some(i) == bad_stripe {
                            s[0] = 999; // outside the vocabulary: the backend refuses it
                        }
                        (i, s)
                    }))
                },
                |i, scores| {
                    assert_eq!(out.len(), i * 96, "stripes arrive in order");
                    out.extend_from_slice(scores);
                    Ok(())
                },
            );
            (result, out)
        };
        let (result, piped) = run(None);
        result.unwrap();
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert_eq!(piped.len(), plain.len());
        assert!(same(&piped, &plain));

        let (result, partial) = run(Some(5));
        assert!(result.is_err());
        assert_eq!(
            partial.len(),
            5 * 96,
            "the stripes before the bad one are delivered"
        );
    }
}
