//! Shards: a genome cut into pieces that separate jobs can process, and the checks that make
//! their outputs concatenate into exactly what one unsharded run writes.
//!
//! A shard is one or more regions, in the FASTA index's record order. [`plan`] cuts a genome
//! (its `.fai` records) into shards; [`check_sorted_disjoint`] refuses region lists that are
//! unsorted, overlapping or name a record the FASTA lacks, naming the region's file and line.

use crate::error::{Error, Result};
use crate::input::Region;

/// How [`plan`] groups the genome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardBy {
    /// One shard per record; with a size, records longer than it are split into near-equal
    /// pieces of at most that size.
    Chrom,
    /// Shards of `size` bases each (the last one shorter): short records are packed together,
    /// long ones are split across shards.
    Size,
}

/// One region of a shard, 0-based half-open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardRegion {
    /// Record name.
    pub chrom: String,
    /// First base, 0-based.
    pub start: u64,
    /// One past the last base.
    pub end: u64,
}

/// A named group of regions that one job processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    /// `shard0001`, `shard0002`, …: zero-padded so that names sort in genome order.
    pub name: String,
    /// Its regions, in genome order.
    pub regions: Vec<ShardRegion>,
}

/// Parses a base count: a whole number with an optional decimal suffix `k`, `M` or `G`
/// (case-insensitive, an optional trailing `b`/`bp`): `10M` is 10,000,000 bases.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim().replace([',', '_'], "");
    let lower = t.to_ascii_lowercase();
    let body = lower
        .strip_suffix("bp")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, factor) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 1_000u64),
        Some('m') => (&body[..body.len() - 1], 1_000_000),
        Some('g') => (&body[..body.len() - 1], 1_000_000_000),
        _ => (body, 1),
    };
    let bad = || format!("'{text}' is not a base count (examples: 100000, 100k, 10M, 1G)");
    if let Ok(n) = digits.parse::<u64>() {
        return n.checked_mul(factor).ok_or_else(bad);
    }
    // 1.5M and the like.
    match digits.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 && factor > 1 => {
            let v = (x * factor as f64).round();
            if v <= u64::MAX as f64 {
                Ok(v as u64)
            } else {
                Err(bad())
            }
        }
        _ => Err(bad()),
    }
}

/// Cuts the records `(name, length)` (in index order) into shards. `size` is required with
/// [`ShardBy::Size`]; with [`ShardBy::Chrom`] and no size every record is one shard.
/// Empty records get no shard.
pub fn plan(records: &[(String, u64)], size: Option<u64>, by: ShardBy) -> Result<Vec<Shard>> {
    if size == Some(0) {
        return Err(Error::Region {
            region: "--size".into(),
            message: "a shard size must be at least one base".into(),
        });
    }
    let mut groups: Vec<Vec<ShardRegion>> = Vec::new();
    match (by, size) {
        (ShardBy::Chrom, None) => {
            for (name, len) in records.iter().filter(|(_, l)| *l > 0) {
                groups.push(vec![region(name, 0, *len)]);
            }
        }
        (ShardBy::Chrom, Some(size)) => {
            for (name, len) in records.iter().filter(|(_, l)| *l > 0) {
                let pieces = len.div_ceil(size);
                let piece = len.div_ceil(pieces);
                let mut start = 0;
                while start < *len {
                    let end = (start + piece).min(*len);
                    groups.push(vec![region(name, start, end)]);
                    start = end;
                }
            }
        }
        (ShardBy::Size, None) => {
            return Err(Error::Region {
                region: "--by size".into(),
                message: "needs --size".into(),
            });
        }
        (ShardBy::Size, Some(size)) => {
            let mut current: Vec<ShardRegion> = Vec::new();
            let mut room = size;
            for (name, len) in records.iter().filter(|(_, l)| *l > 0) {
                let mut start = 0;
                while start < *len {
                    let end = (start + room).min(*len);
                    current.push(region(name, start, end));
                    room -= end - start;
                    start = end;
                    if room == 0 {
                        groups.push(std::mem::take(&mut current));
                        room = size;
                    }
                }
            }
            if !current.is_empty() {
                groups.push(current);
            }
        }
    }
    let width = groups.len().to_string().len().max(4);
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(i, regions)| Shard {
            name: format!("shard{:0width$}", i + 1),
            regions,
        })
        .collect())
}

fn region(name: &str, start: u64, end: u64) -> ShardRegion {
    ShardRegion {
        chrom: name.to_string(),
        start,
        end,
    }
}

