//! Parquet outputs (for pandas, polars, Arrow): likelihood intervals, embeddings and variant
//! scores as tables, written through an [`Output`] (so staged and renamed into place like every
//! other output) in row groups of a bounded size: memory stays flat whatever the row count.
//! The provenance (ssmgen's version, the command line, the model and its SHA-256) goes into the
//! file's key-value metadata.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int64Array,
    RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::embed::{EmbeddingRow, EmbeddingSink};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::output::track::IntervalWriter;
use crate::variants::output::{ScoreKind, score_of};
use crate::variants::{Skip, Variant, VariantFile, VariantResult};

/// Rows per row group for narrow tables (intervals, variants).
pub const ROWS_PER_GROUP: usize = 1 << 16;

/// Bytes of embedding values per row group (the row count follows from the dimension).
const EMBEDDING_BYTES_PER_GROUP: usize = 16 << 20;

/// A Parquet file written one row group at a time.
pub struct ParquetTable {
    writer: ArrowWriter<Output>,
    schema: SchemaRef,
    shown: std::path::PathBuf,
}

fn parquet_error(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::io(path, std::io::Error::other(e.to_string()))
}

impl ParquetTable {
    /// Starts a table of `schema` on `out`, with `metadata` as the file's key-value metadata.
    pub fn create(out: Output, schema: SchemaRef, metadata: &[(String, String)]) -> Result<Self> {
        let shown = out.display_path();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            // Min/max per column chunk (row-group pruning still works), no page index: the
            // footer, held until the end, stays small (page statistics cost ~40 KB per group).
            .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk)
            .set_max_row_group_row_count(Some(usize::MAX))
            .set_key_value_metadata(Some(
                metadata
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                    .collect(),
            ))
            .build();
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(props))
            .map_err(|e| parquet_error(&shown, e))?;
        Ok(ParquetTable {
            writer,
            schema,
            shown,
        })
    }

    /// Writes `columns` (in the schema's order, of equal length) as one row group.
    pub fn write_group(&mut self, columns: Vec<ArrayRef>) -> Result<()> {
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| parquet_error(&self.shown, e))?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.writer
            .write(&batch)
            .map_err(|e| parquet_error(&self.shown, e))?;
        self.writer
            .flush()
            .map_err(|e| parquet_error(&self.shown, e))
    }

    /// Writes the footer and puts the file in place.
    pub fn finish(self) -> Result<()> {
        let out = self
            .writer
            .into_inner()
            .map_err(|e| parquet_error(&self.shown, e))?;
        out.commit()
    }
}

fn i64_of(v: u64, shown: &std::path::Path) -> Result<i64> {
    i64::try_from(v)
        .map_err(|_| Error::format(shown, format!("position {v} exceeds Parquet's int64")))
}

/// Likelihood intervals as Parquet: `chrom` (string), `start`, `end` (int64, 0-based
/// half-open) and `logp` (float32): the rows of the bedGraph of the same run.
pub struct ParquetIntervals {
    table: ParquetTable,
    chrom: Vec<String>,
    start: Vec<i64>,
    end: Vec<i64>,
    value: Vec<f32>,
}

impl ParquetIntervals {
    /// The schema of likelihood tables.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("chrom", DataType::Utf8, false),
            Field::new("start", DataType::Int64, false),
            Field::new("end", DataType::Int64, false),
            Field::new("logp", DataType::Float32, false),
        ]))
    }

    /// Starts the table on `out`.
    pub fn create(out: Output, metadata: &[(String, String)]) -> Result<Self> {
        Ok(ParquetIntervals {
            table: ParquetTable::create(out, Self::schema(), metadata)?,
            chrom: Vec::with_capacity(ROWS_PER_GROUP),
            start: Vec::with_capacity(ROWS_PER_GROUP),
            end: Vec::with_capacity(ROWS_PER_GROUP),
            value: Vec::with_capacity(ROWS_PER_GROUP),
        })
    }

    fn flush(&mut self) -> Result<()> {
        // Drained, not taken: the buffers keep their capacity for the next group.
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(self.chrom.drain(..))),
            Arc::new(Int64Array::from_iter_values(self.start.drain(..))),
            Arc::new(Int64Array::from_iter_values(self.end.drain(..))),
            Arc::new(Float32Array::from_iter_values(self.value.drain(..))),
        ];
        self.table.write_group(columns)
    }
}

