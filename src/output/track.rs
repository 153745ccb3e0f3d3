//! Per-base likelihood tracks: bedGraph or bigWig (per base or binned) and CSV.

use std::io::Write;

use crate::error::{Error, Result};
use crate::output::{Output, csv_error};

/// Receives per-base scores of one record span in forward order.
pub trait TrackSink {
    /// A new span of record `name` starting at 0-based `start`.
    fn begin(&mut self, name: &str, start: u64) -> Result<()>;
    /// Bases at `start..start + bases.len()`, with the forward and reverse-strand scores where
    /// computed (`NaN` = no score).
    fn write(
        &mut self,
        start: u64,
        bases: &[u8],
        fwd: Option<&[f32]>,
        rev: Option<&[f32]>,
    ) -> Result<()>;
    /// The span is complete.
    fn end(&mut self) -> Result<()>;
    /// All spans are written: flush and rename the output into place.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// The one value reported for a base: the strand's score, or with both strands the mean of
/// those that exist (a record's first base has no forward score, its last no reverse one).
pub fn combined(fwd: Option<f32>, rev: Option<f32>) -> Option<f32> {
    let f = fwd.filter(|v| !v.is_nan());
    let r = rev.filter(|v| !v.is_nan());
    match (f, r) {
        (Some(a), Some(b)) => Some(0.5 * (a + b)),
        (a, b) => a.or(b),
    }
}

fn at(scores: Option<&[f32]>, i: usize) -> Option<f32> {
    scores.map(|s| s[i])
}

/// Where the intervals of a bedGraph-like track go: text lines or a bigWig file.
pub trait IntervalWriter {
    /// One interval `[start, end)` of `chrom` with its value, in ascending order per chrom.
    fn interval(&mut self, chrom: &str, start: u64, end: u64, value: f32) -> Result<()>;
    /// Everything is written: put the output into place.
    fn finish(self) -> Result<()>;
}

/// bedGraph text: `chrom  start  end  value`, 0-based half-open.
pub struct BedGraphLines {
    out: Output,
    line: Vec<u8>,
}

impl BedGraphLines {
    /// Lines written to `out`.
    pub fn new(out: Output) -> Self {
        BedGraphLines {
            out,
            line: Vec::with_capacity(128),
        }
    }
}

impl IntervalWriter for BedGraphLines {
    fn interval(&mut self, chrom: &str, start: u64, end: u64, value: f32) -> Result<()> {
        let mut ib = itoa::Buffer::new();
        let mut rb = ryu::Buffer::new();
        self.line.clear();
        self.line.extend_from_slice(chrom.as_bytes());
        self.line.push(b'\t');
        self.line.extend_from_slice(ib.format(start).as_bytes());
        self.line.push(b'\t');
        self.line.extend_from_slice(ib.format(end).as_bytes());
        self.line.push(b'\t');
        self.line.extend_from_slice(rb.format(value).as_bytes());
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .map_err(|e| write_error(&self.out, e))
    }

    fn finish(self) -> Result<()> {
        self.out.commit()
    }
}

/// A per-base track as intervals: one per scored base, or with `bin` the mean over each
/// `bin`-base window aligned to multiples of `bin` (windows without a scored base are left
/// out; the first and last window of a span are clipped to it).
pub struct IntervalSink<W: IntervalWriter> {
    writer: W,
    bin: Option<u64>,
    name: String,
    span_start: u64,
    /// Current bin: its index, sum and count.
    acc: Option<(u64, f64, u64)>,
    last_end: u64,
}

/// The bedGraph track sink.
pub type BedGraphSink = IntervalSink<BedGraphLines>;

impl BedGraphSink {
    /// Writes bedGraph to `out`, per base or in bins of `bin` bases.
    pub fn new(out: Output, bin: Option<u64>) -> Self {
        IntervalSink::with_writer(BedGraphLines::new(out), bin)
    }
}

impl<W: IntervalWriter> IntervalSink<W> {
    /// Intervals go to `writer`, per base or in bins of `bin` bases.
    pub fn with_writer(writer: W, bin: Option<u64>) -> Self {
        IntervalSink {
            writer,
            bin: bin.filter(|&b| b > 1),
            name: String::new(),
            span_start: 0,
            acc: None,
            last_end: 0,
        }
    }

