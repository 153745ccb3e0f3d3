//! `ssmgen score-variants`: zero-shot variant-effect scores from a causal model, with the
//! upstream state shared by REF and ALT (see [`engine`]). Formulas: `docs/scoring.md`.

pub mod engine;
pub mod input;
pub mod output;
pub mod shard;

use std::collections::HashMap;
use std::path::Path;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::input::SequenceFile;
use crate::tokenizer::Tokenizer;
use engine::{EngineOptions, StrandScores, StrandVariant, score_strand};
pub use input::{Variant, VariantFile, read_aliases};

/// Why a variant got no score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The chromosome is not in the reference (after aliases).
    UnknownContig,
    /// ALT is symbolic (`<DEL>`, breakends), `*` or missing (`.`).
    SymbolicOrMissingAlt,
    /// An allele has a character other than A, C, G, T.
    NonAcgtAllele,
    /// REF runs past the end of the chromosome.
    PastContigEnd,
    /// REF does not match the reference genome.
    RefMismatch,
    /// Not a single-base substitution, which is all a masked model scores.
    NotSnv,
}

impl Skip {
    /// The reason as written in the output.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::UnknownContig => "unknown_contig",
            Skip::SymbolicOrMissingAlt => "symbolic_or_missing_alt",
            Skip::NonAcgtAllele => "non_acgt_allele",
            Skip::PastContigEnd => "past_contig_end",
            Skip::RefMismatch => "ref_mismatch",
            Skip::NotSnv => "not_snv",
        }
    }
}

/// The result for one REF/ALT pair.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VariantResult {
    /// Why there is no score, if there is none.
    pub skip: Option<Skip>,
    /// Forward-strand scores.
    pub fwd: Option<StrandScores>,
    /// Reverse-complement-strand scores.
    pub rev: Option<StrandScores>,
}

fn mean(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(0.5 * (x + y)),
        (x, y) => x.or(y),
    }
}

impl VariantResult {
    /// Mean of the strands' `llr` (those that exist).
    pub fn llr(&self) -> Option<f64> {
        mean(self.fwd.and_then(|s| s.llr), self.rev.and_then(|s| s.llr))
    }

    /// Mean of the strands' `delta_ll`.
    pub fn delta_ll(&self) -> Option<f64> {
        mean(self.fwd.map(|s| s.delta_ll), self.rev.map(|s| s.delta_ll))
    }
}

fn is_acgt(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b.to_ascii_uppercase(), b'A' | b'C' | b'G' | b'T'))
}

/// Checks a variant against its chromosome's bases.
pub(crate) fn check(v: &Variant, bases: &[u8]) -> Option<Skip> {
    if v.alt == "*" || v.alt == "." || v.alt.starts_with('<') || v.alt.contains(['[', ']']) {
        return Some(Skip::SymbolicOrMissingAlt);
    }
    if !is_acgt(&v.reference) || !is_acgt(&v.alt) {
        return Some(Skip::NonAcgtAllele);
    }
    let start = (v.pos - 1) as usize;
    let end = start + v.reference.len();
    if end > bases.len() {
        return Some(Skip::PastContigEnd);
    }
    if !bases[start..end].eq_ignore_ascii_case(v.reference.as_bytes()) {
        return Some(Skip::RefMismatch);
    }
    None
}

/// Scores every variant of `file` against `reference`. `aliases` maps variant chromosome names
/// to reference record names. Results are in the order of `file.variants`.
pub fn score_all<B: Backend>(
    backend: &B,
    reference: &mut SequenceFile,
    file: &VariantFile,
    aliases: &HashMap<String, String>,
    opts: &EngineOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<VariantResult>> {
    let tokenizer = Tokenizer::new(backend.config());
    let path = reference.path().to_path_buf();
    score_by_chromosome(
        reference,
        file,
        aliases,
        progress,
        |name, bases, indices| {
            let whole = (0, bases.len());
            score_chromosome(
                backend, &tokenizer, &path, name, bases, file, indices, whole, opts,
            )
        },
    )
}

/// Reads each chromosome of `reference` that has variants in `file` (names through
/// `aliases`) and has `score` compute the results of its variants (`indices` into
/// `file.variants`, results in that order). Variants on chromosomes the reference lacks are
/// skipped as unknown contigs. Results are in the order of `file.variants`.
pub fn score_by_chromosome(
    reference: &mut SequenceFile,
    file: &VariantFile,
    aliases: &HashMap<String, String>,
    progress: &(dyn Fn(u64) + Sync),
    mut score: impl FnMut(&str, &[u8], &[usize]) -> Result<Vec<VariantResult>>,
) -> Result<Vec<VariantResult>> {
    let mut results = vec![VariantResult::default(); file.variants.len()];
    let mut by_chrom: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, v) in file.variants.iter().enumerate() {
        let name = aliases
            .get(&v.chrom)
            .map_or(v.chrom.as_str(), String::as_str);
        by_chrom.entry(name).or_default().push(i);
    }
    let mut seen: Vec<String> = Vec::new();
    let mut score_chrom = |name: &str, bases: &[u8]| -> Result<()> {
        let Some(indices) = by_chrom.get(name) else {
            return Ok(());
        };
        seen.push(name.to_string());
        let result = score(name, bases, indices)?;
        for (i, r) in indices.iter().zip(result) {
            results[*i] = r;
        }
        progress(indices.len() as u64);
        Ok(())
    };
    match reference {
        SequenceFile::Indexed(f) => {
            let mut buf = Vec::new();
            for (name, len) in f.records() {
                if by_chrom.contains_key(name.as_str()) {
                    f.fetch(&name, 0, len, &mut buf)?;
                    score_chrom(&name, &buf)?;
                }
            }
        }
        SequenceFile::Stream(s) => s.for_each_record(|name, chunks| {
            if !by_chrom.contains_key(name) {
                return Ok(());
            }
            let mut bases = Vec::new();
            while chunks.read_chunk(1 << 20, &mut bases)? > 0 {}
            score_chrom(name, &bases)
        })?,
    }
    for (name, indices) in &by_chrom {
        if !seen.iter().any(|s| s == name) {
            for &i in indices {
                results[i].skip = Some(Skip::UnknownContig);
            }
        }
    }
    Ok(results)
}

