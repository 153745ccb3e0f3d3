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

/// End of `v`'s REF continuation on a strand of `len` tokens: the REF allele plus up to
/// `window` downstream bases.
fn ref_end(len: usize, v: &StrandVariant, window: usize) -> usize {
    // `window` comes from the command line: saturate instead of wrapping past usize::MAX.
    v.pos
        .saturating_add(v.ref_len)
        .saturating_add(window)
        .min(len)
}

/// The ALT tokens of `v` on `seq` from `from` (at or before the variant): the reference bases
/// from `from` to the variant, the allele, and the same downstream bases as REF's continuation.
/// `seq` starts where `v.pos` counts from and reaches at least the end of REF's continuation
/// (or the strand's end).
fn alt_tokens(seq: &[u32], v: &StrandVariant, from: usize, window: usize) -> Vec<u32> {
    let down_start = (v.pos + v.ref_len).min(seq.len());
    let mut alt = seq[from..v.pos].to_vec();
    alt.extend_from_slice(&v.alt);
    alt.extend_from_slice(&seq[down_start..ref_end(seq.len(), v, window)]);
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

/// Continuations run together on the backend: at least this many, and (on a GPU, whose
/// stripes are long) as many as fill a stripe's worth of tokens.
const BATCH: usize = 256;

/// Continuations of one backend call at most, after sorting a batch by length (so that each
/// call pads its sequences to a length close to theirs).
const CALL: usize = 512;

/// At most this many distinct checkpoints are copied in one stripe of the reference pass on a
/// backend whose checkpoints fall at every position (the CPU: keeps its stripes short).
const MAX_CHECKPOINTS: usize = 256;
/// On a backend with a checkpoint stride (a GPU), up to this many, as far as
/// [`snapshot_cap`] allows: long stripes and full batches of continuations.
const MAX_CHECKPOINTS_STRIDED: usize = 4096;

/// Snapshots a stripe may copy (and pending continuations may hold) on a backend with a
/// checkpoint stride: their states take at most about what a stripe's activations take
/// (about `8 * d_inner` floats per token), between [`MAX_CHECKPOINTS`] and
/// [`MAX_CHECKPOINTS_STRIDED`].
fn snapshot_cap(config: &crate::model::MambaConfig, stripe_len: usize) -> usize {
    let state = config.num_hidden_layers * config.state_floats_per_layer();
    (stripe_len.saturating_mul(8 * config.intermediate_size) / state.max(1))
        .clamp(MAX_CHECKPOINTS, MAX_CHECKPOINTS_STRIDED)
}

/// An ALT continuation waiting for its batch: the checkpoint it starts from (shared by the
/// variants next to it) and its tokens (the reference bases from the checkpoint to the
/// variant, then the allele and what follows).
struct AltJob<B: Backend> {
    slot: u64,
    from: std::sync::Arc<Snapshot<B>>,
    tokens: Vec<u32>,
    skip: usize,
}

/// A variant's REF window `[start, end)` that the reference pass has not finished yet.
struct Pending {
    slot: u64,
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

/// Runs the queued ALT continuations (sorted by length, in calls of at most [`CALL`], each
/// padded with N to its longest; the model is causal, so padding never changes the real
/// positions' scores) and records their sums. Returns the ids of the variants whose
/// continuations ran.
fn run_alt_batch<B: Backend>(
    backend: &B,
    tokenizer: &Tokenizer,
    jobs: &mut Vec<AltJob<B>>,
    flight: &mut std::collections::HashMap<u64, InFlight>,
) -> Result<Vec<u64>> {
    jobs.sort_by_key(|j| j.tokens.len());
    let mut ran = Vec::with_capacity(jobs.len());
    let (mut tokens, mut observed, mut scores) = (Vec::new(), Vec::new(), Vec::new());
    for call in jobs.chunks(CALL) {
        let len = call.iter().map(|j| j.tokens.len()).max().unwrap_or(0);
        tokens.clear();
        tokens.reserve(call.len() * len);
        for j in call {
            tokens.extend_from_slice(&j.tokens);
            tokens.resize(tokens.len() + len - j.tokens.len(), tokenizer.n_token());
        }
        let starts: Vec<&B::State> = call.iter().map(|j| &j.from.state).collect();
        backend.forward_continuations(&starts, &tokens, &mut observed)?;
        for (b, job) in call.iter().enumerate() {
            scores.clear();
            continuation_scores(
                tokenizer,
                job.from.next_row.as_deref(),
                &observed[b * (len - 1)..(b + 1) * (len - 1)],
                &job.tokens,
                &mut scores,
            );
            let s = &mut flight.get_mut(&job.slot).expect("a variant in flight").sums;
            let own = &scores[job.skip.min(scores.len())..];
            s.alt_first = first_scored(own);
            s.alt_sum = sum_scored(own);
            ran.push(job.slot);
        }
    }
    for job in jobs.drain(..) {
        recycle(backend, job.from);
    }
    Ok(ran)
}

/// Hands a snapshot's state back to the backend once nothing else holds it.
fn recycle<B: Backend>(backend: &B, snapshot: std::sync::Arc<Snapshot<B>>) {
    if let Ok(snapshot) = std::sync::Arc::try_unwrap(snapshot) {
        backend.recycle(snapshot.state);
    }
}

/// Appends to `scores`, for each of `tokens`, its log-probability: from `first_row` for the
/// first token (no score when `None`), from `observed[i - 1]` (the value of the row before it
/// at it) for the others; `NaN` for tokens that are never scored (N). The values of
/// [`observed_scores`] on the rows `observed` was picked from.
fn continuation_scores(
    tokenizer: &Tokenizer,
    first_row: Option<&[f32]>,
    observed: &[f32],
    tokens: &[u32],
    scores: &mut Vec<f32>,
) {
    scores.reserve(tokens.len());
    for (i, &t) in tokens.iter().enumerate() {
        let value = if i == 0 {
            first_row.map(|row| row[t as usize])
        } else {
            Some(observed[i - 1])
        };
        scores.push(match value {
            Some(v) if tokenizer.is_scored(t) => v,
            _ => f32::NAN,
        });
    }
}

/// A strand's tokens, read on demand: the whole strand in memory ([`SliceSource`]) or stripes
/// fetched from the reference as the pass reaches them.
pub trait StrandSource {
    /// The strand's length in tokens.
    fn len(&self) -> usize;
    /// Whether the strand is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Replaces `out` with the tokens `[start, end)` of the strand (`end <= len()`).
    fn tokens(&mut self, start: usize, end: usize, out: &mut Vec<u32>) -> Result<()>;
}

/// A strand held whole in memory.
pub struct SliceSource<'a>(pub &'a [u32]);

impl StrandSource for SliceSource<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn tokens(&mut self, start: usize, end: usize, out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        out.extend_from_slice(&self.0[start..end]);
        Ok(())
    }
}

