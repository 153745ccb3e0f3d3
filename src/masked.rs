//! Masked (bidirectional) language models over windows: per-base log-probabilities and
//! zero-shot variant scores from a [`CaduceusGraph`]. Knows nothing of the device.
//!
//! A record longer than the model's window is covered by windows of `window_len` bases that
//! overlap by `overlap`; each base is reported from the window in which it is most central.
//! A record shorter than the window is one window.

use std::path::Path;

use crate::embed::{EmbedOptions, EmbedSummary, EmbeddingSink, OpenWindows, emit_done, grid_for};
use crate::error::{Error, Result};
use crate::graph::Ops;
use crate::graph::caduceus::CaduceusGraph;
use crate::input::span::{self, BaseSource};
use crate::input::{Region, SequenceFile};
use crate::likelihood::Strand;
use crate::model::caduceus::{BASE_TOKENS, MASK_TOKEN};
use crate::output::TrackSink;
use crate::tokenizer::Tokenizer;
use crate::variants::engine::StrandScores;
use crate::variants::{Skip, VariantFile, VariantResult};

/// Default window when the checkpoint does not say its training length.
pub const DEFAULT_WINDOW: usize = 131_072;

/// The Caduceus tokenizer (A=7, C=8, G=9, T=10, N=11; IUPAC codes as N).
pub fn tokenizer() -> Tokenizer {
    let id = |b: char| {
        BASE_TOKENS
            .iter()
            .find(|(c, _)| *c == b)
            .map_or(11, |p| p.1)
    };
    Tokenizer::from_ids([id('A'), id('C'), id('G'), id('T'), id('N')])
}

/// One window of a span: bases `[start, end)`, reporting bases `[keep_start, keep_end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First base of the window.
    pub start: usize,
    /// One past its last base.
    pub end: usize,
    /// First base this window reports.
    pub keep_start: usize,
    /// One past the last base it reports.
    pub keep_end: usize,
}

/// Windows of `window` bases overlapping by `overlap` that cover `[0, len)`; every base is
/// kept by exactly one window, the one where it is most central (the last window is shifted
/// back to end at `len`).
pub fn plan_windows(len: usize, window: usize, overlap: usize) -> Vec<Window> {
    if len == 0 {
        return Vec::new();
    }
    let window = window.max(1);
    if len <= window {
        return vec![Window {
            start: 0,
            end: len,
            keep_start: 0,
            keep_end: len,
        }];
    }
    let stride = window.saturating_sub(overlap).max(1);
    let mut starts = Vec::new();
    let mut s = 0;
    while s + window < len {
        starts.push(s);
        s += stride;
    }
    starts.push(len - window);
    starts.dedup();
    let mut out = Vec::with_capacity(starts.len());
    for (i, &s) in starts.iter().enumerate() {
        // Between two windows, the base equidistant from both centres is the midpoint of
        // their overlap.
        let keep_start = if i == 0 {
            0
        } else {
            (s + starts[i - 1] + window) / 2
        };
        let keep_end = match starts.get(i + 1) {
            Some(&next) => (next + s + window) / 2,
            None => len,
        };
        out.push(Window {
            start: s,
            end: s + window,
            keep_start,
            keep_end,
        });
    }
    out
}

/// Settings of a masked-LM run.
#[derive(Clone, Copy, Debug)]
pub struct MaskedOptions {
    /// Bases per window.
    pub window_len: usize,
    /// Overlap of consecutive windows.
    pub overlap: usize,
    /// Windows (or masked copies) per device call.
    pub batch: usize,
    /// Score the forward strand.
    pub forward: bool,
    /// Score the reverse complement.
    pub reverse: bool,
    /// Pseudo-likelihood: each base scored with itself masked (one pass per base).
    pub pseudo: bool,
}

