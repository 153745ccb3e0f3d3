//! State-cached variant scoring on one strand of one chromosome.
//!
//! REF and ALT share everything upstream of the variant, so one pass over the strand, copying
//! the state at checkpoints next to the variants, gives the upstream state for all of them;
//! each ALT then only runs its own short continuation (the allele plus `window` downstream
//! bases) from that state, and REF's is the pass itself. With `context = Some(n)` each variant
//! instead gets fresh REF and ALT windows from `n` bases upstream of it (the windowed approach
//! of other tools, and a reference for benchmarks).

use crate::backend::Backend;
use crate::error::Result;
use crate::runner::{ScoreStream, Snapshot, observed_scores, score_batch};
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

/// The first score of `scores`, if it is a score (not N / unscored).
fn first_scored(scores: &[f32]) -> Option<f32> {
    scores.first().copied().filter(|x| !x.is_nan())
}

/// End of `v`'s REF continuation on `seq`: the REF allele plus up to `window` downstream bases.
fn ref_end(seq: &[u32], v: &StrandVariant, window: usize) -> usize {
    // `window` comes from the command line: saturate instead of wrapping past usize::MAX.
    v.pos
        .saturating_add(v.ref_len)
        .saturating_add(window)
        .min(seq.len())
}

/// The ALT tokens of `v` on `seq` from `from` (at or before the variant): the reference bases
/// from `from` to the variant, the allele, and the same downstream bases as REF's continuation.
fn alt_tokens(seq: &[u32], v: &StrandVariant, from: usize, window: usize) -> Vec<u32> {
    let down_start = (v.pos + v.ref_len).min(seq.len());
    let mut alt = seq[from..v.pos].to_vec();
    alt.extend_from_slice(&v.alt);
    alt.extend_from_slice(&seq[down_start..ref_end(seq, v, window)]);
    alt
}

/// Scores of a variant from its alleles' scores (`skip` leading positions before the variant
/// left out).
fn scores_of(ref_scores: &[f32], alt_scores: &[f32], skip: usize) -> StrandScores {
    let (r, a) = (
        &ref_scores[skip.min(ref_scores.len())..],
        &alt_scores[skip.min(alt_scores.len())..],
    );
    Sums {
        ref_first: first_scored(r),
        ref_sum: sum_scored(r),
        alt_first: first_scored(a),
        alt_sum: sum_scored(a),
    }
    .finish()
}

/// Continuations run together on the backend.
const BATCH: usize = 256;

/// At most this many distinct checkpoints are copied in one stripe of the reference pass.
const MAX_CHECKPOINTS: usize = 256;

/// An ALT continuation waiting for its batch: the checkpoint it starts from and its tokens
/// (the reference bases from the checkpoint to the variant, then the allele and what follows).
struct AltJob<B: Backend> {
    slot: usize,
    from: Snapshot<B>,
    tokens: Vec<u32>,
    skip: usize,
}

/// A variant's REF window `[start, end)` that the reference pass has not finished yet.
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
    let mut states = Vec::with_capacity(jobs.len());
    for j in jobs.iter_mut() {
        tokens.extend_from_slice(&j.tokens);
        tokens.resize(tokens.len() + len - j.tokens.len(), tokenizer.n_token());
        states.push(j.from.state.clone());
    }
    let mut rows = Vec::new();
    backend.forward_batch(&mut states, &tokens, &mut rows)?;
    let v = backend.config().vocab_size;
    let mut scores = Vec::new();
    for (b, job) in jobs.drain(..).enumerate() {
        scores.clear();
        let own = &rows[b * len * v..(b * len + job.tokens.len()) * v];
        observed_scores(
            tokenizer,
            job.from.next_row.as_deref(),
            own,
            v,
            &job.tokens,
            &mut scores,
        );
        let s = &mut sums[job.slot];
        let own = &scores[job.skip.min(scores.len())..];
        s.alt_first = first_scored(own);
        s.alt_sum = sum_scored(own);
    }
    Ok(())
}

/// Scores `variants` on the strand `seq` (tokens). Returns scores in the order of `variants`.
pub fn score_strand<B: Backend>(
    backend: &B,
    tokenizer: &Tokenizer,
    seq: &[u32],
    variants: &[StrandVariant],
    opts: &EngineOptions,
) -> Result<Vec<StrandScores>> {
    if let Some(v) = variants.iter().find(|v| v.pos >= seq.len()) {
        return Err(crate::error::Error::Backend(format!(
            "variant at {} lies outside the strand of {} bases",
            v.pos,
            seq.len()
        )));
    }
    match opts.context {
        Some(n) => score_windowed(backend, tokenizer, seq, variants, opts, n),
        None => score_cached(backend, tokenizer, seq, variants, opts),
    }
}

