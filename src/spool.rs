//! A spool: values of one pass kept on disk until a later pass needs them, so memory does not
//! grow with the record (the reverse strand's scores, merged back in forward order).

use std::io::{BufWriter, Read, Seek, SeekFrom, Write};

use crate::error::{Error, Result};

/// f32 values appended to an anonymous temporary file, then read back by index.
pub struct Spool {
    writer: Option<BufWriter<std::fs::File>>,
    file: Option<std::fs::File>,
    bytes: Vec<u8>,
}

impl Spool {
    /// An empty spool.
    pub fn new() -> Result<Self> {
        let file = tempfile::tempfile().map_err(|e| Error::io(std::env::temp_dir(), e))?;
        Ok(Spool {
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            file: None,
            bytes: Vec::new(),
        })
    }

    /// Appends `scores`; all appends come before the first read.
    pub fn append(&mut self, scores: &[f32]) -> Result<()> {
        let w = self.writer.as_mut().expect("spool appended after reading");
        for s in scores {
            w.write_all(&s.to_le_bytes())
                .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        }
        Ok(())
    }

    /// Replaces `out` with entries `[from, to)`.
    pub fn read(&mut self, from: u64, to: u64, out: &mut Vec<f32>) -> Result<()> {
        let tmp = std::env::temp_dir();
        if let Some(w) = self.writer.take() {
            self.file = Some(
                w.into_inner()
                    .map_err(|e| Error::io(&tmp, e.into_error()))?,
            );
        }
        let file = self.file.as_mut().expect("spool has a file");
        self.bytes.resize(((to - from) * 4) as usize, 0);
        file.seek(SeekFrom::Start(from * 4))
            .map_err(|e| Error::io(&tmp, e))?;
        file.read_exact(&mut self.bytes)
            .map_err(|e| Error::io(&tmp, e))?;
        out.clear();
        out.extend(
            self.bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        Ok(())
    }
}