impl IntervalWriter for ParquetIntervals {
    fn interval(&mut self, chrom: &str, start: u64, end: u64, value: f32) -> Result<()> {
        let shown = &self.table.shown;
        self.start.push(i64_of(start, shown)?);
        self.end.push(i64_of(end, shown)?);
        self.chrom.push(chrom.to_string());
        self.value.push(value);
        if self.chrom.len() >= ROWS_PER_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.table.finish()
    }
}

/// Embeddings as Parquet: `chrom`, `start`, `end` (0-based half-open), `name`, and
/// `embedding`, a fixed-size list of `dim` float32 values; one row per record, window or base.
pub struct ParquetEmbeddings {
    table: ParquetTable,
    dim: usize,
    rows_per_group: usize,
    chrom: Vec<String>,
    start: Vec<i64>,
    end: Vec<i64>,
    name: Vec<String>,
    values: Vec<f32>,
}

impl ParquetEmbeddings {
    /// The schema for `dim`-dimensional embeddings.
    pub fn schema(dim: usize) -> Result<SchemaRef> {
        let size = i32::try_from(dim)
            .map_err(|_| Error::format("<parquet>", format!("embedding size {dim} too large")))?;
        Ok(Arc::new(Schema::new(vec![
            Field::new("chrom", DataType::Utf8, false),
            Field::new("start", DataType::Int64, false),
            Field::new("end", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new(
                "embedding",
                DataType::FixedSizeList(
                    Arc::new(Field::new("item", DataType::Float32, false)),
                    size,
                ),
                false,
            ),
        ])))
    }

    /// Starts the table on `out` for rows of `dim` values.
    pub fn create(out: Output, dim: usize, metadata: &[(String, String)]) -> Result<Self> {
        let rows_per_group =
            (EMBEDDING_BYTES_PER_GROUP / (4 * dim.max(1))).clamp(1, ROWS_PER_GROUP);
        Ok(ParquetEmbeddings {
            table: ParquetTable::create(out, Self::schema(dim)?, metadata)?,
            dim,
            rows_per_group,
            chrom: Vec::new(),
            start: Vec::new(),
            end: Vec::new(),
            name: Vec::new(),
            values: Vec::new(),
        })
    }

    fn flush(&mut self) -> Result<()> {
        let shown = self.table.shown.clone();
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let values = Arc::new(Float32Array::from_iter_values(self.values.drain(..)));
        let list = FixedSizeListArray::try_new(item, self.dim as i32, values, None)
            .map_err(|e| parquet_error(&shown, e))?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(self.chrom.drain(..))),
            Arc::new(Int64Array::from_iter_values(self.start.drain(..))),
            Arc::new(Int64Array::from_iter_values(self.end.drain(..))),
            Arc::new(StringArray::from_iter_values(self.name.drain(..))),
            Arc::new(list),
        ];
        self.table.write_group(columns)
    }
}

