//! Variants of shards: the checks that a VCF fits the FASTA whose shards it is scored on, the
//! variants that fall in a set of regions, and their scores with each region's warm-up.

use std::collections::HashMap;
use std::path::Path;

use super::{VariantFile, VariantResult, score_chromosome};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::input::IndexedFasta;
use crate::likelihood::scan_range;
use crate::tokenizer::Tokenizer;
use crate::variants::engine::EngineOptions;

/// The line of `file` that holds data record `record` (0-based), counting the header lines
/// before it (VCF) or the column-name line (table); blank lines are not counted.
fn line_of(file: &VariantFile, record: usize) -> usize {
    if file.is_vcf {
        file.header.len() + record + 1
    } else {
        record + 2
    }
}

/// The FASTA name of a variant's chromosome.
fn fasta_name<'a>(chrom: &'a str, aliases: &'a HashMap<String, String>) -> &'a str {
    aliases.get(chrom).map_or(chrom, String::as_str)
}

/// Checks, before any work, that the variants of `file` (read from `path`) can be scored in
/// shards of the FASTA `fasta` with index records `records`: every `##contig` length matches the
/// index, every variant's chromosome is in it, and variants are sorted in the index's record
/// order and by position (so that shard outputs concatenate into the unsharded one). Errors
/// name the VCF and the line.
pub fn check_against_fasta(
    path: &Path,
    file: &VariantFile,
    aliases: &HashMap<String, String>,
    records: &[(String, u64)],
    fasta: &Path,
) -> Result<()> {
    let rank: HashMap<&str, (usize, u64)> = records
        .iter()
        .enumerate()
        .map(|(i, (n, l))| (n.as_str(), (i, *l)))
        .collect();
    for (i, line) in file.header.iter().enumerate() {
        let Some(body) = line
            .strip_prefix("##contig=<")
            .and_then(|b| b.strip_suffix('>'))
        else {
            continue;
        };
        let field = |key: &str| {
            body.split(',')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        };
        let (Some(id), Some(length)) = (field("ID"), field("length")) else {
            continue;
        };
        let name = fasta_name(id, aliases);
        if let (Some(&(_, fai_len)), Ok(length)) = (rank.get(name), length.parse::<u64>())
            && fai_len != length
        {
            return Err(Error::format(
                path,
                format!(
                    "line {}: contig '{id}' has length {length} here but {fai_len} in {}.fai: \
                     the VCF was not made against this FASTA",
                    i + 1,
                    fasta.display()
                ),
            ));
        }
    }
    let mut previous: Option<(usize, u64, usize)> = None;
    for v in &file.variants {
        let line = line_of(file, v.record);
        let name = fasta_name(&v.chrom, aliases);
        let Some(&(r, _)) = rank.get(name) else {
            return Err(Error::format(
                path,
                format!(
                    "line {line}: contig '{}' is not in {} (its .fai lists {} record(s)); \
                     sharded scoring needs every variant's contig in the FASTA \
                     (or a --chrom-alias entry)",
                    v.chrom,
                    fasta.display(),
                    records.len()
                ),
            ));
        };
        if let Some((pr, ppos, pline)) = previous
            && (r, v.pos) < (pr, ppos)
        {
            return Err(Error::format(
                path,
                format!(
                    "line {line}: {}:{} comes before the variant on line {pline}; sharded \
                     scoring needs variants sorted in the order of {}.fai and by position \
                     (e.g. `bcftools sort`)",
                    v.chrom,
                    v.pos,
                    fasta.display()
                ),
            ));
        }
        previous = Some((r, v.pos, line));
    }
    Ok(())
}

