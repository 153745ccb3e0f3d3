//! Regions: `chr:start-end` on the command line (1-based, inclusive, samtools style) and BED
//! files (0-based, half-open). Both become a [`Region`] in 0-based half-open coordinates.

use std::io::{BufRead, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// A span of one record, 0-based half-open. `end == None` means "to the end of the record".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// Record (chromosome) name.
    pub name: String,
    /// First base, 0-based.
    pub start: u64,
    /// One past the last base; `None` for the record's end.
    pub end: Option<u64>,
    /// How the user wrote it, for messages.
    pub label: String,
}

impl Region {
    /// Parses `chr`, `chr:start` or `chr:start-end` (1-based, inclusive; commas allowed).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |message: &str| Error::Region {
            region: text.to_string(),
            message: message.to_string(),
        };
        let text_trim = text.trim();
        if text_trim.is_empty() {
            return Err(bad("empty region"));
        }
        let (name, range) = match text_trim.rsplit_once(':') {
            Some((name, range)) if !name.is_empty() && looks_like_range(range) => {
                (name, Some(range))
            }
            _ => (text_trim, None),
        };
        let Some(range) = range else {
            return Ok(Region {
                name: name.to_string(),
                start: 0,
                end: None,
                label: text.to_string(),
            });
        };
        let number = |s: &str| -> Result<u64> {
            s.replace(',', "")
                .parse::<u64>()
                .map_err(|_| bad("positions must be whole numbers, as in chr1:1,000-2,000"))
        };
        let (start, end) = match range.split_once('-') {
            Some((s, e)) => (number(s)?, Some(number(e)?)),
            None => (number(range)?, None),
        };
        if start == 0 {
            return Err(bad("positions are 1-based: the first base is 1"));
        }
        if let Some(end) = end
            && end < start
        {
            return Err(bad("end is before start"));
        }
        Ok(Region {
            name: name.to_string(),
            start: start - 1,
            end,
            label: text.to_string(),
        })
    }

    /// Resolves the region against a record of `length` bases: returns `(start, end)`,
    /// or an error if it runs off the end.
    pub fn resolve(&self, length: u64) -> Result<(u64, u64)> {
        let end = self.end.unwrap_or(length);
        if end > length || self.start >= length.max(1) {
            return Err(Error::Region {
                region: self.label.clone(),
                message: format!(
                    "runs past the end of '{}', which has {length} bases",
                    self.name
                ),
            });
        }
        Ok((self.start, end))
    }
}

fn looks_like_range(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b',' || b == b'-')
}

/// Reads BED intervals (first three columns; `track`, `browser` and `#` lines skipped).
pub fn read_bed(path: &Path) -> Result<Vec<Region>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    parse_bed(path, std::io::BufReader::new(file))
}

/// The longest BED line accepted, in bytes.
pub const MAX_BED_LINE: u64 = 1 << 20;

/// Parses BED text from `reader`; `path` names it in messages.
pub fn parse_bed(path: &Path, reader: impl BufRead) -> Result<Vec<Region>> {
    let mut regions = Vec::new();
    let mut reader = reader;
    let mut i = 0usize;
    let mut raw = Vec::new();
    loop {
        raw.clear();
        let n = (&mut reader)
            .take(MAX_BED_LINE + 1)
            .read_until(b'\n', &mut raw)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        if n as u64 > MAX_BED_LINE {
            return Err(Error::format(
                path,
                format!("line {}: longer than {MAX_BED_LINE} bytes", i + 1),
            ));
        }
        let line = std::str::from_utf8(&raw)
            .map_err(|_| Error::format(path, format!("line {}: not UTF-8 text", i + 1)))?
            .trim_end_matches('\n')
            .to_string();
        let line = Ok::<_, Error>(line);
        i += 1;
        let i = i - 1;
        let line = line?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty()
            || line.starts_with('#')
            || line.starts_with("track")
            || line.starts_with("browser")
        {
            continue;
        }
        let bad = |m: &str| Error::format(path, format!("line {}: {m}", i + 1));
        let mut fields = line.split('\t');
        let (Some(name), Some(start), Some(end)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad(
                "a BED line needs chrom, start and end separated by tabs",
            ));
        };
        let start: u64 = start
            .trim()
            .parse()
            .map_err(|_| bad("start is not a whole number"))?;
        let end: u64 = end
            .trim()
            .parse()
            .map_err(|_| bad("end is not a whole number"))?;
        if end <= start {
            return Err(bad("end must be greater than start"));
        }
        regions.push(Region {
            name: name.to_string(),
            start,
            end: Some(end),
            label: format!(
                "{}:{}-{} ({}:{})",
                name,
                start + 1,
                end,
                path.display(),
                i + 1
            ),
        });
    }
    if regions.is_empty() {
        return Err(Error::format(
            path,
            "holds no intervals (an empty BED selects nothing; leave out --regions to use every record)",
        ));
    }
    Ok(regions)
}

