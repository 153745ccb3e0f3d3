//! State-cached variant scoring on one strand of one chromosome.
//!
//! REF and ALT share everything upstream of the variant, so one pass over the strand, stopping
//! at each variant position, gives the upstream state for all of them; each allele then only
//! runs its own short continuation (the allele plus `window` downstream bases) from a fork of
//! that state. With `context = Some(n)` each variant instead gets a fresh pass over the `n`
//! bases upstream of it (the windowed approach of other tools, and a reference for benchmarks).

use crate::backend::Backend;
use crate::error::Result;
use crate::runner::ScoreStream;
use crate::tokenizer::Tokenizer;

/// A variant in the coordinates and tokens of one strand.
#[derive(Clone, Debug)]
pub struct StrandVariant {
    /// 0-based position of the first REF base on this strand.
    pub pos: usize,
    /// REF length.
    pub ref_len: usize,
    /// ALT tokens, in this strand's orientation.
    pub alt: Vec<u32>,
}

/// Scores of one variant on one strand.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StrandScores {
    /// `log P(ALT[0] | upstream) − log P(REF[0] | upstream)`; `None` when the first base cannot
    /// be scored (strand start without BOS, or an N).
    pub llr: Option<f64>,
    /// Σ log P(ALT continuation) − Σ log P(REF continuation), allele plus `window` downstream
    /// bases (bases without a score — N — left out of both sums).
    pub delta_ll: f64,
}

/// Settings of the engine.
#[derive(Clone, Copy, Debug)]
pub struct EngineOptions {
    /// Downstream bases after the allele included in `delta_ll`.
    pub window: usize,
    /// Upstream bases of context; `None` for everything from the strand start.
    pub context: Option<usize>,
    /// Tokens per stripe of the upstream pass.
    pub stripe_len: usize,
    /// BOS token to prepend to every strand, if the model uses one.
    pub bos: Option<u32>,
}

fn sum_scored(scores: &[f32]) -> f64 {
    scores
        .iter()
        .filter(|v| !v.is_nan())
        .map(|&v| v as f64)
        .sum()
}

/// The REF and ALT continuation tokens of `v` on `seq`: the allele plus up to `window`
/// downstream bases.
fn continuation_tokens(
    seq: &[u32],
    v: &StrandVariant,
    window: usize,
) -> (std::ops::Range<usize>, Vec<u32>) {
    let down_start = (v.pos + v.ref_len).min(seq.len());
    let down_end = (down_start + window).min(seq.len());
    let mut alt = v.alt.clone();
    alt.extend_from_slice(&seq[down_start..down_end]);
    (v.pos..down_end, alt)
}

/// Scores `tokens` continuing from `upstream`, leaving `upstream` as it was.
fn continue_from<B: Backend>(upstream: &ScoreStream<'_, B>, tokens: &[u32]) -> Result<Vec<f32>> {
    let mut scores = Vec::new();
    upstream.fork().push(tokens, &mut scores)?;
    Ok(scores)
}

/// ALT continuations run together on the backend.
const ALT_BATCH: usize = 256;

/// A variant whose REF window the reference pass has not finished yet.
struct Pending {
    slot: usize,
    start: usize,
    end: usize,
}

/// First-base scores and sums of a variant's two continuations.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    ref_first: Option<f32>,
    ref_sum: f64,
    alt_first: Option<f32>,
    alt_sum: f64,
}

impl Sums {
    fn finish(&self) -> StrandScores {
        StrandScores {
            llr: match (self.alt_first, self.ref_first) {
                (Some(a), Some(r)) => Some(a as f64 - r as f64),
                _ => None,
            },
            delta_ll: self.alt_sum - self.ref_sum,
        }
    }
}

/// An ALT continuation waiting for its batch: the upstream snapshot and the tokens to run.
struct AltJob<B: Backend> {
    slot: usize,
    state: B::State,
    next_row: Option<Vec<f32>>,
    tokens: Vec<u32>,
}

/// Runs the queued ALT continuations as one batch (padded with N to equal length; the model is
/// causal, so padding never changes the real positions' scores) and records their sums.
fn run_alt_batch<B: Backend>(
    backend: &B,
    tokenizer: &Tokenizer,
    jobs: &mut Vec<AltJob<B>>,
    sums: &mut [Sums],
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let len = jobs.iter().map(|j| j.tokens.len()).max().unwrap_or(0);
    let mut tokens = Vec::with_capacity(jobs.len() * len);
    for j in jobs.iter() {
        tokens.extend_from_slice(&j.tokens);
        tokens.resize(tokens.len() + len - j.tokens.len(), tokenizer.n_token());
    }
    let (mut states, jobs): (Vec<B::State>, Vec<_>) = jobs
        .drain(..)
        .map(|j| (j.state, (j.slot, j.next_row, j.tokens)))
        .unzip();
    let mut rows = Vec::new();
    backend.forward_batch(&mut states, &tokens, &mut rows)?;
    let v = backend.config().vocab_size;
    let mut scores = Vec::new();
    for (b, (slot, next_row, own_tokens)) in jobs.iter().enumerate() {
        scores.clear();
        let own = &rows[b * len * v..(b * len + own_tokens.len()) * v];
        crate::runner::observed_scores(
            tokenizer,
            next_row.as_deref(),
            own,
            v,
            own_tokens,
            &mut scores,
        );
        let s = &mut sums[*slot];
        s.alt_first = scores.first().copied().filter(|x| !x.is_nan());
        s.alt_sum = sum_scored(&scores);
    }
    Ok(())
}