/// The naive way: every variant gets fresh REF and ALT windows starting `context` bases
/// upstream of it, scored whole; windows of many variants run as one batch.
fn score_windowed<B: Backend>(
    backend: &B,
    tokenizer: &Tokenizer,
    seq: &[u32],
    variants: &[StrandVariant],
    opts: &EngineOptions,
    context: usize,
) -> Result<Vec<StrandScores>> {
    let start = ScoreStream::new(backend, tokenizer, opts.bos)?.snapshot();
    let mut out = Vec::with_capacity(variants.len());
    for group in variants.chunks(BATCH / 2) {
        let mut seqs = Vec::with_capacity(2 * group.len());
        for v in group {
            let from = v.pos.saturating_sub(context);
            seqs.push(seq[from..ref_end(seq, v, opts.window)].to_vec());
            seqs.push(alt_tokens(seq, v, from, opts.window));
        }
        let cols = stride_multiple(opts.stripe_len / seqs.len(), backend.checkpoint_stride());
        let scores = score_batch(backend, tokenizer, &start, &seqs, cols)?;
        for (v, pair) in group.iter().zip(scores.chunks(2)) {
            let skip = v.pos - v.pos.saturating_sub(context);
            out.push(scores_of(&pair[0], &pair[1], skip));
        }
    }
    Ok(out)
}

/// `n` rounded down to a multiple of `stride`, at least one stride.
fn stride_multiple(n: usize, stride: usize) -> usize {
    let stride = stride.max(1);
    (n / stride).max(1) * stride
}

/// The state-cached way: one pass over the strand copies the state at a checkpoint at or just
/// before each variant (the backend's checkpoint stride apart). REF's scores are read off the
/// pass itself; ALT's continuation replays the few bases from the checkpoint to the variant and
/// then runs the allele and the window, in batches.
fn score_cached<B: Backend>(
    backend: &B,
    tokenizer: &Tokenizer,
    seq: &[u32],
    variants: &[StrandVariant],
    opts: &EngineOptions,
) -> Result<Vec<StrandScores>> {
    let stride = backend.checkpoint_stride().max(1);
    let stripe = stride_multiple(opts.stripe_len, stride);
    let checkpoint = |i: usize| variants[i].pos / stride * stride;
    let mut order: Vec<usize> = (0..variants.len()).collect();
    order.sort_by_key(|&i| variants[i].pos);

    let mut stream = ScoreStream::new(backend, tokenizer, opts.bos)?;
    let mut sums = vec![Sums::default(); variants.len()];
    let mut pending: Vec<Pending> = Vec::new();
    let mut jobs: Vec<AltJob<B>> = Vec::new();
    let mut scores = Vec::new();
    let (mut at, mut next) = (0usize, 0usize);
    while at < seq.len() && (next < order.len() || !pending.is_empty()) {
        // This stripe's checkpoints; the stripe ends early at the first one over the cap.
        let mut hi = (at + stripe).min(seq.len());
        let mut cuts: Vec<usize> = Vec::new();
        let mut last = next;
        while last < order.len() && checkpoint(order[last]) < hi {
            let c = checkpoint(order[last]);
            if cuts.last() != Some(&(c - at)) {
                if cuts.len() == MAX_CHECKPOINTS {
                    hi = c;
                    break;
                }
                cuts.push(c - at);
            }
            last += 1;
        }
        for &i in &order[next..last] {
            let v = &variants[i];
            pending.push(Pending {
                slot: i,
                start: v.pos,
                end: ref_end(seq, v, opts.window),
            });
        }
        let snapshots = stream.push_checkpointed(&seq[at..hi], &mut scores, &cuts)?;
        for p in &pending {
            let (lo, up) = (p.start.max(at), p.end.min(hi));
            if lo < up {
                let s = &mut sums[p.slot];
                s.ref_sum += sum_scored(&scores[lo - at..up - at]);
                if lo == p.start {
                    s.ref_first = first_scored(&scores[lo - at..]);
                }
            }
        }
        pending.retain(|p| p.end > hi);
        for &i in &order[next..last] {
            let v = &variants[i];
            let c = checkpoint(i);
            let k = cuts.partition_point(|&cut| cut < c - at);
            jobs.push(AltJob {
                slot: i,
                from: snapshots[k].clone(),
                tokens: alt_tokens(seq, v, c, opts.window),
                skip: v.pos - c,
            });
            if jobs.len() == BATCH {
                run_alt_batch(backend, tokenizer, &mut jobs, &mut sums)?;
            }
        }
        next = last;
        at = hi;
    }
    run_alt_batch(backend, tokenizer, &mut jobs, &mut sums)?;
    Ok(sums.iter().map(Sums::finish).collect())
}