/// Runs a masked model over sequence files.
pub struct MaskedScorer<'a, O: Ops> {
    graph: &'a CaduceusGraph<O>,
    tokenizer: Tokenizer,
    options: MaskedOptions,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<'a, O: Ops> MaskedScorer<'a, O> {
    /// A scorer; `progress` gets the number of bases just scored.
    pub fn new(
        graph: &'a CaduceusGraph<O>,
        options: MaskedOptions,
        progress: &'a (dyn Fn(u64) + Sync),
    ) -> Self {
        MaskedScorer {
            graph,
            tokenizer: tokenizer(),
            options,
            progress,
        }
    }

    /// Per-base log P(observed base) of `regions` of `file` (every record when empty).
    pub fn likelihood(
        &self,
        file: &mut SequenceFile,
        regions: &[Region],
        sink: &mut dyn TrackSink,
    ) -> Result<()> {
        // Windows need random access: a streamed record is held (1 byte per base).
        span::for_each_span(file, regions, |path, name, start, end, src| {
            self.score_span(path, name, start, end, src, sink)
        })
    }

    fn score_span(
        &self,
        path: &Path,
        name: &str,
        start: u64,
        end: u64,
        src: &mut dyn BaseSource,
        sink: &mut dyn TrackSink,
    ) -> Result<()> {
        let o = self.options;
        let len = (end - start) as usize;
        let windows = plan_windows(len, o.window_len, o.overlap);
        sink.begin(name, start)?;
        let mut bases = Vec::new();
        let mut tokens = Vec::new();
        for group in windows.chunks(o.batch.max(1)) {
            // Windows of one group have equal lengths (all `window_len`, or one short record).
            let mut batch = Vec::new();
            let mut kept = Vec::new();
            for w in group {
                src.fetch(start + w.start as u64, start + w.end as u64, &mut bases)?;
                span::tokenize(
                    &self.tokenizer,
                    path,
                    name,
                    start + w.start as u64,
                    &bases,
                    &mut tokens,
                )?;
                batch.extend_from_slice(&tokens);
                kept.push(bases[w.keep_start - w.start..w.keep_end - w.start].to_vec());
            }
            let wlen = group[0].end - group[0].start;
            let fwd = if o.forward {
                Some(self.observed_logp(&batch, group.len(), wlen, false)?)
            } else {
                None
            };
            let rev = if o.reverse {
                Some(self.observed_logp(&batch, group.len(), wlen, true)?)
            } else {
                None
            };
            for (i, (w, kept_bases)) in group.iter().zip(&kept).enumerate() {
                let slice = |v: &Vec<f32>| -> Vec<f32> {
                    v[i * wlen + w.keep_start - w.start..i * wlen + w.keep_end - w.start].to_vec()
                };
                let f = fwd.as_ref().map(slice);
                let r = rev.as_ref().map(slice);
                sink.write(
                    start + w.keep_start as u64,
                    kept_bases,
                    f.as_deref(),
                    r.as_deref(),
                )?;
                (self.progress)(kept_bases.len() as u64);
            }
        }
        sink.end()
    }

    /// log P(observed token) at every position of `batch` stacked windows of `wlen` tokens, at
    /// forward positions; `reverse` scores the reverse complement (each window reverse-
    /// complemented, its scores mirrored back). `NaN` for N.
    fn observed_logp(
        &self,
        batch: &[u32],
        windows: usize,
        wlen: usize,
        reverse: bool,
    ) -> Result<Vec<f32>> {
        let mut tokens = batch.to_vec();
        if reverse {
            for w in tokens.chunks_mut(wlen) {
                self.tokenizer.reverse_complement(w);
            }
        }
        let mut scores = if self.options.pseudo {
            self.pseudo_logp(&tokens, windows, wlen)?
        } else {
            let mut logits = Vec::new();
            self.graph.logits_host(&tokens, windows, &mut logits)?;
            let v = self.graph.config().vocab_size;
            tokens
                .iter()
                .zip(logits.chunks_exact(v))
                .map(|(&t, row)| self.score_of(t, row))
                .collect::<Vec<_>>()
        };
        if reverse {
            for w in scores.chunks_mut(wlen) {
                w.reverse();
            }
        }
        Ok(scores)
    }

    /// The pseudo-likelihood: each position scored in a copy of its window with it masked.
    fn pseudo_logp(&self, tokens: &[u32], windows: usize, wlen: usize) -> Result<Vec<f32>> {
        let v = self.graph.config().vocab_size;
        let mut out = vec![f32::NAN; tokens.len()];
        let per_call = self.options.batch.max(1);
        for w in 0..windows {
            let window = &tokens[w * wlen..(w + 1) * wlen];
            let sites: Vec<usize> = (0..wlen)
                .filter(|&p| self.tokenizer.is_scored(window[p]))
                .collect();
            for group in sites.chunks(per_call) {
                let mut copies = Vec::with_capacity(group.len() * wlen);
                for &p in group {
                    copies.extend_from_slice(window);
                    let at = copies.len() - wlen + p;
                    copies[at] = MASK_TOKEN;
                }
                let mut logits = Vec::new();
                self.graph.logits_host(&copies, group.len(), &mut logits)?;
                for (b, &p) in group.iter().enumerate() {
                    let row = &logits[(b * wlen + p) * v..(b * wlen + p + 1) * v];
                    out[w * wlen + p] = self.score_of(window[p], row);
                }
            }
        }
        Ok(out)
    }

    /// log-softmax of `row` at `token`, `NaN` for a token that gets no score (N).
    fn score_of(&self, token: u32, row: &[f32]) -> f32 {
        if !self.tokenizer.is_scored(token) {
            return f32::NAN;
        }
        log_softmax_at(row, token as usize)
    }

    /// Zero-shot scores of the variants `indices` of `file` on one chromosome's `bases`:
    /// `llr = logit[ALT] − logit[REF]` at the site masked, in a window centred on it, on the
    /// given strand and on the reverse complement. SNVs only.
    pub fn score_variants(
        &self,
        path: &Path,
        name: &str,
        bases: &[u8],
        file: &VariantFile,
        indices: &[usize],
    ) -> Result<Vec<VariantResult>> {
        let mut results = vec![VariantResult::default(); indices.len()];
        let mut sites = Vec::new();
        for (slot, &i) in indices.iter().enumerate() {
            let v = &file.variants[i];
            if let Some(skip) = crate::variants::check(v, bases) {
                results[slot].skip = Some(skip);
            } else if v.reference.len() != 1 || v.alt.len() != 1 {
                results[slot].skip = Some(Skip::NotSnv);
            } else {
                let mut ids = Vec::new();
                let pair = format!("{}{}", v.reference, v.alt);
                self.tokenizer
                    .encode(pair.as_bytes(), &mut ids)
                    .map_err(|_| {
                        Error::format(path, format!("{}:{}: allele has no token", v.chrom, v.pos))
                    })?;
                sites.push((slot, (v.pos - 1) as usize, ids[0], ids[1]));
            }
        }
        let len = bases.len();
        let wlen = self.options.window_len.min(len);
        let mut tokens = Vec::new();
        for group in sites.chunks(self.options.batch.max(1)) {
            let mut fwd = Vec::with_capacity(group.len() * wlen);
            let mut rev = Vec::with_capacity(group.len() * wlen);
            let mut at = Vec::with_capacity(group.len());
            for &(_, p, _, _) in group {
                let start = p.saturating_sub(wlen / 2).min(len - wlen);
                let window = &bases[start..start + wlen];
                span::tokenize(
                    &self.tokenizer,
                    path,
                    name,
                    start as u64,
                    window,
                    &mut tokens,
                )?;
                tokens[p - start] = MASK_TOKEN;
                fwd.extend_from_slice(&tokens);
                tokens.reverse();
                for t in tokens.iter_mut() {
                    if *t != MASK_TOKEN {
                        *t = self.tokenizer.complement(*t);
                    }
                }
                rev.extend_from_slice(&tokens);
                at.push(p - start);
            }
            let v = self.graph.config().vocab_size;
            let (mut lf, mut lr) = (Vec::new(), Vec::new());
            self.graph.logits_host(&fwd, group.len(), &mut lf)?;
            self.graph.logits_host(&rev, group.len(), &mut lr)?;
            for (b, (&(slot, _, r, a), &q)) in group.iter().zip(&at).enumerate() {
                let row_f = &lf[(b * wlen + q) * v..(b * wlen + q + 1) * v];
                let q_rev = wlen - 1 - q;
                let row_r = &lr[(b * wlen + q_rev) * v..(b * wlen + q_rev + 1) * v];
                let (rc_r, rc_a) = (self.tokenizer.complement(r), self.tokenizer.complement(a));
                let masked = |llr: f32| StrandScores {
                    llr: Some(llr as f64),
                    delta_ll: f64::NAN,
                };
                results[slot].fwd = Some(masked(row_f[a as usize] - row_f[r as usize]));
                results[slot].rev = Some(masked(row_r[rc_a as usize] - row_r[rc_r as usize]));
            }
            (self.progress)(group.len() as u64);
        }
        Ok(results)
    }
}

