//! `ssmgen embed`: hidden states of a sequence file, mean-pooled per record, per window or
//! reported per base.
//!
//! Every pooling is a grid of windows over a span: one window for the record, `size`-base
//! windows every `stride` bases, or one window per base. The forward pass adds each base's
//! hidden state to the windows that contain it and writes a window out as soon as its last base
//! has gone by, so memory holds only the open windows. With the reverse strand, a first pass
//! over the reverse complement does the same from the span's end and spools its window means
//! to a temporary file; the forward pass then averages them with its own (hidden states of the
//! reverse pass are mapped back to the forward position of their base).

use std::collections::BTreeMap;
use std::path::Path;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::input::span::{self, BaseSource};
use crate::input::{Region, SequenceFile};
use crate::likelihood::Strand;
use crate::spool::Spool;
use crate::tokenizer::Tokenizer;

/// How hidden states are pooled into rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// One row per record or region: the mean over all its bases.
    Record,
    /// One row per window of `size` bases, a window starting every `stride` bases from the
    /// span's start (the last ones clipped to the span's end).
    Windows {
        /// Bases per window.
        size: u64,
        /// Bases between window starts.
        stride: u64,
    },
    /// One row per base.
    PerBase,
}

/// Settings of an embedding run.
#[derive(Clone, Debug)]
pub struct EmbedOptions {
    /// Hidden state after this block (0-based); `None` for the final normalised state.
    pub layer: Option<usize>,
    /// How rows are formed.
    pub pooling: Pooling,
    /// Strand(s): `Both` averages the two.
    pub strand: Strand,
    /// Tokens per stripe.
    pub stripe_len: usize,
    /// BOS token run before each span, if the model uses one.
    pub bos: Option<u32>,
    /// Longest span accepted with [`Pooling::PerBase`].
    pub per_base_cap: u64,
    /// Regions are shards of their records: windows are laid out from the record's first base
    /// (a shard reports the windows that start inside it, each to its full size), and the model
    /// first runs over up to this many bases upstream (reverse strand: downstream) of what those
    /// windows need. `None`: each region is a sequence of its own, windows laid out from its start.
    pub warmup: Option<u64>,
}

/// One output row: a window of a record and its embedding.
#[derive(Debug)]
pub struct EmbeddingRow<'a> {
    /// Record name.
    pub chrom: &'a str,
    /// 0-based start.
    pub start: u64,
    /// 0-based exclusive end.
    pub end: u64,
    /// The record's name for [`Pooling::Record`], else `chrom:start-end` (1-based inclusive).
    pub name: &'a str,
    /// The embedding (`hidden_size` values).
    pub values: &'a [f32],
}

/// Receives rows in order.
pub trait EmbeddingSink {
    /// Writes one row.
    fn write_row(&mut self, row: &EmbeddingRow<'_>) -> Result<()>;
    /// All rows are written: put the output into place.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// What a run did besides writing rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmbedSummary {
    /// Rows written.
    pub rows: u64,
    /// Windows left out because all their bases were N.
    pub skipped_n_only: u64,
}

/// Window `k` of a span: `[start + k * stride, min(that + size, end))`; only windows
/// `first..stop` are reported.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    start: u64,
    end: u64,
    size: u64,
    stride: u64,
    first: u64,
    stop: u64,
}

impl Grid {
    fn count(&self) -> u64 {
        (self.end - self.start).div_ceil(self.stride)
    }
    fn bounds(&self, k: u64) -> (u64, u64) {
        let s = self.start + k * self.stride;
        (s, (s + self.size).min(self.end))
    }
    /// The reported windows holding position `p`.
    fn containing(&self, p: u64) -> std::ops::RangeInclusive<u64> {
        let off = p - self.start;
        let lo = (off + 1).saturating_sub(self.size).div_ceil(self.stride);
        let hi = (off / self.stride).min(self.count() - 1);
        // Every grid that is embedded reports at least one window (`stop > first`).
        lo.max(self.first)..=hi.min(self.stop.saturating_sub(1))
    }
    /// The bases the reported windows cover.
    fn needed(&self) -> (u64, u64) {
        (self.bounds(self.first).0, self.bounds(self.stop - 1).1)
    }
}

/// Sums of the windows that have started but not ended.
#[derive(Default)]
pub(crate) struct OpenWindows {
    open: BTreeMap<u64, (Vec<f64>, u64)>,
}