/// Checks that `regions` name records of `records` (the FASTA index, in its order), fit them,
/// come in the index's record order and ascending position, and do not overlap: what shards
/// need so that their outputs concatenate into one sorted file. `fasta` names the FASTA in
/// messages. Returns the regions resolved to `(name, start, end)`.
pub fn check_sorted_disjoint(
    regions: &[Region],
    records: &[(String, u64)],
    fasta: &std::path::Path,
) -> Result<Vec<(String, u64, u64)>> {
    let order: std::collections::HashMap<&str, (usize, u64)> = records
        .iter()
        .enumerate()
        .map(|(i, (n, l))| (n.as_str(), (i, *l)))
        .collect();
    let mut out: Vec<(String, u64, u64)> = Vec::with_capacity(regions.len());
    let mut previous: Option<(usize, u64, &Region)> = None;
    for r in regions {
        let Some(&(rank, length)) = order.get(r.name.as_str()) else {
            return Err(Error::Region {
                region: r.label.clone(),
                message: format!(
                    "no record named '{}' in {} (its .fai lists {} record(s))",
                    r.name,
                    fasta.display(),
                    records.len()
                ),
            });
        };
        let (start, end) = r.resolve(length)?;
        if let Some((prev_rank, prev_end, prev)) = previous {
            let problem = if rank < prev_rank {
                Some("comes before the previous region in the FASTA's record order")
            } else if rank == prev_rank && start < prev_end {
                Some(if start < prev.start {
                    "starts before the previous region (regions must be sorted by position)"
                } else {
                    "overlaps the previous region"
                })
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(Error::Region {
                    region: r.label.clone(),
                    message: format!(
                        "{problem} '{}'; shards must be sorted in the order of {}.fai and must \
                         not overlap",
                        prev.label,
                        fasta.display()
                    ),
                });
            }
        }
        previous = Some((rank, end, r));
        out.push((r.name.clone(), start, end));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs() -> Vec<(String, u64)> {
        vec![("a".into(), 25), ("b".into(), 4), ("c".into(), 0)]
    }

    #[test]
    fn sizes_take_decimal_suffixes() {
        assert_eq!(parse_size("10M"), Ok(10_000_000));
        assert_eq!(parse_size("100k"), Ok(100_000));
        assert_eq!(parse_size("1Gb"), Ok(1_000_000_000));
        assert_eq!(parse_size("1.5kb"), Ok(1_500));
        assert_eq!(parse_size("1,000"), Ok(1_000));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("-3k").is_err());
    }

    #[test]
    fn chrom_shards_split_long_records_evenly() {
        let s = plan(&recs(), None, ShardBy::Chrom).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].regions, vec![region("a", 0, 25)]);
        let s = plan(&recs(), Some(10), ShardBy::Chrom).unwrap();
        let spans: Vec<(u64, u64)> = s
            .iter()
            .map(|x| (x.regions[0].start, x.regions[0].end))
            .collect();
        assert_eq!(spans, [(0, 9), (9, 18), (18, 25), (0, 4)]);
        assert_eq!(s[3].name, "shard0004");
    }

    #[test]
    fn size_shards_pack_and_split() {
        let s = plan(&recs(), Some(10), ShardBy::Size).unwrap();
        let all: Vec<Vec<(String, u64, u64)>> = s
            .iter()
            .map(|x| {
                x.regions
                    .iter()
                    .map(|r| (r.chrom.clone(), r.start, r.end))
                    .collect()
            })
            .collect();
        assert_eq!(
            all,
            vec![
                vec![("a".into(), 0, 10)],
                vec![("a".into(), 10, 20)],
                vec![("a".into(), 20, 25), ("b".into(), 0, 4)],
            ]
        );
        assert!(plan(&recs(), None, ShardBy::Size).is_err());
    }

    #[test]
    fn unsorted_overlapping_and_unknown_regions_are_refused() {
        let fa = std::path::Path::new("g.fa");
        let r = |t: &str| Region::parse(t).unwrap();
        let ok = check_sorted_disjoint(&[r("a:1-10"), r("a:11-20"), r("b")], &recs(), fa).unwrap();
        assert_eq!(ok[2], ("b".to_string(), 0, 4));
        let e = check_sorted_disjoint(&[r("a:1-10"), r("a:10-20")], &recs(), fa).unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
        let e = check_sorted_disjoint(&[r("b"), r("a")], &recs(), fa).unwrap_err();
        assert!(e.to_string().contains("record order"), "{e}");
        let e = check_sorted_disjoint(&[r("a:11-20"), r("a:1-10")], &recs(), fa).unwrap_err();
        assert!(e.to_string().contains("sorted"), "{e}");
        let e = check_sorted_disjoint(&[r("zz")], &recs(), fa).unwrap_err();
        assert!(e.to_string().contains("no record named 'zz'"), "{e}");
    }
}