/// Embeddings from a masked model: each base's final hidden state from the window where it is
/// most central (windows run one at a time, so memory holds one window's states), pooled as
/// `options.pooling` asks. RCPS models give `d_model` values per base, the two halves averaged
/// after flipping the RC half's channels (per base; pooled over a sequence this is
/// PlantCaduceus' averaging), or both halves (`2 · d_model`) with `rc_halves`. With the reverse
/// strand, the reverse complement's states are mapped back to their bases' forward positions.
pub struct MaskedEmbedder<'a, O: Ops> {
    graph: &'a CaduceusGraph<O>,
    tokenizer: Tokenizer,
    windows: MaskedOptions,
    options: EmbedOptions,
    rc_halves: bool,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<'a, O: Ops> MaskedEmbedder<'a, O> {
    /// An embedder; `options.layer` must be `None` (final states only).
    pub fn new(
        graph: &'a CaduceusGraph<O>,
        windows: MaskedOptions,
        options: EmbedOptions,
        rc_halves: bool,
        progress: &'a (dyn Fn(u64) + Sync),
    ) -> Result<Self> {
        if options.layer.is_some() {
            return Err(Error::Backend(
                "--layer is not supported for masked models: their final states only".into(),
            ));
        }
        Ok(MaskedEmbedder {
            graph,
            tokenizer: tokenizer(),
            windows,
            options,
            rc_halves,
            progress,
        })
    }

    /// Values per embedding row.
    pub fn dim(&self) -> usize {
        let c = self.graph.config();
        if c.rcps && self.rc_halves {
            2 * c.d_model
        } else {
            c.d_model
        }
    }

    /// Embeds `regions` of `file` (every record when empty) into `sink`.
    pub fn run(
        &self,
        file: &mut SequenceFile,
        regions: &[Region],
        sink: &mut dyn EmbeddingSink,
    ) -> Result<EmbedSummary> {
        let mut summary = EmbedSummary::default();
        span::for_each_span(file, regions, |path, name, start, end, src| {
            self.embed_span(path, name, start, end, src, sink, &mut summary)
        })?;
        Ok(summary)
    }

    #[allow(clippy::too_many_arguments)]
    fn embed_span(
        &self,
        path: &Path,
        name: &str,
        start: u64,
        end: u64,
        src: &mut dyn BaseSource,
        sink: &mut dyn EmbeddingSink,
        summary: &mut EmbedSummary,
    ) -> Result<()> {
        if end <= start {
            return Ok(());
        }
        let grid = grid_for(&self.options, path, name, start, end)?;
        let len = (end - start) as usize;
        let (forward, reverse) = match self.options.strand {
            Strand::Forward => (true, false),
            Strand::Reverse => (false, true),
            Strand::Both => (true, true),
        };
        let d = self.dim();
        let n = self.tokenizer.n_token();
        let mut open = OpenWindows::default();
        let (mut bases, mut tokens) = (Vec::new(), Vec::new());
        for w in plan_windows(len, self.windows.window_len, self.windows.overlap) {
            src.fetch(start + w.start as u64, start + w.end as u64, &mut bases)?;
            span::tokenize(
                &self.tokenizer,
                path,
                name,
                start + w.start as u64,
                &bases,
                &mut tokens,
            )?;
            let wlen = tokens.len();
            let fwd = if forward {
                Some(self.rows(&tokens, false)?)
            } else {
                None
            };
            let rev = if reverse {
                let mut rc = tokens.clone();
                self.tokenizer.reverse_complement(&mut rc);
                Some(self.rows(&rc, true)?)
            } else {
                None
            };
            let mut row = vec![0.0f32; d];
            for i in w.keep_start - w.start..w.keep_end - w.start {
                let f = fwd.as_ref().map(|h| &h[i * d..(i + 1) * d]);
                // Row wlen - 1 - i of the reverse complement is this base.
                let r = rev.as_ref().map(|h| &h[(wlen - 1 - i) * d..(wlen - i) * d]);
                match (f, r) {
                    (Some(f), Some(r)) => {
                        for ((o, a), b) in row.iter_mut().zip(f).zip(r) {
                            *o = 0.5 * (a + b);
                        }
                    }
                    (Some(x), None) | (None, Some(x)) => row.copy_from_slice(x),
                    (None, None) => unreachable!("at least one strand runs"),
                }
                let pos = start + (w.start + i) as u64;
                open.add(&grid, pos, Some(&row), tokens[i] == n);
            }
            let hi = start + w.keep_end as u64;
            emit_done(
                self.options.pooling,
                &grid,
                &mut open,
                hi,
                None,
                name,
                d,
                sink,
                summary,
            )?;
            (self.progress)((w.keep_end - w.keep_start) as u64);
        }
        Ok(())
    }

    /// Per-base rows (`dim()` values) of one window's tokens; `rc` marks a reverse-complement
    /// pass, whose full RCPS rows are channel-flipped to line up with the forward strand's.
    fn rows(&self, tokens: &[u32], rc: bool) -> Result<Vec<f32>> {
        let c = self.graph.config();
        let mut hidden = Vec::new();
        self.graph.hidden_host(tokens, 1, &mut hidden)?;
        if !c.rcps {
            return Ok(hidden);
        }
        let dm = c.d_model;
        if self.rc_halves {
            if rc {
                for row in hidden.chunks_exact_mut(2 * dm) {
                    row.reverse();
                }
            }
            return Ok(hidden);
        }
        Ok(hidden
            .chunks_exact(2 * dm)
            .flat_map(|row| {
                let (a, b) = row.split_at(dm);
                a.iter()
                    .zip(b.iter().rev())
                    .map(|(x, y)| 0.5 * (x + y))
                    .collect::<Vec<_>>()
            })
            .collect())
    }
}