/// Runs the reference pass from `*at` to `to`, adding its scores to the REF windows they fall
/// in and dropping the windows that are complete.
#[allow(clippy::too_many_arguments)]
fn feed<B: Backend>(
    stream: &mut ScoreStream<'_, B>,
    seq: &[u32],
    at: &mut usize,
    to: usize,
    stripe_len: usize,
    pending: &mut Vec<Pending>,
    scratch: &mut Vec<f32>,
    sums: &mut [Sums],
) -> Result<()> {
    while *at < to {
        let hi = (*at + stripe_len.max(1)).min(to);
        stream.push(&seq[*at..hi], scratch)?;
        for p in pending.iter() {
            let (lo, up) = (p.start.max(*at), p.end.min(hi));
            if lo < up {
                let s = &mut sums[p.slot];
                s.ref_sum += sum_scored(&scratch[lo - *at..up - *at]);
                if lo == p.start {
                    s.ref_first = Some(scratch[lo - *at]).filter(|x| !x.is_nan());
                }
            }
        }
        *at = hi;
        pending.retain(|p| p.end > *at);
    }
    Ok(())
}

fn scores_of(ref_scores: &[f32], alt_scores: &[f32]) -> StrandScores {
    let first = |s: &[f32]| s.first().copied().filter(|v| !v.is_nan());
    let llr = match (first(alt_scores), first(ref_scores)) {
        (Some(a), Some(r)) => Some(a as f64 - r as f64),
        _ => None,
    };
    StrandScores {
        llr,
        delta_ll: sum_scored(alt_scores) - sum_scored(ref_scores),
    }
}

/// Scores `variants` on the strand `seq` (tokens). Returns scores in the order of `variants`.
pub fn score_strand<B: Backend>(
    backend: &B,
    tokenizer: &Tokenizer,
    seq: &[u32],
    variants: &[StrandVariant],
    opts: &EngineOptions,
) -> Result<Vec<StrandScores>> {
    let mut out = vec![StrandScores::default(); variants.len()];
    let mut order: Vec<usize> = (0..variants.len()).collect();
    order.sort_by_key(|&i| variants[i].pos);
    let mut scratch = Vec::new();
    match opts.context {
        Some(n) => {
            for &i in &order {
                let v = &variants[i];
                let mut stream = ScoreStream::new(backend, tokenizer, opts.bos)?;
                stream.advance(
                    &seq[v.pos.saturating_sub(n)..v.pos],
                    opts.stripe_len,
                    &mut scratch,
                )?;
                let (ref_range, alt) = continuation_tokens(seq, v, opts.window);
                let r = continue_from(&stream, &seq[ref_range])?;
                out[i] = scores_of(&r, &continue_from(&stream, &alt)?);
            }
        }
        None => {
            // REF's continuation is the reference pass itself, so its sums are collected from
            // the pass's own scores as it moves through [pos, pos + ref_len + window). ALT's
            // continuations start from snapshots of the pass and run in batches.
            let mut stream = ScoreStream::new(backend, tokenizer, opts.bos)?;
            let mut pending: Vec<Pending> = Vec::new();
            let mut sums = vec![Sums::default(); variants.len()];
            let mut jobs: Vec<AltJob<B>> = Vec::new();
            let mut at = 0usize;
            for &i in &order {
                let v = &variants[i];
                feed(
                    &mut stream,
                    seq,
                    &mut at,
                    v.pos,
                    opts.stripe_len,
                    &mut pending,
                    &mut scratch,
                    &mut sums,
                )?;
                let (ref_range, alt) = continuation_tokens(seq, v, opts.window);
                let (state, next_row) = stream.snapshot();
                jobs.push(AltJob {
                    slot: i,
                    state,
                    next_row,
                    tokens: alt,
                });
                if jobs.len() == ALT_BATCH {
                    run_alt_batch(backend, tokenizer, &mut jobs, &mut sums)?;
                }
                pending.push(Pending {
                    slot: i,
                    start: ref_range.start,
                    end: ref_range.end,
                });
            }
            run_alt_batch(backend, tokenizer, &mut jobs, &mut sums)?;
            let last = pending.iter().map(|p| p.end).max().unwrap_or(at);
            feed(
                &mut stream,
                seq,
                &mut at,
                last,
                opts.stripe_len,
                &mut pending,
                &mut scratch,
                &mut sums,
            )?;
            for (o, s) in out.iter_mut().zip(&sums) {
                *o = s.finish();
            }
        }
    }
    Ok(out)
}
