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
            let mut stream = ScoreStream::new(backend, tokenizer, opts.bos)?;
            let mut at = 0usize;
            // The REF continuation is shared by every ALT at the same position and REF length.
            let mut last_ref: Option<((usize, usize), Vec<f32>)> = None;
            for &i in &order {
                let v = &variants[i];
                stream.advance(&seq[at..v.pos], opts.stripe_len, &mut scratch)?;
                at = v.pos;
                let key = (v.pos, v.ref_len);
                let (ref_range, alt) = continuation_tokens(seq, v, opts.window);
                let ref_scores = match last_ref.take() {
                    Some((k, r)) if k == key => r,
                    _ => continue_from(&stream, &seq[ref_range])?,
                };
                out[i] = scores_of(&ref_scores, &continue_from(&stream, &alt)?);
                last_ref = Some((key, ref_scores));
            }
        }
    }
    Ok(out)
}