/// Sorts `regions` into the order of an indexed file: by the rank of their record in
/// `records` (the `.fai`'s order, as `samtools faidx` and `bedtools sort -g` use), then by
/// start and end. The sort is stable; regions on records not in `records` go last, in their
/// given order (the run reports them).
pub fn sort_regions(regions: &mut [Region], records: &[(String, u64)]) {
    let rank: std::collections::HashMap<&str, (usize, u64)> = records
        .iter()
        .enumerate()
        .map(|(i, (n, l))| (n.as_str(), (i, *l)))
        .collect();
    regions.sort_by_key(|r| match rank.get(r.name.as_str()) {
        Some(&(i, length)) => (i, r.start, r.end.unwrap_or(length)),
        None => (usize::MAX, 0, 0),
    });
}

/// The first two regions of sorted `regions` that share a base (a region with no end reaches
/// its record's end); `None` when they are disjoint. Regions touching end to start do not
/// overlap.
pub fn first_overlap<'a>(
    regions: &'a [Region],
    records: &[(String, u64)],
) -> Option<(&'a Region, &'a Region)> {
    let length: std::collections::HashMap<&str, u64> =
        records.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let mut furthest: Option<(&Region, u64)> = None;
    for r in regions {
        let Some(&len) = length.get(r.name.as_str()) else {
            continue;
        };
        let end = r.end.unwrap_or(len);
        match furthest {
            Some((prev, prev_end)) if prev.name == r.name && r.start < prev_end => {
                return Some((prev, r));
            }
            // Sorted and disjoint so far: this region ends furthest.
            _ => furthest = Some((r, end)),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_based_inclusive_to_half_open() {
        let r = Region::parse("chr1:1,001-2,000").unwrap();
        assert_eq!(
            (r.name.as_str(), r.start, r.end),
            ("chr1", 1000, Some(2000))
        );
        assert_eq!(r.resolve(5000).unwrap(), (1000, 2000));
        let r = Region::parse("chr1").unwrap();
        assert_eq!(r.resolve(10).unwrap(), (0, 10));
        let r = Region::parse("HLA-A*01:01:01:01").unwrap();
        assert_eq!(r.name, "HLA-A*01:01:01");
        assert_eq!(r.start, 0);
    }

    #[test]
    fn rejects_bad_regions() {
        assert!(Region::parse("chr1:0-5").is_err());
        assert!(Region::parse("chr1:9-5").is_err());
        let r = Region::parse("chr1:5-20").unwrap();
        let msg = r.resolve(10).unwrap_err().to_string();
        assert!(
            msg.contains("past the end") && msg.contains("10 bases"),
            "{msg}"
        );
    }

    #[test]
    fn reads_bed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.bed");
        std::fs::write(&p, "track name=x\nchr1\t0\t10\tname\nchr2\t5\t6\n").unwrap();
        let r = read_bed(&p).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[1].start, r[1].end), (5, Some(6)));
        std::fs::write(&p, "chr1\t10\t5\n").unwrap();
        assert!(read_bed(&p).unwrap_err().to_string().contains("line 1"));
    }

    fn regions(spec: &[&str]) -> Vec<Region> {
        spec.iter().map(|s| Region::parse(s).unwrap()).collect()
    }

    #[test]
    fn sorts_by_index_order_then_start() {
        let records = vec![("chrB".to_string(), 100), ("chrA".to_string(), 50)];
        let mut r = regions(&["chrA:5-9", "chrZ:1-2", "chrB:50-60", "chrA:1-3", "chrB:2-4"]);
        sort_regions(&mut r, &records);
        let labels: Vec<&str> = r.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            ["chrB:2-4", "chrB:50-60", "chrA:1-3", "chrA:5-9", "chrZ:1-2"]
        );
        assert!(first_overlap(&r, &records).is_none());
    }

    #[test]
    fn finds_overlaps_but_not_touching_regions() {
        let records = vec![("c".to_string(), 100)];
        let touching = regions(&["c:1-10", "c:11-20"]);
        assert!(first_overlap(&touching, &records).is_none());
        let overlapping = regions(&["c:1-10", "c:10-20"]);
        let (a, b) = first_overlap(&overlapping, &records).unwrap();
        assert_eq!((a.label.as_str(), b.label.as_str()), ("c:1-10", "c:10-20"));
        // A long region swallowing a later one after a short one.
        let nested = regions(&["c:1-50", "c:5-8", "c:30-40"]);
        let (a, b) = first_overlap(&nested, &records).unwrap();
        assert_eq!((a.label.as_str(), b.label.as_str()), ("c:1-50", "c:5-8"));
        // A whole record and a part of it.
        let whole = regions(&["c", "c:90-95"]);
        assert!(first_overlap(&whole, &records).is_some());
    }
}
