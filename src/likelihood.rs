//! `ssmgen likelihood`: per-base log-probabilities of every record or region of a sequence file.
//!
//! Each record (or region) is scored as its own sequence from its first base. The forward strand
//! is streamed stripe by stripe. The reverse strand runs on the reverse complement, read
//! backwards from an indexed file (or from the record held in memory when the input is
//! streamed); its scores are spooled to a temporary file and merged back in forward order, so
//! memory does not grow with the record's length.

use std::path::Path;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::input::span::{self, BaseSource, IndexedRecord};
use crate::input::{Region, SequenceFile};
use crate::output::TrackSink;
use crate::runner::{Feed, ScoreStream, pipeline, score_batch};
use crate::spool::Spool;
use crate::tokenizer::Tokenizer;

/// Which strand(s) to score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strand {
    /// The sequence as given.
    Forward,
    /// Its reverse complement, reported at forward coordinates.
    Reverse,
    /// Both; the reported value is their mean.
    Both,
}

impl Strand {
    fn forward(self) -> bool {
        self != Strand::Reverse
    }
    fn reverse(self) -> bool {
        self != Strand::Forward
    }
}

/// Settings of a likelihood run.
pub struct LikelihoodOptions {
    /// Strand(s) to score.
    pub strand: Strand,
    /// Tokens per stripe.
    pub stripe_len: usize,
    /// Prepend the model's BOS token so the first base is scored.
    pub bos: Option<u32>,
    /// Regions are shards of their records: each first runs the model over up to this many
    /// bases upstream (the reverse strand: downstream) without reporting them, so that its
    /// scores approach those of the whole record (exact once the warm-up reaches the record's
    /// end). `None`: each region is scored as a sequence of its own.
    pub warmup: Option<u64>,
}

/// The bases a span `[start, end)` of a record of `length` bases is run over: the span itself,
/// or with a warm-up of `n` bases, up to `n` more on each side within the record.
pub fn scan_range(start: u64, end: u64, length: u64, warmup: Option<u64>) -> (u64, u64) {
    match warmup {
        None => (start, end),
        Some(n) => (
            start.saturating_sub(n),
            end.saturating_add(n).min(length.max(end)),
        ),
    }
}

/// Records up to this long are batched together when streamed (reads, amplicons, contigs).
const SHORT_RECORD: usize = 4096;
/// Most short records in one batch.
const BATCH_RECORDS: usize = 256;

/// Short streamed records waiting to be scored together.
#[derive(Default)]
struct ShortRecords {
    records: Vec<(String, Vec<u8>)>,
    tokens: usize,
}

