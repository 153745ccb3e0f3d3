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

/// A variant whose REF window the reference pass has not finished yet.
struct Pending {
    slot: usize,
    start: usize,
    end: usize,
    ref_first: Option<f32>,
    ref_sum: f64,
    alt_first: Option<f32>,
    alt_sum: f64,
}

impl Pending {
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

/// Runs the reference pass from `*at` to `to`, adding its scores to the REF windows they fall
/// in and retiring the windows that are complete.
#[allow(clippy::too_many_arguments)]
fn feed<B: Backend>(
    stream: &mut ScoreStream<'_, B>,
    seq: &[u32],
    at: &mut usize,
    to: usize,
    stripe_len: usize,
    pending: &mut Vec<Pending>,
    scratch: &mut Vec<f32>,
    out: &mut [StrandScores],
) -> Result<()> {
    while *at < to {
        let hi = (*at + stripe_len.max(1)).min(to);
        stream.push(&seq[*at..hi], scratch)?;
        for p in pending.iter_mut() {
            let (lo, up) = (p.start.max(*at), p.end.min(hi));
            if lo < up {
                p.ref_sum += sum_scored(&scratch[lo - *at..up - *at]);
                if lo == p.start {
                    p.ref_first = Some(scratch[lo - *at]).filter(|x| !x.is_nan());
                }
            }
        }
        *at = hi;
        pending.retain(|p| {
            let done = p.end <= *at;
            if done {
                out[p.slot] = p.finish();
            }
            !done
        });
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
            // the pass's own scores as it moves through [pos, pos + ref_len + window).
            let mut stream = ScoreStream::new(backend, tokenizer, opts.bos)?;
            let mut pending: Vec<Pending> = Vec::new();
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
                    &mut out,
                )?;
                let (ref_range, alt) = continuation_tokens(seq, v, opts.window);
                let alt_scores = continue_from(&stream, &alt)?;
                pending.push(Pending {
                    slot: i,
                    start: ref_range.start,
                    end: ref_range.end,
                    ref_first: None,
                    ref_sum: 0.0,
                    alt_first: alt_scores.first().copied().filter(|x| !x.is_nan()),
                    alt_sum: sum_scored(&alt_scores),
                });
            }
            let last = pending.iter().map(|p| p.end).max().unwrap_or(at);
            feed(
                &mut stream,
                seq,
                &mut at,
                last,
                opts.stripe_len,
                &mut pending,
                &mut scratch,
                &mut out,
            )?;
            // Windows that end at `at` itself retire in `feed`; anything left is empty.
            for p in pending.drain(..) {
                out[p.slot] = p.finish();
            }
        }
    }
    Ok(out)
}
