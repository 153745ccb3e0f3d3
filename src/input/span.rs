//! Spans of records to process: where their bases come from, which spans a run covers, and
//! turning their bases into tokens with errors that name the file, record and position.

use std::path::Path;

use crate::error::{Error, Result};
use crate::input::{IndexedFasta, Region, SequenceFile};
use crate::tokenizer::Tokenizer;

/// Random access to the bases of one record.
pub trait BaseSource {
    /// Replaces `buf` with bases `[start, end)`.
    fn fetch(&mut self, start: u64, end: u64, buf: &mut Vec<u8>) -> Result<()>;
}

/// One record of an indexed file.
pub struct IndexedRecord<'a> {
    /// The file.
    pub file: &'a mut IndexedFasta,
    /// The record's name.
    pub name: &'a str,
}

impl BaseSource for IndexedRecord<'_> {
    fn fetch(&mut self, start: u64, end: u64, buf: &mut Vec<u8>) -> Result<()> {
        self.file.fetch(self.name, start, end, buf)
    }
}

impl BaseSource for Vec<u8> {
    fn fetch(&mut self, start: u64, end: u64, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        buf.extend_from_slice(&self[start as usize..end as usize]);
        Ok(())
    }
}

/// The spans `(name, start, end)` a run covers: every record, or the given regions resolved
/// against the index.
pub fn targets(indexed: &IndexedFasta, regions: &[Region]) -> Result<Vec<(String, u64, u64)>> {
    let targets = if regions.is_empty() {
        indexed
            .records()
            .into_iter()
            .map(|(n, len)| (n, 0, len))
            .collect()
    } else {
        let mut t = Vec::with_capacity(regions.len());
        for r in regions {
            let length = indexed.length_of(&r.name).ok_or_else(|| Error::Region {
                region: r.label.clone(),
                message: format!(
                    "no record named '{}' in {}",
                    r.name,
                    indexed.path().display()
                ),
            })?;
            let (s, e) = r.resolve(length)?;
            t.push((r.name.clone(), s, e));
        }
        t
    };
    Ok(targets)
}

/// Calls `f(path, name, start, end, source)` for every span a run covers: each of `regions`
/// (or every record) of an indexed file, read on demand; or every record of a streamed file,
/// held in memory (1 byte per base), where regions are an error.
pub fn for_each_span(
    file: &mut SequenceFile,
    regions: &[Region],
    mut f: impl FnMut(&Path, &str, u64, u64, &mut dyn BaseSource) -> Result<()>,
) -> Result<()> {
    match file {
        SequenceFile::Indexed(indexed) => {
            let path = indexed.path().to_path_buf();
            for (name, start, end) in targets(indexed, regions)? {
                let mut src = IndexedRecord {
                    file: indexed,
                    name: &name,
                };
                f(&path, &name, start, end, &mut src)?;
            }
            Ok(())
        }
        SequenceFile::Stream(stream) => {
            let path = stream.path().to_path_buf();
            if !regions.is_empty() {
                return Err(Error::format(path, "regions need an indexed file"));
            }
            stream.for_each_record(|name, chunks| {
                let mut bases = Vec::new();
                while chunks.read_chunk(1 << 20, &mut bases)? > 0 {}
                let len = bases.len() as u64;
                f(&path, name, 0, len, &mut bases)
            })
        }
    }
}

/// Replaces `tokens` with the tokens of `bases`, which start at 0-based `start` of record
/// `name` in `path`; an unknown character is an error naming all three.
pub fn tokenize(
    tokenizer: &Tokenizer,
    path: &Path,
    name: &str,
    start: u64,
    bases: &[u8],
    tokens: &mut Vec<u32>,
) -> Result<()> {
    tokens.clear();
    tokenizer.encode(bases, tokens).map_err(|i| Error::BadBase {
        path: path.to_path_buf(),
        record: name.to_string(),
        position: start + i as u64 + 1,
        character: bases[i] as char,
    })
}