/// Where a strand's results go: `(id, scores)` as each variant is finished, in no set order.
pub type Sink<'s> = dyn FnMut(u64, StrandScores) -> Result<()> + 's;

/// Scores `variants` on the strand `seq` (tokens). Returns scores in the order of `variants`.
pub fn score_strand<B: Backend>(
    backend: &B,
    tokenizer: &Tokenizer,
    seq: &[u32],
    variants: &[StrandVariant],
    opts: &EngineOptions,
) -> Result<Vec<StrandScores>> {
    let mut order: Vec<usize> = (0..variants.len()).collect();
    if opts.context.is_none() {
        // The cached pass needs them in strand order; windows are scored in input order.
        order.sort_by_key(|&i| variants[i].pos);
    }
    let mut out = vec![StrandScores::default(); variants.len()];
    let mut sorted = order
        .iter()
        .map(|&i| -> Result<(u64, StrandVariant)> { Ok((i as u64, variants[i].clone())) });
    score_strand_stream(
        backend,
        tokenizer,
        &mut SliceSource(seq),
        &mut sorted,
        opts,
        &|_| {},
        &mut |id, s| {
            out[id as usize] = s;
            Ok(())
        },
    )?;
    Ok(out)
}

/// Scores the variants `variants` yields (`(id, variant)`, sorted by position on the strand)
/// on the strand `source` reads, handing each result to `sink` with its id as soon as it is
/// finished. Memory holds one stripe of the strand and the variants of one stripe, whatever the
/// strand's length or the number of variants. `progress` gets the bases the pass moves on.
pub fn score_strand_stream<B: Backend>(
    backend: &B,
    tokenizer: &Tokenizer,
    source: &mut dyn StrandSource,
    variants: &mut dyn Iterator<Item = Result<(u64, StrandVariant)>>,
    opts: &EngineOptions,
    progress: &(dyn Fn(u64) + Sync),
    sink: &mut Sink<'_>,
) -> Result<()> {
    let len = source.len();
    let mut last = 0usize;
    let mut checked = variants.map(move |item| {
        let (id, v) = item?;
        if v.pos >= len {
            return Err(crate::error::Error::Backend(format!(
                "variant at {} lies outside the strand of {len} bases",
                v.pos
            )));
        }
        if v.pos < last && opts.context.is_none() {
            return Err(crate::error::Error::Backend(format!(
                "variant at {} comes after one at {last}: a strand's variants must be sorted",
                v.pos
            )));
        }
        last = v.pos;
        Ok((id, v))
    });
    match opts.context {
        Some(n) => score_windowed(backend, tokenizer, source, &mut checked, opts, n, sink),
        None => score_cached(
            backend,
            tokenizer,
            source,
            &mut checked,
            opts,
            progress,
            sink,
        ),
    }
}