/// Scores the variants `indices` of `file` on chromosome `name` (`bases`). The forward strand
/// runs from `scan.0`, the reverse strand from `scan.1` (or the end of the furthest REF allele,
/// if later): `(0, bases.len())` gives every variant the whole chromosome as context.
#[allow(clippy::too_many_arguments)]
pub(crate) fn score_chromosome<B: Backend>(
    backend: &B,
    tokenizer: &Tokenizer,
    path: &Path,
    name: &str,
    bases: &[u8],
    file: &VariantFile,
    indices: &[usize],
    scan: (usize, usize),
    opts: &EngineOptions,
) -> Result<Vec<VariantResult>> {
    let mut fwd_tokens = Vec::with_capacity(bases.len());
    tokenizer
        .encode(bases, &mut fwd_tokens)
        .map_err(|i| Error::BadBase {
            path: path.to_path_buf(),
            record: name.to_string(),
            position: i as u64 + 1,
            character: bases[i] as char,
        })?;
    let (from, mut top) = (scan.0.min(fwd_tokens.len()), scan.1.min(fwd_tokens.len()));
    let mut results = vec![VariantResult::default(); indices.len()];
    let (mut fwd, mut rev, mut slots) = (Vec::new(), Vec::new(), Vec::new());
    for (slot, &i) in indices.iter().enumerate() {
        let v = &file.variants[i];
        if let Some(skip) = check(v, bases) {
            results[slot].skip = Some(skip);
            continue;
        }
        let mut alt = Vec::new();
        tokenizer.encode(v.alt.as_bytes(), &mut alt).map_err(|i| {
            Error::format(
                path,
                format!("{}:{}: ALT has no token at {i}", v.chrom, v.pos),
            )
        })?;
        let (p, r) = ((v.pos - 1) as usize, v.reference.len());
        if p < from {
            return Err(Error::format(
                path,
                format!("{}:{}: lies before the scanned span", v.chrom, v.pos),
            ));
        }
        let mut alt_rc = alt.clone();
        tokenizer.reverse_complement(&mut alt_rc);
        fwd.push(StrandVariant {
            pos: p - from,
            ref_len: r,
            alt,
        });
        rev.push(StrandVariant {
            pos: p + r, // made relative to the reverse strand's start below
            ref_len: r,
            alt: alt_rc,
        });
        top = top.max(p + r);
        slots.push(slot);
    }
    for v in &mut rev {
        v.pos = top - v.pos;
    }
    // Each strand stops where the last variant's window does: nothing past it is read.
    let len = fwd_tokens.len();
    let fwd_end = fwd
        .iter()
        .map(|v| from + v.pos + v.ref_len + opts.window)
        .max()
        .unwrap_or(from)
        .min(len);
    let rev_end = rev
        .iter()
        .map(|v| v.pos + v.ref_len + opts.window)
        .max()
        .unwrap_or(0)
        .min(top);
    let fwd_scores = score_strand(backend, tokenizer, &fwd_tokens[from..fwd_end], &fwd, opts)?;
    let mut rev_tokens = fwd_tokens;
    rev_tokens.truncate(top);
    rev_tokens.drain(..top - rev_end);
    tokenizer.reverse_complement(&mut rev_tokens);
    let rev_scores = score_strand(backend, tokenizer, &rev_tokens, &rev, opts)?;
    for ((slot, f), r) in slots.into_iter().zip(fwd_scores).zip(rev_scores) {
        results[slot].fwd = Some(f);
        results[slot].rev = Some(r);
    }
    Ok(results)
}