    fn flush_bin(&mut self) -> Result<()> {
        if let (Some(bin), Some((index, sum, count))) = (self.bin, self.acc.take())
            && count > 0
        {
            let start = (index * bin).max(self.span_start);
            let end = ((index + 1) * bin).min(self.last_end);
            self.writer
                .interval(&self.name, start, end, (sum / count as f64) as f32)?;
        }
        Ok(())
    }
}

fn write_error(out: &Output, e: std::io::Error) -> Error {
    Error::io(out.path().unwrap_or(std::path::Path::new("<stdout>")), e)
}

impl<W: IntervalWriter> TrackSink for IntervalSink<W> {
    fn begin(&mut self, name: &str, start: u64) -> Result<()> {
        self.name = name.to_string();
        self.span_start = start;
        self.last_end = start;
        self.acc = None;
        Ok(())
    }

    fn write(
        &mut self,
        start: u64,
        bases: &[u8],
        fwd: Option<&[f32]>,
        rev: Option<&[f32]>,
    ) -> Result<()> {
        for i in 0..bases.len() {
            let pos = start + i as u64;
            self.last_end = pos + 1;
            let value = combined(at(fwd, i), at(rev, i));
            match self.bin {
                None => {
                    if let Some(v) = value {
                        self.writer.interval(&self.name, pos, pos + 1, v)?;
                    }
                }
                Some(bin) => {
                    let index = pos / bin;
                    if self.acc.is_some_and(|(b, _, _)| b != index) {
                        self.last_end = pos;
                        self.flush_bin()?;
                        self.last_end = pos + 1;
                    }
                    let acc = self.acc.get_or_insert((index, 0.0, 0));
                    if let Some(v) = value {
                        acc.1 += v as f64;
                        acc.2 += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        self.flush_bin()
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.writer.finish()
    }
}

/// CSV with a header: `chrom,pos,base,logp_fwd,logp_rev,logp`; `pos` is 1-based, strands not
/// computed and unscored bases are empty cells.
pub struct CsvSink {
    writer: csv::Writer<Output>,
    name: String,
    path: std::path::PathBuf,
}

impl CsvSink {
    /// Writes the header to `out`.
    pub fn new(out: Output) -> Result<Self> {
        let path = out.display_path();
        let mut writer = csv::WriterBuilder::new().from_writer(out);
        writer
            .write_record(["chrom", "pos", "base", "logp_fwd", "logp_rev", "logp"])
            .map_err(|e| csv_error(&path, e))?;
        Ok(CsvSink {
            writer,
            name: String::new(),
            path,
        })
    }
}

impl TrackSink for CsvSink {
    fn begin(&mut self, name: &str, _start: u64) -> Result<()> {
        self.name = name.to_string();
        Ok(())
    }

    fn write(
        &mut self,
        start: u64,
        bases: &[u8],
        fwd: Option<&[f32]>,
        rev: Option<&[f32]>,
    ) -> Result<()> {
        let mut pos_buf = itoa::Buffer::new();
        let (mut fb, mut rb, mut cb) = (ryu::Buffer::new(), ryu::Buffer::new(), ryu::Buffer::new());
        for (i, base) in bases.iter().enumerate() {
            let f = at(fwd, i).filter(|v| !v.is_nan());
            let r = at(rev, i).filter(|v| !v.is_nan());
            let c = combined(f, r);
            let record: [&[u8]; 6] = [
                self.name.as_bytes(),
                pos_buf.format(start + i as u64 + 1).as_bytes(),
                std::slice::from_ref(base),
                f.map_or(&b""[..], |v| fb.format(v).as_bytes()),
                r.map_or(&b""[..], |v| rb.format(v).as_bytes()),
                c.map_or(&b""[..], |v| cb.format(v).as_bytes()),
            ];
            self.writer
                .write_record(record)
                .map_err(|e| csv_error(&self.path, e))?;
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let out = self
            .writer
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        out.commit()
    }
}