impl EmbeddingSink for ParquetEmbeddings {
    fn write_row(&mut self, row: &EmbeddingRow<'_>) -> Result<()> {
        let shown = &self.table.shown;
        if row.values.len() != self.dim {
            return Err(Error::format(
                shown,
                format!("row of {} values, expected {}", row.values.len(), self.dim),
            ));
        }
        self.start.push(i64_of(row.start, shown)?);
        self.end.push(i64_of(row.end, shown)?);
        self.chrom.push(row.chrom.to_string());
        self.name.push(row.name.to_string());
        self.values.extend_from_slice(row.values);
        if self.chrom.len() >= self.rows_per_group {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.flush()?;
        self.table.finish()
    }
}

/// The columns of the variant table, as the TSV's (`ref_mismatch` is a boolean; scores and
/// `skip_reason` are null where the TSV cell is empty; scores are float64, unrounded).
pub fn variant_schema() -> SchemaRef {
    let score = |name: &str| Field::new(name, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("chrom", DataType::Utf8, false),
        Field::new("pos", DataType::Int64, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("ref", DataType::Utf8, false),
        Field::new("alt", DataType::Utf8, false),
        score("llr_fwd"),
        score("llr_rev"),
        score("llr"),
        score("delta_ll_fwd"),
        score("delta_ll_rev"),
        score("delta_ll"),
        score("score"),
        Field::new("ref_mismatch", DataType::Boolean, false),
        Field::new("skip_reason", DataType::Utf8, true),
    ]))
}

/// Variant scores as Parquet, a row per REF/ALT pair, buffered into row groups of
/// [`ROWS_PER_GROUP`] rows (memory bounded by one group), put in place by [`finish`].
///
/// [`finish`]: ParquetVariants::finish
pub struct ParquetVariants {
    table: ParquetTable,
    kind: ScoreKind,
    pending: Vec<(Variant, VariantResult)>,
}

impl ParquetVariants {
    /// Starts the table on `out`, with `metadata` in the file's key-value metadata.
    pub fn create(out: Output, kind: ScoreKind, metadata: &[(String, String)]) -> Result<Self> {
        Ok(ParquetVariants {
            table: ParquetTable::create(out, variant_schema(), metadata)?,
            kind,
            pending: Vec::new(),
        })
    }

    /// Adds one pair's row.
    pub fn record(&mut self, variant: &Variant, result: &VariantResult) -> Result<()> {
        self.pending.push((variant.clone(), result.clone()));
        if self.pending.len() >= ROWS_PER_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let group = std::mem::take(&mut self.pending);
        let kind = self.kind;
        let real = |x: Option<f64>| x.filter(|v| !v.is_nan());
        let strings = |f: &dyn Fn(&Variant) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(
                group.iter().map(|(v, _)| f(v)),
            ))
        };
        let scores = |f: &dyn Fn(&VariantResult) -> Option<f64>| -> ArrayRef {
            Arc::new(Float64Array::from_iter(
                group.iter().map(|(_, r)| real(f(r))),
            ))
        };
        let mut pos = Vec::with_capacity(group.len());
        for (v, _) in &group {
            pos.push(i64_of(v.pos, &self.table.shown)?);
        }
        let columns: Vec<ArrayRef> = vec![
            strings(&|v| v.chrom.as_str()),
            Arc::new(Int64Array::from(pos)),
            strings(&|v| v.id.as_str()),
            strings(&|v| v.reference.as_str()),
            strings(&|v| v.alt.as_str()),
            scores(&|r| r.fwd.and_then(|s| s.llr)),
            scores(&|r| r.rev.and_then(|s| s.llr)),
            scores(&|r| r.llr()),
            scores(&|r| r.fwd.map(|s| s.delta_ll)),
            scores(&|r| r.rev.map(|s| s.delta_ll)),
            scores(&|r| r.delta_ll()),
            scores(&|r| score_of(r, kind)),
            Arc::new(BooleanArray::from_iter(
                group
                    .iter()
                    .map(|(_, r)| Some(r.skip == Some(Skip::RefMismatch))),
            )),
            Arc::new(StringArray::from_iter(
                group.iter().map(|(_, r)| r.skip.map(|s| s.as_str())),
            )),
        ];
        self.table.write_group(columns)
    }

    /// Writes the last row group and the footer, and puts the file in place.
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.table.finish()
    }
}