impl OpenWindows {
    /// Adds the hidden state `row` of position `p` (an N when `is_n`).
    pub(crate) fn add(&mut self, grid: &Grid, p: u64, row: Option<&[f32]>, is_n: bool) {
        for k in grid.containing(p) {
            let (sum, real) = self.open.entry(k).or_default();
            if let Some(row) = row {
                if sum.is_empty() {
                    sum.resize(row.len(), 0.0);
                }
                sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64);
            }
            *real += u64::from(!is_n);
        }
    }

    /// Removes and returns the windows `done` accepts, in key order.
    fn take(&mut self, done: impl Fn(u64) -> bool) -> Vec<(u64, Vec<f64>, u64)> {
        let keys: Vec<u64> = self.open.keys().copied().filter(|&k| done(k)).collect();
        keys.into_iter()
            .map(|k| {
                let (sum, real) = self.open.remove(&k).expect("key listed above");
                (k, sum, real)
            })
            .collect()
    }
}

/// Hidden states of one sequence, stripe by stripe.
struct HiddenStream<'a, B: Backend> {
    backend: &'a B,
    state: B::State,
    layer: Option<usize>,
}

impl<'a, B: Backend> HiddenStream<'a, B> {
    fn new(backend: &'a B, layer: Option<usize>, bos: Option<u32>) -> Result<Self> {
        let mut state = backend.new_state()?;
        if let Some(bos) = bos {
            backend.forward_hidden(&mut state, &[bos], layer, &mut Vec::new())?;
        }
        Ok(HiddenStream {
            backend,
            state,
            layer,
        })
    }

    fn push(&mut self, tokens: &[u32], hidden: &mut Vec<f32>) -> Result<()> {
        self.backend
            .forward_hidden(&mut self.state, tokens, self.layer, hidden)
    }
}