/// `log_softmax(row)[i]`, summed in f64.
fn log_softmax_at(row: &[f32], i: usize) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z = row
        .iter()
        .map(|&x| (x as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    (row[i] as f64 - z) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_base_once_from_its_most_central_window() {
        for (len, window, overlap) in [(10, 4, 1), (1000, 128, 32), (129, 128, 32), (7, 128, 32)] {
            let plan = plan_windows(len, window, overlap);
            let mut covered = vec![0; len];
            for w in &plan {
                assert!(w.end - w.start == window.min(len));
                assert!(w.start <= w.keep_start && w.keep_end <= w.end);
                for c in &mut covered[w.keep_start..w.keep_end] {
                    *c += 1;
                }
            }
            assert!(covered.iter().all(|&c| c == 1), "{len} {window} {overlap}");
            // Every kept base is at least as central in its window as in any other.
            for w in &plan {
                for p in w.keep_start..w.keep_end {
                    let off = |x: &Window| (2 * p as i64 + 1 - (x.start + x.end) as i64).abs();
                    for other in plan.iter().filter(|x| x.start <= p && p < x.end) {
                        assert!(off(w) <= off(other), "{p}");
                    }
                }
            }
        }
    }

    #[test]
    fn log_softmax_at_matches_hand_computed() {
        let v = log_softmax_at(&[0.0, 0.0, (2.0f32).ln()], 2);
        assert!((v - 0.5f32.ln()).abs() < 1e-6);
    }
}
