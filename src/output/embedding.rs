//! Embedding writers: CSV/TSV with a header, NPY and safetensors matrices with a BED sidecar
//! of row coordinates. All stream rows to disk; the binary formats reserve a fixed-size header
//! and fill in the row count when the last row is written.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::embed::{EmbeddingRow, EmbeddingSink};
use crate::error::{Error, Result};
use crate::output::atomic::{StagedFile, commit_together};
use crate::output::{Output, csv_error};

/// CSV (`,`) or TSV (`\t`): `chrom,start,end,name,e0..e{d-1}`, 0-based half-open coordinates.
pub struct DelimitedEmbeddings {
    writer: csv::Writer<Output>,
    record: Vec<String>,
    path: PathBuf,
}

impl DelimitedEmbeddings {
    /// Writes the header for `dim`-dimensional embeddings to `out`.
    pub fn new(out: Output, delimiter: u8, dim: usize) -> Result<Self> {
        let path = out.display_path();
        let mut writer = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .from_writer(out);
        let header: Vec<String> = ["chrom", "start", "end", "name"]
            .into_iter()
            .map(String::from)
            .chain((0..dim).map(|i| format!("e{i}")))
            .collect();
        writer
            .write_record(&header)
            .map_err(|e| csv_error(&path, e))?;
        Ok(DelimitedEmbeddings {
            writer,
            record: Vec::with_capacity(dim + 4),
            path,
        })
    }
}

impl EmbeddingSink for DelimitedEmbeddings {
    fn write_row(&mut self, row: &EmbeddingRow<'_>) -> Result<()> {
        let mut fb = ryu::Buffer::new();
        self.record.clear();
        self.record.push(row.chrom.to_string());
        self.record.push(row.start.to_string());
        self.record.push(row.end.to_string());
        self.record.push(row.name.to_string());
        for v in row.values {
            self.record.push(fb.format(*v).to_string());
        }
        self.writer
            .write_record(&self.record)
            .map_err(|e| csv_error(&self.path, e))
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let out = self
            .writer
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        out.commit()
    }
}

/// Which binary matrix format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatrixFormat {
    /// NumPy `.npy` v1.0, `<f4`, C order.
    Npy,
    /// safetensors with one F32 tensor named `embeddings`.
    Safetensors,
}

/// Bytes reserved for the header (NPY: whole preamble; safetensors: the 8-byte length plus
/// the JSON, padded with spaces), enough for any row count.
const HEADER_BYTES: usize = 128;

/// A float32 matrix, one row per embedding, plus `PATH.rows.bed` (chrom, start, end, name) with
/// the coordinates of each row in the same order.
pub struct MatrixEmbeddings {
    format: MatrixFormat,
    path: PathBuf,
    tmp: StagedFile,
    data: BufWriter<File>,
    /// `None` when the matrix goes to a device or pipe: no sidecar beside those.
    rows_bed: Option<Output>,
    dim: usize,
    rows: u64,
}

/// The sidecar BED's path for a matrix written to `path`.
pub fn rows_bed_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.rows.bed", path.display()))
}

impl MatrixEmbeddings {
    /// Starts `path` for `dim`-dimensional rows.
    pub fn create(path: &Path, format: MatrixFormat, dim: usize) -> Result<Self> {
        let (tmp, file) = StagedFile::create(path)?;
        let tmp_special = tmp.is_special();
        let mut data = BufWriter::with_capacity(1 << 20, file);
        data.write_all(&[b' '; HEADER_BYTES])
            .map_err(|e| Error::io(path, e))?;
        Ok(MatrixEmbeddings {
            format,
            path: path.to_path_buf(),
            tmp,
            data,
            rows_bed: if tmp_special {
                None
            } else {
                Some(Output::create(Some(&rows_bed_path(path)))?)
            },
            dim,
            rows: 0,
        })
    }

    fn header(&self) -> Vec<u8> {
        let (rows, dim) = (self.rows, self.dim);
        match self.format {
            MatrixFormat::Npy => {
                let dict = format!(
                    "{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}"
                );
                let mut h = b"\x93NUMPY\x01\x00".to_vec();
                let len = HEADER_BYTES - 10;
                h.extend_from_slice(&(len as u16).to_le_bytes());
                h.extend_from_slice(dict.as_bytes());
                h.resize(HEADER_BYTES - 1, b' ');
                h.push(b'\n');
                h
            }
            MatrixFormat::Safetensors => {
                let bytes = rows * dim as u64 * 4;
                let json = format!(
                    "{{\"embeddings\":{{\"dtype\":\"F32\",\"shape\":[{rows},{dim}],\"data_offsets\":[0,{bytes}]}}}}"
                );
                let mut h = ((HEADER_BYTES - 8) as u64).to_le_bytes().to_vec();
                h.extend_from_slice(json.as_bytes());
                h.resize(HEADER_BYTES, b' ');
                h
            }
        }
    }
}

impl EmbeddingSink for MatrixEmbeddings {
    fn write_row(&mut self, row: &EmbeddingRow<'_>) -> Result<()> {
        for v in row.values {
            self.data
                .write_all(&v.to_le_bytes())
                .map_err(|e| Error::io(&self.path, e))?;
        }
        let line = format!("{}\t{}\t{}\t{}\n", row.chrom, row.start, row.end, row.name);
        if let Some(rows_bed) = &mut self.rows_bed {
            rows_bed
                .write_all(line.as_bytes())
                .map_err(|e| Error::io(rows_bed_path(&self.path), e))?;
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let header = self.header();
        debug_assert_eq!(header.len(), HEADER_BYTES);
        let MatrixEmbeddings {
            path,
            tmp,
            data,
            rows_bed,
            ..
        } = *self;
        let io = |e: std::io::Error| Error::io(&path, e);
        let mut file = data.into_inner().map_err(|e| io(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&header).map_err(io)?;
        file.flush().map_err(io)?;
        let mut staged = vec![tmp];
        if let Some(rows_bed) = rows_bed {
            staged.extend(rows_bed.finish()?);
        }
        commit_together(staged)
    }
}
