//! Embedding writers: CSV/TSV with a header, NPY and safetensors matrices with a BED sidecar
//! of row coordinates (and the provenance: safetensors `__metadata__`, NPY `FILE.json`). All
//! stream rows to disk; the binary formats reserve a fixed-size header and fill in the row count
//! when the last row is written.

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

/// Bytes reserved for the NPY header (the whole preamble), enough for any row count.
const NPY_HEADER_BYTES: usize = 128;

/// A float32 matrix, one row per embedding, plus `PATH.rows.bed` (chrom, start, end, name) with
/// the coordinates of each row in the same order. The provenance goes into the safetensors
/// header's `__metadata__`, and for NPY (which has no place for it) into `PATH.json`.
pub struct MatrixEmbeddings {
    format: MatrixFormat,
    path: PathBuf,
    tmp: StagedFile,
    data: BufWriter<File>,
    /// `None` when the matrix goes to a device or pipe: no sidecar beside those.
    rows_bed: Option<Output>,
    /// The provenance as a JSON object (string values).
    metadata: serde_json::Map<String, serde_json::Value>,
    /// Bytes reserved before the data, filled in when the row count is known.
    header_bytes: usize,
    dim: usize,
    rows: u64,
}

/// The sidecar BED's path for a matrix written to `path`.
pub fn rows_bed_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.rows.bed", path.display()))
}

/// The path of the JSON beside an NPY matrix written to `path` (`x.npy` → `x.npy.json`).
pub fn npy_json_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.json", path.display()))
}

impl MatrixEmbeddings {
    /// Starts `path` for `dim`-dimensional rows; `metadata` (key/value provenance) goes into the
    /// safetensors header or the NPY's JSON sidecar.
    pub fn create(
        path: &Path,
        format: MatrixFormat,
        dim: usize,
        metadata: &[(String, String)],
    ) -> Result<Self> {
        let (tmp, file) = StagedFile::create(path)?;
        let tmp_special = tmp.is_special();
        let metadata: serde_json::Map<String, serde_json::Value> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let mut matrix = MatrixEmbeddings {
            format,
            path: path.to_path_buf(),
            tmp,
            data: BufWriter::with_capacity(1 << 20, file),
            rows_bed: if tmp_special {
                None
            } else {
                Some(Output::create(Some(&rows_bed_path(path)))?)
            },
            metadata,
            header_bytes: NPY_HEADER_BYTES,
            dim,
            rows: 0,
        };
        if format == MatrixFormat::Safetensors {
            // Room for the largest row count; padded to 8 bytes as safetensors recommends.
            let longest = matrix.safetensors_json(u64::MAX, u64::MAX).len();
            matrix.header_bytes = (8 + longest).div_ceil(8) * 8;
        }
        let blank = vec![b' '; matrix.header_bytes];
        matrix
            .data
            .write_all(&blank)
            .map_err(|e| Error::io(path, e))?;
        Ok(matrix)
    }

    fn safetensors_json(&self, rows: u64, bytes: u64) -> String {
        let dim = self.dim;
        let metadata = serde_json::Value::Object(self.metadata.clone());
        format!(
            "{{\"__metadata__\":{metadata},\"embeddings\":{{\"dtype\":\"F32\",\"shape\":[{rows},{dim}],\"data_offsets\":[0,{bytes}]}}}}"
        )
    }

    fn header(&self) -> Vec<u8> {
        let (rows, dim) = (self.rows, self.dim);
        match self.format {
            MatrixFormat::Npy => {
                let dict = format!(
                    "{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}"
                );
                let mut h = b"\x93NUMPY\x01\x00".to_vec();
                let len = NPY_HEADER_BYTES - 10;
                h.extend_from_slice(&(len as u16).to_le_bytes());
                h.extend_from_slice(dict.as_bytes());
                h.resize(NPY_HEADER_BYTES - 1, b' ');
                h.push(b'\n');
                h
            }
            MatrixFormat::Safetensors => {
                let bytes = rows * dim as u64 * 4;
                let json = self.safetensors_json(rows, bytes);
                let mut h = ((self.header_bytes - 8) as u64).to_le_bytes().to_vec();
                h.extend_from_slice(json.as_bytes());
                h.resize(self.header_bytes, b' ');
                h
            }
        }
    }

    /// The NPY's JSON sidecar: the provenance plus the matrix's shape and dtype.
    fn npy_json(&self) -> Vec<u8> {
        let mut object = self.metadata.clone();
        object.insert("shape".into(), serde_json::json!([self.rows, self.dim]));
        object.insert("dtype".into(), "float32".into());
        object.insert(
            "rows_bed".into(),
            rows_bed_path(&self.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .into(),
        );
        let mut text =
            serde_json::to_vec_pretty(&serde_json::Value::Object(object)).unwrap_or_default();
        text.push(b'\n');
        text
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
        debug_assert_eq!(header.len(), self.header_bytes);
        let json = (self.format == MatrixFormat::Npy).then(|| self.npy_json());
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
            if let Some(json) = json {
                let json_path = npy_json_path(&path);
                let (sidecar, mut file) = StagedFile::create(&json_path)?;
                file.write_all(&json)
                    .map_err(|e| Error::io(&json_path, e))?;
                drop(file);
                staged.push(sidecar);
            }
        }
        commit_together(staged)
    }
}