/// Computes embeddings of sequence files with one backend.
pub struct Embedder<'a, B: Backend> {
    backend: &'a B,
    tokenizer: Tokenizer,
    options: EmbedOptions,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<'a, B: Backend> Embedder<'a, B> {
    /// An embedder; `progress` is called with the number of bases just run (per strand pass).
    pub fn new(
        backend: &'a B,
        options: EmbedOptions,
        progress: &'a (dyn Fn(u64) + Sync),
    ) -> Result<Self> {
        crate::backend::check_layer(backend.config(), options.layer)?;
        Ok(Embedder {
            tokenizer: Tokenizer::new(backend.config()),
            backend,
            options,
            progress,
        })
    }

    /// Embeds `regions` of `file` (every record when empty) into `sink`.
    pub fn run(
        &self,
        file: &mut SequenceFile,
        regions: &[Region],
        sink: &mut dyn EmbeddingSink,
    ) -> Result<EmbedSummary> {
        let mut summary = EmbedSummary::default();
        // Record lengths, for shards (windows laid out from the record's start).
        let lengths: std::collections::HashMap<String, u64> = match &*file {
            SequenceFile::Indexed(indexed) => indexed.records().into_iter().collect(),
            SequenceFile::Stream(_) => Default::default(),
        };
        span::for_each_span(file, regions, |path, name, start, end, src| {
            let length = lengths.get(name).copied().unwrap_or(end);
            self.embed_span(path, name, (start, end, length), src, sink, &mut summary)
        })?;
        Ok(summary)
    }

    /// Embeds bases `[start, end)` of record `name`, which has `length` bases
    /// (`span = (start, end, length)`).
    fn embed_span(
        &self,
        path: &Path,
        name: &str,
        span: (u64, u64, u64),
        src: &mut dyn BaseSource,
        sink: &mut dyn EmbeddingSink,
        summary: &mut EmbedSummary,
    ) -> Result<()> {
        let (start, end, length) = span;
        if end <= start {
            return Ok(());
        }
        let mut grid = grid_for(&self.options, path, name, start, end)?;
        if self.options.warmup.is_some() {
            // A shard: windows laid out from the record's start, those starting in the shard.
            if self.options.pooling == Pooling::Record && (start, end) != (0, length) {
                return Err(Error::format(
                    path,
                    format!(
                        "{name}:{}-{end}: one embedding per record cannot be split into shards; \
                         use --window or --per-base, or whole-record shards",
                        start + 1
                    ),
                ));
            }
            grid.start = 0;
            grid.end = length;
            if self.options.pooling == Pooling::Record {
                (grid.size, grid.stride) = (length, length);
            }
            grid.first = start.div_ceil(grid.stride);
            grid.stop = end.div_ceil(grid.stride).min(grid.count());
            if grid.first >= grid.stop {
                return Ok(());
            }
        }
        self.embed_grid(path, name, length, grid, src, sink, summary)
    }

    /// Embeds the reported windows of `grid` on record `name` of `length` bases, running the
    /// model over the bases they need plus the warm-up on each side. Stripes are aligned to
    /// the scan's ends, so a scan over the whole record runs exactly an unsharded run's stripes.
    #[allow(clippy::too_many_arguments)]
    fn embed_grid(
        &self,
        path: &Path,
        name: &str,
        length: u64,
        grid: Grid,
        src: &mut dyn BaseSource,
        sink: &mut dyn EmbeddingSink,
        summary: &mut EmbedSummary,
    ) -> Result<()> {
        let (need_lo, need_hi) = grid.needed();
        let warmup = self.options.warmup.unwrap_or(0);
        let (scan_lo, scan_hi) = (
            need_lo.saturating_sub(warmup),
            need_hi.saturating_add(warmup).min(length.max(need_hi)),
        );
        let d = self.backend.config().hidden_size;
        let stripe = self.options.stripe_len as u64;
        let n = self.tokenizer.n_token();
        let (layer, bos) = (self.options.layer, self.options.bos);
        let (mut bases, mut tokens, mut hidden) = (Vec::new(), Vec::new(), Vec::new());

        // Reverse strand: window means from the span's end, spooled from the last window down.
        let mut spool = if self.options.strand != Strand::Forward {
            let mut spool = Spool::new()?;
            let mut stream = HiddenStream::new(self.backend, layer, bos)?;
            let mut open = OpenWindows::default();
            let mut hi = scan_hi;
            while hi > need_lo {
                let lo = hi.saturating_sub(stripe).max(need_lo);
                src.fetch(lo, hi, &mut bases)?;
                span::tokenize(&self.tokenizer, path, name, lo, &bases, &mut tokens)?;
                self.tokenizer.reverse_complement(&mut tokens);
                stream.push(&tokens, &mut hidden)?;
                // Row i of the reverse pass is the base at forward position hi - 1 - i; those
                // from `need_hi` on are warm-up.
                for (i, &t) in tokens.iter().enumerate() {
                    let p = hi - 1 - i as u64;
                    if p < need_hi {
                        let row = &hidden[i * d..(i + 1) * d];
                        open.add(&grid, p, Some(row), t == n);
                    }
                }
                // Every window starting at or after `lo` has now seen all its bases.
                for (k, sum, _) in open.take(|k| grid.bounds(k).0 >= lo).into_iter().rev() {
                    let (ws, we) = grid.bounds(k);
                    spool.append(&mean_of(&sum, we - ws))?;
                }
                (self.progress)(hi - lo);
                hi = lo;
            }
            Some(spool)
        } else {
            None
        };

        // Forward sweep: the forward strand's own states (unless reverse only), N counts, and
        // each window written once its last base has gone by.
        let mut stream = match self.options.strand {
            Strand::Reverse => None,
            _ => Some(HiddenStream::new(self.backend, layer, bos)?),
        };
        let mut open = OpenWindows::default();
        // Without a forward pass there is nothing to warm up.
        let mut lo = if stream.is_some() { scan_lo } else { need_lo };
        while lo < need_hi {
            let hi = (lo + stripe).min(need_hi);
            src.fetch(lo, hi, &mut bases)?;
            span::tokenize(&self.tokenizer, path, name, lo, &bases, &mut tokens)?;
            if let Some(stream) = &mut stream {
                stream.push(&tokens, &mut hidden)?;
                (self.progress)(hi - lo);
            }
            for (i, &t) in tokens.iter().enumerate() {
                let p = lo + i as u64;
                if p >= need_lo {
                    let row = stream.is_some().then(|| &hidden[i * d..(i + 1) * d]);
                    open.add(&grid, p, row, t == n);
                }
            }
            emit_done(
                self.options.pooling,
                &grid,
                &mut open,
                hi,
                spool.as_mut(),
                name,
                d,
                sink,
                summary,
            )?;
            lo = hi;
        }
        Ok(())
    }
}

