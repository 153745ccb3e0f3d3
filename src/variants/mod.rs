//! `ssmgen score-variants`: zero-shot variant-effect scores from a causal model, with the
//! upstream state shared by REF and ALT (see [`engine`]). Formulas: `docs/scoring.md`.

pub mod driver;
pub mod engine;
pub mod input;
pub mod output;
pub mod saturation;
pub mod shard;
pub mod stream;

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

/// Checks a variant against its chromosome's bases: why it cannot be scored, if it cannot.
pub fn check(v: &Variant, bases: &[u8]) -> Option<Skip> {
    if let Some(skip) = check_alleles(v) {
        return Some(skip);
    }
    let Some((start, end)) = ref_span(v, bases.len() as u64) else {
        return Some(Skip::PastContigEnd);
    };
    if !bases[start as usize..end as usize].eq_ignore_ascii_case(v.reference.as_bytes()) {
        return Some(Skip::RefMismatch);
    }
    None
}

/// Why a variant's alleles cannot be scored, whatever the reference says.
pub fn check_alleles(v: &Variant) -> Option<Skip> {
    if v.alt == "*" || v.alt == "." || v.alt.starts_with('<') || v.alt.contains(['[', ']']) {
        return Some(Skip::SymbolicOrMissingAlt);
    }
    if !is_acgt(&v.reference) || !is_acgt(&v.alt) {
        return Some(Skip::NonAcgtAllele);
    }
    None
}

/// REF's span `[start, end)` (0-based) on a chromosome of `len` bases; `None` past its end.
pub fn ref_span(v: &Variant, len: u64) -> Option<(u64, u64)> {
    // POS comes from the file: no arithmetic on it may overflow.
    let start = v.pos.checked_sub(1)?;
    let end = start.checked_add(v.reference.len() as u64)?;
    (end <= len).then_some((start, end))
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
    score_all_report(backend, reference, file, aliases, opts, progress).map(|r| r.results)
}

/// The results of [`score_by_chromosome`] and what it met on the way.
#[derive(Debug, Default)]
pub struct ScoreReport {
    /// One result per variant, in the order of `file.variants`.
    pub results: Vec<VariantResult>,
    /// The first few record names of the reference (for messages).
    pub reference_names: Vec<String>,
    /// How many records the reference has (those read, when streamed).
    pub reference_records: u64,
    /// Variant chromosome names matched to a reference record by adding or dropping `chr`
    /// (`chr1` ↔ `1`, `chrM` ↔ `MT`): `(variant name, reference name)`.
    pub renamed: Vec<(String, String)>,
}

/// Reference record names shown in messages.
const NAMES_SHOWN: usize = 5;

/// The other spelling of a chromosome name in the `chr1` / `1` convention pair.
pub fn chr_toggled(name: &str) -> String {
    match name {
        "chrM" => "MT".to_string(),
        "MT" => "chrM".to_string(),
        _ => match name.strip_prefix("chr") {
            Some(rest) if !rest.is_empty() => rest.to_string(),
            _ => format!("chr{name}"),
        },
    }
}

/// [`score_all`] with a causal model, also reporting what [`score_by_chromosome`] reports.
pub fn score_all_report<B: Backend>(
    backend: &B,
    reference: &mut SequenceFile,
    file: &VariantFile,
    aliases: &HashMap<String, String>,
    opts: &EngineOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ScoreReport> {
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
/// `aliases`; a variant chromosome the reference lacks is matched to the record named with
/// `chr` added or dropped) and has `score` compute the results of its variants (`indices` into
/// `file.variants`, results in that order). Variants on chromosomes the reference lacks are
/// skipped as unknown contigs. Also reports the reference's names and the renames made.
pub fn score_by_chromosome(
    reference: &mut SequenceFile,
    file: &VariantFile,
    aliases: &HashMap<String, String>,
    progress: &(dyn Fn(u64) + Sync),
    mut score: impl FnMut(&str, &[u8], &[usize]) -> Result<Vec<VariantResult>>,
) -> Result<ScoreReport> {
    let mut report = ScoreReport::default();
    let mut results = vec![VariantResult::default(); file.variants.len()];
    let mut by_chrom: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, v) in file.variants.iter().enumerate() {
        let name = aliases
            .get(&v.chrom)
            .map_or(v.chrom.as_str(), String::as_str);
        by_chrom.entry(name).or_default().push(i);
    }
    let mut seen: Vec<String> = Vec::new();
    // The variant chromosome a reference record stands for, if any and not yet scored.
    let key_of = |name: &str, seen: &[String]| -> Option<String> {
        let key = if by_chrom.contains_key(name) {
            name.to_string()
        } else {
            let other = chr_toggled(name);
            if !by_chrom.contains_key(other.as_str()) {
                return None;
            }
            other
        };
        (!seen.contains(&key)).then_some(key)
    };
    let names_seen = |name: &str, report: &mut ScoreReport| {
        report.reference_records += 1;
        if report.reference_names.len() < NAMES_SHOWN {
            report.reference_names.push(name.to_string());
        }
    };
    let mut score_chrom = |key: &str,
                           name: &str,
                           bases: &[u8],
                           seen: &mut Vec<String>,
                           report: &mut ScoreReport|
     -> Result<()> {
        let Some(indices) = by_chrom.get(key) else {
            return Ok(());
        };
        seen.push(key.to_string());
        if key != name {
            report.renamed.push((key.to_string(), name.to_string()));
        }
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
                names_seen(&name, &mut report);
                if let Some(key) = key_of(&name, &seen) {
                    f.fetch(&name, 0, len, &mut buf)?;
                    score_chrom(&key, &name, &buf, &mut seen, &mut report)?;
                }
            }
        }
        SequenceFile::Stream(s) => s.for_each_record(|name, chunks| {
            names_seen(name, &mut report);
            let Some(key) = key_of(name, &seen) else {
                return Ok(());
            };
            let mut bases = Vec::new();
            while chunks.read_chunk(1 << 20, &mut bases)? > 0 {}
            score_chrom(&key, name, &bases, &mut seen, &mut report)
        })?,
    }
    for (name, indices) in &by_chrom {
        if !seen.iter().any(|s| s == name) {
            for &i in indices {
                results[i].skip = Some(Skip::UnknownContig);
            }
        }
    }
    report.results = results;
    Ok(report)
}

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
        .map(|v| (from + v.pos + v.ref_len).saturating_add(opts.window))
        .max()
        .unwrap_or(from)
        .min(len);
    let rev_end = rev
        .iter()
        .map(|v| (v.pos + v.ref_len).saturating_add(opts.window))
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
