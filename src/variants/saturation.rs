//! Saturation mutagenesis: every single-base substitution of a set of regions, generated as
//! records (one per position, its three alternatives as ALTs) for the streaming scorer, so
//! that each is scored exactly as the same SNV read from a VCF would be.

use std::path::{Path, PathBuf};

use super::Variant;
use super::stream::{InputRecord, RecordSource};
use crate::error::{Error, Result};
use crate::input::RandomReference;

/// Bases read from the reference at a time.
const CHUNK: u64 = 1 << 20;

/// Every SNV of `spans` (`(name, start, end)`, 0-based half-open, sorted and disjoint within
/// each chromosome, each chromosome's spans together). Positions whose base is not A, C, G or
/// T are left out.
pub struct AllSnvs {
    reference: RandomReference,
    path: PathBuf,
    spans: Vec<(String, u64, u64)>,
    span: usize,
    at: u64,
    bases: Vec<u8>,
    bases_start: u64,
    records: usize,
}

impl AllSnvs {
    /// Generates the SNVs of `spans` on `reference` (which must hold every span's record).
    pub fn new(reference: RandomReference, spans: Vec<(String, u64, u64)>) -> Self {
        let path = reference.path().to_path_buf();
        let at = spans.first().map_or(0, |s| s.1);
        AllSnvs {
            reference,
            path,
            spans,
            span: 0,
            at,
            bases: Vec::new(),
            bases_start: 0,
            records: 0,
        }
    }

    /// The number of positions the spans cover (an upper bound on the records).
    pub fn positions(&self) -> u64 {
        self.spans.iter().map(|(_, s, e)| e - s).sum()
    }
}

/// The three alternatives of a base, in A, C, G, T order.
fn alternatives(base: u8) -> impl Iterator<Item = char> {
    ['A', 'C', 'G', 'T']
        .into_iter()
        .filter(move |&c| c as u8 != base)
}

impl RecordSource for AllSnvs {
    fn next_record(&mut self) -> Result<Option<InputRecord>> {
        loop {
            let Some((name, _, end)) = self.spans.get(self.span) else {
                return Ok(None);
            };
            if self.at >= *end {
                self.span += 1;
                if let Some(next) = self.spans.get(self.span) {
                    self.at = next.1;
                }
                continue;
            }
            let have = self.bases_start + self.bases.len() as u64;
            if self.at < self.bases_start || self.at >= have {
                let to = (self.at + CHUNK).min(*end);
                self.reference
                    .fetch(name, self.at, to, &mut self.bases)
                    .map_err(|e| Error::format(&self.path, format!("all SNVs: {e}")))?;
                self.bases_start = self.at;
            }
            let base = self.bases[(self.at - self.bases_start) as usize].to_ascii_uppercase();
            let pos = self.at + 1;
            self.at += 1;
            if !matches!(base, b'A' | b'C' | b'G' | b'T') {
                continue;
            }
            let record = self.records;
            self.records += 1;
            let variants = alternatives(base)
                .enumerate()
                .map(|(alt_index, alt)| Variant {
                    chrom: name.clone(),
                    pos,
                    id: ".".into(),
                    reference: (base as char).to_string(),
                    alt: alt.to_string(),
                    record,
                    alt_index,
                })
                .collect();
            return Ok(Some(InputRecord {
                variants,
                line: None,
                line_no: pos,
            }));
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_alternatives_per_acgt_base_and_none_for_n() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.fa");
        std::fs::write(&p, ">a\nACNgT\n").unwrap();
        let r = RandomReference::open(&p).unwrap();
        let mut s = AllSnvs::new(r, vec![("a".into(), 1, 5)]);
        let mut got = Vec::new();
        while let Some(rec) = s.next_record().unwrap() {
            let alts: Vec<String> = rec.variants.iter().map(|v| v.alt.clone()).collect();
            got.push((
                rec.variants[0].pos,
                rec.variants[0].reference.clone(),
                alts.join(""),
            ));
        }
        assert_eq!(
            got,
            vec![
                (2, "C".into(), "AGT".into()),
                (4, "G".into(), "ACT".into()),
                (5, "T".into(), "ACG".into())
            ]
        );
    }
}