/// The variants of `file` whose first REF base lies in one of `spans` (`(name, start, end)`,
/// 0-based half-open, FASTA names), whole records kept together, in input order.
pub fn subset(
    file: &VariantFile,
    aliases: &HashMap<String, String>,
    spans: &[(String, u64, u64)],
) -> VariantFile {
    let mut by_chrom: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
    for (n, s, e) in spans {
        by_chrom.entry(n.as_str()).or_default().push((*s, *e));
    }
    let inside = |chrom: &str, pos: u64| {
        by_chrom
            .get(fasta_name(chrom, aliases))
            .is_some_and(|v| v.iter().any(|&(s, e)| s < pos && pos <= e))
    };
    let mut out = VariantFile {
        variants: Vec::new(),
        header: file.header.clone(),
        records: Vec::new(),
        is_vcf: file.is_vcf,
    };
    let mut last_record = None;
    let mut renumbered = 0;
    for v in &file.variants {
        if !inside(&v.chrom, v.pos) {
            continue;
        }
        if last_record != Some(v.record) {
            if last_record.is_some() {
                renumbered += 1;
            }
            last_record = Some(v.record);
            if let Some(line) = file.records.get(v.record) {
                out.records.push(line.clone());
            }
        }
        let mut kept = v.clone();
        kept.record = renumbered;
        out.variants.push(kept);
    }
    out
}

/// Scores every variant of `file` in the span that holds its first REF base (`spans` as in
/// [`subset`]; a variant in none gets no score). With `warmup`, the spans are shards of their
/// chromosomes: the forward strand starts up to `warmup` bases upstream of the span, the
/// reverse strand up to `warmup` bases downstream, so spans whose warm-up reaches the
/// chromosome's ends score exactly as the whole chromosome does. Without it, each span is a
/// sequence of its own. Results are in the order of `file.variants`.
#[allow(clippy::too_many_arguments)]
pub fn score_spans<B: Backend>(
    backend: &B,
    reference: &mut IndexedFasta,
    file: &VariantFile,
    aliases: &HashMap<String, String>,
    spans: &[(String, u64, u64)],
    warmup: Option<u64>,
    opts: &EngineOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<VariantResult>> {
    let tokenizer = Tokenizer::new(backend.config());
    let path = reference.path().to_path_buf();
    let mut results = vec![VariantResult::default(); file.variants.len()];
    // Variants by chromosome, sorted by position, so each span finds its own by bisection.
    let mut by_chrom: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, v) in file.variants.iter().enumerate() {
        by_chrom
            .entry(fasta_name(&v.chrom, aliases))
            .or_default()
            .push(i);
    }
    for list in by_chrom.values_mut() {
        list.sort_by_key(|&i| file.variants[i].pos);
    }
    let mut done = vec![false; file.variants.len()];
    let (mut bases, mut loaded) = (Vec::new(), None::<String>);
    for (name, start, end) in spans {
        let Some(list) = by_chrom.get(name.as_str()) else {
            continue;
        };
        let pos = |k: usize| file.variants[list[k]].pos - 1;
        let lo = list.partition_point(|&i| file.variants[i].pos - 1 < *start);
        let hi = list.partition_point(|&i| file.variants[i].pos - 1 < *end);
        let indices: Vec<usize> = (lo..hi)
            .filter(|&k| pos(k) >= *start && !done[list[k]])
            .map(|k| list[k])
            .collect();
        if indices.is_empty() {
            continue;
        }
        if loaded.as_deref() != Some(name.as_str()) {
            let length = reference.length_of(name).ok_or_else(|| {
                Error::format(&path, format!("no record named '{name}' in the index"))
            })?;
            reference.fetch(name, 0, length, &mut bases)?;
            loaded = Some(name.clone());
        }
        let (from, to) = scan_range(*start, *end, bases.len() as u64, warmup);
        let scored = score_chromosome(
            backend,
            &tokenizer,
            &path,
            name,
            &bases,
            file,
            &indices,
            (from as usize, to as usize),
            opts,
        )?;
        for (&i, r) in indices.iter().zip(scored) {
            results[i] = r;
            done[i] = true;
        }
        progress(indices.len() as u64);
    }
    Ok(results)
}