/// Scores sequence files with one backend.
pub struct Scorer<'a, B: Backend> {
    backend: &'a B,
    tokenizer: Tokenizer,
    options: LikelihoodOptions,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<'a, B: Backend> Scorer<'a, B> {
    /// A scorer; `progress` is called with the number of bases just scored (per strand pass).
    pub fn new(
        backend: &'a B,
        options: LikelihoodOptions,
        progress: &'a (dyn Fn(u64) + Sync),
    ) -> Self {
        Scorer {
            tokenizer: Tokenizer::new(backend.config()),
            backend,
            options,
            progress,
        }
    }

    /// Scores `regions` of `file` (every record when empty) into `sink`.
    pub fn run(
        &self,
        file: &mut SequenceFile,
        regions: &[Region],
        sink: &mut dyn TrackSink,
    ) -> Result<()> {
        match file {
            SequenceFile::Indexed(indexed) => {
                let targets = span::targets(indexed, regions)?;
                for (name, start, end) in targets {
                    let path = indexed.path().to_path_buf();
                    let length = indexed.length_of(&name).unwrap_or(end);
                    let scan = scan_range(start, end, length, self.options.warmup);
                    let mut src = IndexedRecord {
                        file: indexed,
                        name: &name,
                    };
                    self.score_span(&path, &name, start, end, scan, &mut src, sink)?;
                }
                Ok(())
            }
            SequenceFile::Stream(stream) => {
                let path = stream.path().to_path_buf();
                if !regions.is_empty() {
                    return Err(Error::format(path, "regions need an indexed file"));
                }
                let stripe = self.options.stripe_len;
                let mut batch = ShortRecords::default();
                stream.for_each_record(|name, chunks| {
                    let mut head = Vec::new();
                    chunks.read_chunk(SHORT_RECORD + 1, &mut head)?;
                    if head.len() <= SHORT_RECORD {
                        batch.tokens += head.len();
                        batch.records.push((name.to_string(), head));
                        if batch.records.len() >= BATCH_RECORDS || batch.tokens >= stripe {
                            self.score_batch(&path, &mut batch, sink)?;
                        }
                        return Ok(());
                    }
                    self.score_batch(&path, &mut batch, sink)?;
                    if self.options.strand.reverse() {
                        // The reverse strand needs the record's end first: hold it (1 byte/base).
                        let mut bases = head;
                        while chunks.read_chunk(1 << 20, &mut bases)? > 0 {}
                        let len = bases.len() as u64;
                        return self.score_span(&path, name, 0, len, (0, len), &mut bases, sink);
                    }
                    sink.begin(name, 0)?;
                    let mut fwd =
                        ScoreStream::new(self.backend, &self.tokenizer, self.options.bos)?;
                    let mut pos = 0u64;
                    let mut first = Some(head);
                    let next = || -> Feed<(u64, Vec<u8>)> {
                        let bases = match first.take() {
                            Some(h) => h,
                            None => {
                                let mut b = Vec::with_capacity(stripe);
                                if chunks.read_chunk(stripe, &mut b)? == 0 {
                                    return Ok(None);
                                }
                                b
                            }
                        };
                        let mut tokens = Vec::new();
                        span::tokenize(&self.tokenizer, &path, name, pos, &bases, &mut tokens)?;
                        let at = pos;
                        pos += bases.len() as u64;
                        Ok(Some(((at, bases), tokens)))
                    };
                    pipeline(&mut fwd, next, |(at, bases), scores| {
                        sink.write(at, &bases, Some(scores), None)?;
                        (self.progress)(bases.len() as u64);
                        Ok(())
                    })?;
                    sink.end()
                })?;
                self.score_batch(&path, &mut batch, sink)
            }
        }
    }

    /// Scores the queued short records, each strand as one batched backend call, and writes
    /// them in order. Each record starts from the same state (zero, or after BOS).
    fn score_batch(
        &self,
        path: &Path,
        batch: &mut ShortRecords,
        sink: &mut dyn TrackSink,
    ) -> Result<()> {
        if batch.records.is_empty() {
            return Ok(());
        }
        let start = ScoreStream::new(self.backend, &self.tokenizer, self.options.bos)?.snapshot();
        let run_strand = |reverse: bool| -> Result<Vec<Vec<f32>>> {
            let mut seqs = Vec::with_capacity(batch.records.len());
            for (name, bases) in &batch.records {
                let mut tokens = Vec::new();
                span::tokenize(&self.tokenizer, path, name, 0, bases, &mut tokens)?;
                if reverse {
                    self.tokenizer.reverse_complement(&mut tokens);
                }
                seqs.push(tokens);
            }
            let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
            let mut out = score_batch(self.backend, &self.tokenizer, &start, &seqs, longest)?;
            if reverse {
                out.iter_mut().for_each(|scores| scores.reverse());
            }
            Ok(out)
        };
        let fwd = if self.options.strand.forward() {
            Some(run_strand(false)?)
        } else {
            None
        };
        let rev = if self.options.strand.reverse() {
            Some(run_strand(true)?)
        } else {
            None
        };
        for (i, (name, bases)) in batch.records.iter().enumerate() {
            sink.begin(name, 0)?;
            sink.write(
                0,
                bases,
                fwd.as_ref().map(|f| &f[i][..]),
                rev.as_ref().map(|r| &r[i][..]),
            )?;
            sink.end()?;
            let passes = u64::from(fwd.is_some()) + u64::from(rev.is_some());
            (self.progress)(bases.len() as u64 * passes);
        }
        batch.records.clear();
        batch.tokens = 0;
        Ok(())
    }

    /// Scores bases `[start, end)` of record `name` on the requested strands, running the
    /// model over `scan` (which holds `[start, end)`): the forward strand from `scan.0`, the
    /// reverse strand from `scan.1`; bases outside `[start, end)` are warm-up, not reported.
    /// Stripes are aligned to the scan's ends, so a scan over the whole record runs exactly the
    /// stripes of an unsharded run.
    #[allow(clippy::too_many_arguments)]
    fn score_span(
        &self,
        path: &Path,
        name: &str,
        start: u64,
        end: u64,
        scan: (u64, u64),
        src: &mut dyn BaseSource,
        sink: &mut dyn TrackSink,
    ) -> Result<()> {
        let stripe = self.options.stripe_len as u64;
        // Stripe `[lo, hi)` read and tokenised (reverse-complemented for the reverse strand).
        let mut read = |lo: u64, hi: u64, reverse: bool| -> Result<(Vec<u8>, Vec<u32>)> {
            let (mut bases, mut tokens) = (Vec::new(), Vec::new());
            src.fetch(lo, hi, &mut bases)?;
            span::tokenize(&self.tokenizer, path, name, lo, &bases, &mut tokens)?;
            if reverse {
                self.tokenizer.reverse_complement(&mut tokens);
            }
            Ok((bases, tokens))
        };

        let mut spool = if self.options.strand.reverse() {
            let mut spool = Spool::new()?;
            let mut rev = ScoreStream::new(self.backend, &self.tokenizer, self.options.bos)?;
            let mut hi = scan.1;
            let next = || -> Feed<(u64, u64)> {
                if hi <= start {
                    return Ok(None);
                }
                let lo = hi.saturating_sub(stripe).max(start);
                let (_, tokens) = read(lo, hi, true)?;
                let stripe_span = (lo, hi);
                hi = lo;
                Ok(Some((stripe_span, tokens)))
            };
            pipeline(&mut rev, next, |(lo, hi), scores| {
                // Index i of the stripe scored position hi - 1 - i; positions from `end` on
                // are warm-up.
                let skip = (hi.saturating_sub(end).min(hi - lo)) as usize;
                spool.append(&scores[skip..])?;
                (self.progress)(hi - lo);
                Ok(())
            })?;
            Some(spool)
        } else {
            None
        };

        sink.begin(name, start)?;
        let mut rev_scores = Vec::new();
        // The reverse pass's index i scored forward position end - 1 - i.
        let mut reverse_of = |lo: u64, hi: u64| -> Result<Option<Vec<f32>>> {
            match &mut spool {
                Some(spool) => {
                    spool.read(end - hi, end - lo, &mut rev_scores)?;
                    rev_scores.reverse();
                    Ok(Some(rev_scores.clone()))
                }
                None => Ok(None),
            }
        };
        if self.options.strand.forward() {
            let mut lo = scan.0;
            let mut fwd = ScoreStream::new(self.backend, &self.tokenizer, self.options.bos)?;
            let next = || -> Feed<(u64, u64, Vec<u8>)> {
                if lo >= end {
                    return Ok(None);
                }
                let hi = (lo + stripe).min(end);
                let (bases, tokens) = read(lo, hi, false)?;
                let span = (lo, hi, bases);
                lo = hi;
                Ok(Some((span, tokens)))
            };
            pipeline(&mut fwd, next, |(lo, hi, bases), scores| {
                (self.progress)(bases.len() as u64);
                if hi <= start {
                    return Ok(()); // warm-up only
                }
                // Positions before `start` are warm-up.
                let skip = (start.saturating_sub(lo)) as usize;
                let from = lo + skip as u64;
                let rev = reverse_of(from, hi)?;
                sink.write(from, &bases[skip..], Some(&scores[skip..]), rev.as_deref())
            })?;
        } else {
            let mut lo = start;
            let mut bases = Vec::new();
            while lo < end {
                let hi = (lo + stripe).min(end);
                src.fetch(lo, hi, &mut bases)?;
                let rev = reverse_of(lo, hi)?;
                sink.write(lo, &bases, None, rev.as_deref())?;
                lo = hi;
            }
        }
        sink.end()
    }
}