/// Writes variant scores (`results` parallel to `file.variants`) as Parquet to `out` and puts
/// it in place.
pub fn write_variants(
    out: Output,
    kind: ScoreKind,
    file: &VariantFile,
    results: &[VariantResult],
    metadata: &[(String, String)],
) -> Result<()> {
    let mut table = ParquetVariants::create(out, kind, metadata)?;
    for (v, r) in file.variants.iter().zip(results) {
        table.record(v, r)?;
    }
    table.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn intervals_round_trip_in_several_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let out = Output::create(Some(&path)).unwrap();
        let meta = vec![("ssmgen_version".to_string(), "x".to_string())];
        let mut w = ParquetIntervals::create(out, &meta).unwrap();
        let n = ROWS_PER_GROUP as u64 * 2 + 5;
        for i in 0..n {
            let chrom = if i < n / 2 { "a" } else { "b" };
            w.interval(chrom, i, i + 1, i as f32 * 0.5).unwrap();
        }
        assert!(!path.exists(), "the file appears only when finished");
        w.finish().unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        assert_eq!(builder.metadata().num_row_groups(), 3);
        let kv = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .clone();
        assert!(kv.iter().any(|k| k.key == "ssmgen_version"));
        let mut seen = 0u64;
        for batch in builder.build().unwrap() {
            let batch = batch.unwrap();
            let start = batch
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            let value = batch
                .column(3)
                .as_any()
                .downcast_ref::<Float32Array>()
                .unwrap();
            for r in 0..batch.num_rows() {
                assert_eq!(start.value(r) as u64, seen);
                assert_eq!(value.value(r), seen as f32 * 0.5);
                seen += 1;
            }
        }
        assert_eq!(seen, n);
    }

    #[test]
    fn embeddings_groups_follow_the_dimension() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.parquet");
        let out = Output::create(Some(&path)).unwrap();
        let dim = 3;
        let mut w = Box::new(ParquetEmbeddings::create(out, dim, &[]).unwrap());
        for i in 0..10u64 {
            let values = [i as f32, -(i as f32), 0.25];
            w.write_row(&EmbeddingRow {
                chrom: "c",
                start: i,
                end: i + 1,
                name: "n",
                values: &values,
            })
            .unwrap();
        }
        let bad = w.write_row(&EmbeddingRow {
            chrom: "c",
            start: 0,
            end: 1,
            name: "n",
            values: &[1.0],
        });
        assert!(bad.is_err());
        w.finish().unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
        let batch = &batches[0];
        let list = batch
            .column(4)
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .unwrap();
        assert_eq!(list.value_length(), 3);
        let row7 = list.value(7);
        let row7 = row7.as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!(row7.values().to_vec(), vec![7.0, -7.0, 0.25]);
    }
}

/// Memory stays flat: the peak RSS after 20 M rows is within a few MB of the peak after 2 M.
/// Ignored by default (it measures the whole test process; run it alone:
/// `cargo test --release --lib memory_stays_flat -- --ignored --nocapture`).
#[cfg(all(test, target_os = "linux"))]
mod memory {
    use super::*;

    fn peak_rss_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    #[test]
    #[ignore]
    fn memory_stays_flat_over_20m_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let out = Output::create(Some(&path)).unwrap();
        let mut w = ParquetIntervals::create(out, &[]).unwrap();
        let mut at_2m = 0;
        for i in 0..20_000_000u64 {
            w.interval("chr1", i, i + 1, -((i % 7) as f32)).unwrap();
            if i == 2_000_000 {
                at_2m = peak_rss_kb();
            }
        }
        w.finish().unwrap();
        let at_end = peak_rss_kb();
        eprintln!("peak RSS: {at_2m} kB after 2 M rows, {at_end} kB after 20 M");
        assert!(at_end < at_2m + 8 * 1024, "{at_2m} kB -> {at_end} kB");
    }
}
