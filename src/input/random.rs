//! Random access to any reference: an indexed FASTA directly, anything else (stdin, gzip, no
//! `.fai`) copied once, record by record in chunks, into an anonymous temporary file of bare
//! bases, so that stripes can be read in any order (the reverse strand's pass reads a
//! chromosome from its end) while memory holds one stripe.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::input::{IndexedFasta, SequenceFile};

/// A reference whose records can be read in any order, a stripe at a time.
pub enum RandomReference {
    /// A FASTA with its `.fai`.
    Indexed(IndexedFasta),
    /// A streamed input copied to a temporary file.
    Spooled {
        /// The input's name, for messages.
        path: PathBuf,
        /// The bases of every record, back to back.
        file: std::fs::File,
        /// `(name, offset, length)` of each record, in file order.
        records: Vec<(String, u64, u64)>,
        /// Each name's place in `records`.
        by_name: std::collections::HashMap<String, usize>,
    },
}

impl RandomReference {
    /// Opens `path`: indexed when it has a usable index, else spooled to a temporary file.
    pub fn open(path: &Path) -> Result<Self> {
        match SequenceFile::open(path, false)? {
            SequenceFile::Indexed(f) => Ok(RandomReference::Indexed(f)),
            SequenceFile::Stream(mut s) => {
                let tmp = std::env::temp_dir();
                let file = tempfile::tempfile().map_err(|e| Error::io(&tmp, e))?;
                let mut writer = BufWriter::with_capacity(1 << 20, file);
                let mut records = Vec::new();
                let mut offset = 0u64;
                let mut chunk = Vec::new();
                s.for_each_record(|name, chunks| {
                    let start = offset;
                    loop {
                        chunk.clear();
                        if chunks.read_chunk(1 << 20, &mut chunk)? == 0 {
                            break;
                        }
                        writer.write_all(&chunk).map_err(|e| Error::io(&tmp, e))?;
                        offset += chunk.len() as u64;
                    }
                    records.push((name.to_string(), start, offset - start));
                    Ok(())
                })?;
                let file = writer
                    .into_inner()
                    .map_err(|e| Error::io(&tmp, e.into_error()))?;
                let by_name = records
                    .iter()
                    .enumerate()
                    .map(|(i, (n, _, _))| (n.clone(), i))
                    .collect();
                Ok(RandomReference::Spooled {
                    path: path.to_path_buf(),
                    file,
                    records,
                    by_name,
                })
            }
        }
    }

    /// `(name, length)` of every record, in file order.
    pub fn records(&self) -> Vec<(String, u64)> {
        match self {
            RandomReference::Indexed(f) => f.records(),
            RandomReference::Spooled { records, .. } => {
                records.iter().map(|(n, _, l)| (n.clone(), *l)).collect()
            }
        }
    }

    /// The input's name.
    pub fn path(&self) -> &Path {
        match self {
            RandomReference::Indexed(f) => f.path(),
            RandomReference::Spooled { path, .. } => path,
        }
    }

    /// Replaces `buf` with bases `[start, end)` (0-based) of record `name`.
    pub fn fetch(&mut self, name: &str, start: u64, end: u64, buf: &mut Vec<u8>) -> Result<()> {
        match self {
            RandomReference::Indexed(f) => f.fetch(name, start, end, buf),
            RandomReference::Spooled {
                path,
                file,
                records,
                by_name,
            } => {
                use std::os::unix::fs::FileExt as _;
                let Some(&(_, offset, length)) = by_name.get(name).map(|&i| &records[i]) else {
                    return Err(Error::format(
                        path.as_path(),
                        format!("no record named '{name}'"),
                    ));
                };
                let end = end.min(length);
                buf.clear();
                if end <= start {
                    return Ok(());
                }
                buf.resize((end - start) as usize, 0);
                file.read_exact_at(buf, offset + start)
                    .map_err(|e| Error::io(std::env::temp_dir(), e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spooled_reference_reads_any_stripe() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.fa");
        std::fs::write(&p, ">a\nACGT\nAC\n>b\nGGGTTT\n").unwrap();
        let mut r = RandomReference::open(&p).unwrap();
        assert_eq!(r.records(), vec![("a".into(), 6), ("b".into(), 6)]);
        let mut buf = Vec::new();
        r.fetch("b", 2, 5, &mut buf).unwrap();
        assert_eq!(buf, b"GTT");
        r.fetch("a", 3, 6, &mut buf).unwrap();
        assert_eq!(buf, b"TAC");
        assert!(r.fetch("c", 0, 1, &mut buf).is_err());
    }
}