/// The windows of span `[start, end)` of record `name` that `options.pooling` asks for.
pub(crate) fn grid_for(
    options: &EmbedOptions,
    path: &Path,
    name: &str,
    start: u64,
    end: u64,
) -> Result<Grid> {
    Ok(match options.pooling {
        Pooling::Record => Grid {
            start,
            end,
            size: end - start,
            stride: end - start,
            first: 0,
            stop: 1,
        },
        Pooling::Windows { size, stride } => Grid {
            start,
            end,
            size,
            stride,
            first: 0,
            stop: (end - start).div_ceil(stride),
        },
        Pooling::PerBase => {
            if end - start > options.per_base_cap {
                return Err(Error::format(
                    path,
                    format!(
                        "per-base embeddings of {name}:{}-{end} ({} bases) exceed the cap of \
                         {} bases: give a shorter --region or raise --max-per-base",
                        start + 1,
                        end - start,
                        options.per_base_cap
                    ),
                ));
            }
            Grid {
                start,
                end,
                size: 1,
                stride: 1,
                first: 0,
                stop: end - start,
            }
        }
    })
}

/// Writes every open window of `grid` that ends at or before `hi`, averaged with its reverse
/// strand mean from `spool` when there is one (window `k`'s mean is spooled at
/// `stop - 1 - k`, the last reported window first); windows of N only are counted, not
/// written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit_done(
    pooling: Pooling,
    grid: &Grid,
    open: &mut OpenWindows,
    hi: u64,
    mut spool: Option<&mut Spool>,
    name: &str,
    d: usize,
    sink: &mut dyn EmbeddingSink,
    summary: &mut EmbedSummary,
) -> Result<()> {
    let mut reverse_mean = Vec::new();
    for (k, sum, real) in open.take(|k| grid.bounds(k).1 <= hi) {
        let (ws, we) = grid.bounds(k);
        if real == 0 {
            summary.skipped_n_only += 1;
            continue;
        }
        let mut values = mean_of(&sum, we - ws);
        if let Some(spool) = spool.as_deref_mut() {
            let at = (grid.stop - 1 - k) * d as u64;
            spool.read(at, at + d as u64, &mut reverse_mean)?;
            if values.is_empty() {
                values.clone_from(&reverse_mean);
            } else {
                for (v, r) in values.iter_mut().zip(&reverse_mean) {
                    *v = 0.5 * (*v + r);
                }
            }
        }
        let label = match pooling {
            Pooling::Record => name.to_string(),
            _ => format!("{name}:{}-{we}", ws + 1),
        };
        sink.write_row(&EmbeddingRow {
            chrom: name,
            start: ws,
            end: we,
            name: &label,
            values: &values,
        })?;
        summary.rows += 1;
    }
    Ok(())
}

/// `sum / count`, as f32.
fn mean_of(sum: &[f64], count: u64) -> Vec<f32> {
    sum.iter()
        .map(|&s| (s / count.max(1) as f64) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_windows_holding_a_position_match_their_definition() {
        for (size, stride) in [(5, 2), (4, 4), (3, 5), (1, 1), (13, 13)] {
            let mut grid = Grid {
                start: 10,
                end: 23,
                size,
                stride,
                first: 0,
                stop: 0,
            };
            grid.stop = grid.count();
            for p in 10..23 {
                let expected: Vec<u64> = (0..grid.count())
                    .filter(|&k| {
                        let (s, e) = grid.bounds(k);
                        s <= p && p < e
                    })
                    .collect();
                let got: Vec<u64> = grid.containing(p).collect();
                assert_eq!(got, expected, "size {size} stride {stride} p {p}");
            }
        }
    }

    #[test]
    fn open_windows_sum_their_rows_and_count_real_bases() {
        let grid = Grid {
            start: 0,
            end: 6,
            size: 4,
            stride: 2,
            first: 0,
            stop: 3,
        };
        let mut open = OpenWindows::default();
        for p in 0..6u64 {
            open.add(&grid, p, Some(&[p as f32, 1.0]), p == 1);
        }
        let done = open.take(|_| true);
        let means: Vec<(u64, Vec<f32>, u64)> = done
            .into_iter()
            .map(|(k, sum, real)| {
                let (s, e) = grid.bounds(k);
                (k, mean_of(&sum, e - s), real)
            })
            .collect();
        // Windows [0,4), [2,6), [4,6).
        assert_eq!(means[0], (0, vec![1.5, 1.0], 3));
        assert_eq!(means[1], (1, vec![3.5, 1.0], 4));
        assert_eq!(means[2], (2, vec![4.5, 1.0], 2));
    }
}