/// The naive way: every variant gets fresh REF and ALT windows starting `context` bases
/// upstream of it, scored whole; windows of many variants run as one batch.
fn score_windowed<B: Backend>(
    backend: &B,
    tokenizer: &Tokenizer,
    source: &mut dyn StrandSource,
    variants: &mut dyn Iterator<Item = Result<(u64, StrandVariant)>>,
    opts: &EngineOptions,
    context: usize,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let start = ScoreStream::new(backend, tokenizer, opts.bos)?.snapshot();
    let len = source.len();
    let mut group: Vec<(u64, StrandVariant)> = Vec::with_capacity(BATCH / 2);
    let mut window = Vec::new();
    let mut variants = variants.peekable();
    while variants.peek().is_some() {
        group.clear();
        while group.len() < BATCH / 2 {
            match variants.next() {
                Some(item) => group.push(item?),
                None => break,
            }
        }
        let mut seqs = Vec::with_capacity(2 * group.len());
        for (_, v) in &group {
            let from = v.pos.saturating_sub(context);
            let end = ref_end(len, v, opts.window);
            source.tokens(from, end, &mut window)?;
            let rel = StrandVariant {
                pos: v.pos - from,
                ref_len: v.ref_len,
                alt: v.alt.clone(),
            };
            seqs.push(window.clone());
            seqs.push(alt_tokens(&window, &rel, 0, opts.window));
        }
        let cols = stride_multiple(opts.stripe_len / seqs.len(), backend.checkpoint_stride());
        let scores = score_batch(backend, tokenizer, &start, &seqs, cols)?;
        for ((id, v), pair) in group.iter().zip(scores.chunks(2)) {
            let skip = v.pos - v.pos.saturating_sub(context);
            sink(*id, scores_of(&pair[0], &pair[1], skip))?;
        }
    }
    Ok(())
}

/// `n` rounded down to a multiple of `stride`, at least one stride.
fn stride_multiple(n: usize, stride: usize) -> usize {
    let stride = stride.max(1);
    (n / stride).max(1) * stride
}

/// A variant whose REF window or ALT continuation is still running.
#[derive(Default)]
struct InFlight {
    sums: Sums,
    /// REF window and ALT continuation still to finish (0, 1 or 2).
    waiting: u8,
}

/// Marks one of variant `id`'s two halves done, and hands it to `sink` once both are.
fn finish(
    flight: &mut std::collections::HashMap<u64, InFlight>,
    id: u64,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let f = flight.get_mut(&id).expect("a variant in flight");
    f.waiting -= 1;
    if f.waiting == 0 {
        let done = flight.remove(&id).expect("a variant in flight");
        sink(id, done.sums.finish())?;
    }
    Ok(())
}

/// The state-cached way: one pass over the strand copies the state at a checkpoint at or just
/// before each variant (the backend's checkpoint stride apart). REF's scores are read off the
/// pass itself; ALT's continuation replays the few bases from the checkpoint to the variant and
/// then runs the allele and the window, in batches.
fn score_cached<B: Backend>(
    backend: &B,
    tokenizer: &Tokenizer,
    source: &mut dyn StrandSource,
    variants: &mut dyn Iterator<Item = Result<(u64, StrandVariant)>>,
    opts: &EngineOptions,
    progress: &(dyn Fn(u64) + Sync),
    sink: &mut Sink<'_>,
) -> Result<()> {
    let len = source.len();
    let vocab = backend.config().vocab_size;
    let stride = backend.checkpoint_stride().max(1);
    let stripe = stride_multiple(opts.stripe_len, stride);
    let checkpoint = |v: &StrandVariant| v.pos / stride * stride;
    let max_checkpoints = if stride > 1 {
        snapshot_cap(backend.config(), opts.stripe_len)
    } else {
        MAX_CHECKPOINTS
    };
    let mut variants = variants.peekable();

    let mut stream = ScoreStream::new(backend, tokenizer, opts.bos)?;
    let mut flight: std::collections::HashMap<u64, InFlight> = Default::default();
    let mut pending: Vec<Pending> = Vec::new();
    let mut jobs: Vec<AltJob<B>> = Vec::new();
    let mut job_tokens = 0usize;
    let (mut scores, mut tokens) = (Vec::new(), Vec::new());
    let mut here: Vec<(u64, StrandVariant)> = Vec::new();
    let mut at = 0usize;
    while at < len && (variants.peek().is_some() || !pending.is_empty()) {
        // This stripe's checkpoints; the stripe ends early at the first one over the cap.
        let mut hi = (at + stripe).min(len);
        let mut cuts: Vec<usize> = Vec::new();
        here.clear();
        while let Some(item) = variants.peek() {
            let Ok((_, v)) = item else {
                // Hand the error on.
                return variants.next().map_or(Ok(()), |e| e.map(|_| ()));
            };
            let c = checkpoint(v);
            if c >= hi {
                break;
            }
            if cuts.last() != Some(&(c - at)) {
                if cuts.len() == max_checkpoints {
                    hi = c;
                    break;
                }
                cuts.push(c - at);
            }
            if let Some(item) = variants.next() {
                here.push(item?);
            }
        }
        // The stripe's tokens and those the ALT continuations of its variants read past it.
        let need = here
            .iter()
            .map(|(_, v)| ref_end(len, v, opts.window))
            .max()
            .unwrap_or(hi)
            .max(hi);
        source.tokens(at, need, &mut tokens)?;
        for (id, v) in &here {
            pending.push(Pending {
                slot: *id,
                start: v.pos,
                end: ref_end(len, v, opts.window),
            });
            flight.insert(
                *id,
                InFlight {
                    sums: Sums::default(),
                    waiting: 2,
                },
            );
        }
        let snapshots: Vec<std::sync::Arc<Snapshot<B>>> = stream
            .push_checkpointed(&tokens[..hi - at], &mut scores, &cuts)?
            .into_iter()
            .map(std::sync::Arc::new)
            .collect();
        progress((hi - at) as u64);
        for p in &pending {
            let (lo, up) = (p.start.max(at), p.end.min(hi));
            if lo < up {
                let s = &mut flight.get_mut(&p.slot).expect("a variant in flight").sums;
                s.ref_sum += sum_scored(&scores[lo - at..up - at]);
                if lo == p.start {
                    s.ref_first = first_scored(&scores[lo - at..]);
                }
            }
        }
        let mut k = 0;
        while k < pending.len() {
            if pending[k].end <= hi {
                let p = pending.swap_remove(k);
                finish(&mut flight, p.slot, sink)?;
            } else {
                k += 1;
            }
        }
        for (id, v) in here.drain(..) {
            let c = checkpoint(&v);
            let k = cuts.partition_point(|&cut| cut < c - at);
            let rel = StrandVariant {
                pos: v.pos - at,
                ref_len: v.ref_len,
                alt: v.alt,
            };
            let alt = alt_tokens(&tokens, &rel, c - at, opts.window);
            if alt.len() == 1 {
                // A one-token continuation from the variant itself (an SNV with `--window 0`,
                // or at the strand's end): its score is in the checkpoint's next-token row,
                // with nothing to run.
                let mut one = Vec::with_capacity(1);
                let row = snapshots[k].next_row.as_deref();
                observed_scores(tokenizer, row, &[], vocab, &alt, &mut one);
                let s = &mut flight.get_mut(&id).expect("a variant in flight").sums;
                s.alt_first = first_scored(&one);
                s.alt_sum = sum_scored(&one);
                finish(&mut flight, id, sink)?;
                continue;
            }
            job_tokens += alt.len();
            jobs.push(AltJob {
                slot: id,
                from: std::sync::Arc::clone(&snapshots[k]),
                tokens: alt,
                skip: v.pos - c,
            });
            // A batch fills a stripe's worth of tokens, holding at most as many snapshots
            // as a stripe copies (on the CPU: exactly BATCH continuations).
            if jobs.len() >= BATCH
                && (job_tokens >= opts.stripe_len || jobs.len() >= max_checkpoints)
            {
                for id in run_alt_batch(backend, tokenizer, &mut jobs, &mut flight)? {
                    finish(&mut flight, id, sink)?;
                }
                job_tokens = 0;
            }
        }
        // Snapshots no continuation holds (pending ones are handed back after their batch).
        for snapshot in snapshots {
            recycle(backend, snapshot);
        }
        at = hi;
    }
    for id in run_alt_batch(backend, tokenizer, &mut jobs, &mut flight)? {
        finish(&mut flight, id, sink)?;
    }
    Ok(())
}
