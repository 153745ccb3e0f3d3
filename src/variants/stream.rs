//! Variant input read record by record: VCF text (plain, gzip or bgzip; header through
//! noodles' header reader, data lines kept verbatim for annotated VCF output), BCF (noodles'
//! reader, one record at a time, re-encoded as VCF text) or a `chrom,pos,ref,alt` table, from a
//! file or stdin, the kind sniffed from the bytes. Memory holds one record, never the file.

use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use super::input::{MAX_BCF_RECORD, Variant, check_sizes};
use crate::error::{Error, Result};

/// The largest BCF header text accepted, in bytes.
pub const MAX_BCF_HEADER: u64 = 256 << 20;

/// One input record: its REF/ALT pairs (multi-allelic records split) and, for VCF, its line.
#[derive(Clone, Debug)]
pub struct InputRecord {
    /// One entry per ALT, in order; `record` is this record's 0-based index.
    pub variants: Vec<Variant>,
    /// The VCF data line as read (BCF: as noodles writes it); `None` for a table.
    pub line: Option<String>,
    /// 1-based line (VCF text, table) or record (BCF) number, for messages.
    pub line_no: u64,
}

/// Where [`super::driver::score_stream`] reads records from: a variant file, or generated
/// variants (saturation mutagenesis).
pub trait RecordSource {
    /// The next record, or `None` at the end.
    fn next_record(&mut self) -> Result<Option<InputRecord>>;
    /// The input's name, for messages.
    fn path(&self) -> &Path;
}

impl RecordSource for VariantStream {
    fn next_record(&mut self) -> Result<Option<InputRecord>> {
        VariantStream::next_record(self)
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

enum Kind {
    Vcf,
    Table {
        sep: char,
        names: Vec<String>,
        cols: [usize; 4],
        id: Option<usize>,
    },
    Bcf {
        header: Box<noodles_vcf::Header>,
        samples: Option<u64>,
    },
}

/// A variant input read record by record.
pub struct VariantStream {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    kind: Kind,
    /// VCF meta lines (`##...`) and the `#CHROM` line; empty for a table.
    pub header: Vec<String>,
    /// Whether the input is VCF or BCF (else a table).
    pub is_vcf: bool,
    records: usize,
    line_no: u64,
    line: Vec<u8>,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Skips blank lines at the start of `reader`, counting them in `line_no`.
fn skip_blank(reader: &mut dyn BufRead, path: &Path, line_no: &mut u64) -> Result<()> {
    loop {
        let buf = reader.fill_buf().map_err(io_err(path))?;
        match buf.first() {
            Some(b'\n') => {
                reader.consume(1);
                *line_no += 1;
            }
            Some(b'\r' | b' ' | b'\t') => {
                // A line of only whitespace is blank; anything else on it is the first line.
                let end = buf.iter().position(|&b| b == b'\n');
                let blank = match end {
                    Some(e) => buf[..e].iter().all(u8::is_ascii_whitespace),
                    None => false,
                };
                if !blank {
                    return Ok(());
                }
                let n = end.unwrap_or(0) + 1;
                reader.consume(n);
                *line_no += 1;
            }
            _ => return Ok(()),
        }
    }
}

impl VariantStream {
    /// Opens a VCF (plain, gzip, bgzip), BCF or variant table; `-` reads stdin.
    pub fn open(path: &Path) -> Result<Self> {
        let source: Box<dyn Read + Send> = if path == Path::new("-") {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(path).map_err(io_err(path))?)
        };
        Self::from_reader(path, source)
    }

    /// Reads the variants in `source`; `path` names it in messages.
    pub fn from_reader(path: &Path, source: Box<dyn Read + Send>) -> Result<Self> {
        let mut raw = BufReader::with_capacity(1 << 16, source);
        let head = raw.fill_buf().map_err(io_err(path))?;
        let mut reader: Box<dyn BufRead + Send> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(BufReader::with_capacity(
                1 << 16,
                flate2::read::MultiGzDecoder::new(raw),
            ))
        } else {
            Box::new(raw)
        };
        if reader.fill_buf().map_err(io_err(path))?.starts_with(b"BCF") {
            return Self::open_bcf(path, reader);
        }
        let mut line_no = 0;
        skip_blank(&mut reader, path, &mut line_no)?;
        let head = reader.fill_buf().map_err(io_err(path))?;
        if head.is_empty() {
            return Err(Error::format(path, "is empty: no VCF header and no table"));
        }
        let is_vcf = head.starts_with(b"##fileformat=VCF") || head.starts_with(b"#CHROM");
        let mut stream = VariantStream {
            path: path.to_path_buf(),
            reader,
            kind: Kind::Vcf,
            header: Vec::new(),
            is_vcf: true,
            records: 0,
            line_no,
            line: Vec::new(),
        };
        if is_vcf {
            let mut text = Vec::new();
            noodles_vcf::io::Reader::new(&mut stream.reader)
                .header_reader()
                .read_to_end(&mut text)
                .map_err(io_err(path))?;
            let text = String::from_utf8(text)
                .map_err(|e| Error::format(path, format!("not UTF-8 text: {e}")))?;
            for line in text.lines() {
                stream.header.push(line.trim_end_matches('\r').to_string());
            }
            stream.line_no += stream.header.len() as u64;
        } else {
            stream.is_vcf = false;
            stream.open_table()?;
        }
        Ok(stream)
    }

    fn open_table(&mut self) -> Result<()> {
        let path = self.path.clone();
        let Some(header) = self.next_line()? else {
            return Err(Error::format(&path, "is empty: no VCF header and no table"));
        };
        let sep = if header.contains('\t') { '\t' } else { ',' };
        let names: Vec<String> = header
            .split(sep)
            .map(|s| s.trim().trim_start_matches('#').to_ascii_lowercase())
            .collect();
        let col = |name: &str| names.iter().position(|n| n == name);
        let (Some(ci), Some(pi), Some(ri), Some(ai)) =
            (col("chrom"), col("pos"), col("ref"), col("alt"))
        else {
            return Err(Error::format(
                &path,
                "not a VCF, and as a table the first line must name the columns chrom, pos, ref and alt",
            ));
        };
        let id = col("id");
        self.kind = Kind::Table {
            sep,
            names,
            cols: [ci, pi, ri, ai],
            id,
        };
        Ok(())
    }

    fn open_bcf(path: &Path, mut reader: Box<dyn BufRead + Send>) -> Result<Self> {
        let bad = |m: String| Error::format(path, format!("cannot decode BCF: {m}"));
        let mut head = [0u8; 9];
        reader
            .read_exact(&mut head)
            .map_err(|_| bad("too short for a BCF header".into()))?;
        let text_len = u32::from_le_bytes([head[5], head[6], head[7], head[8]]) as u64;
        if text_len > MAX_BCF_HEADER {
            return Err(bad(format!(
                "the header claims {text_len} bytes of text, more than the {MAX_BCF_HEADER} ssmgen accepts"
            )));
        }
        let mut raw = head.to_vec();
        let got = (&mut reader)
            .take(text_len)
            .read_to_end(&mut raw)
            .map_err(io_err(path))?;
        if (got as u64) < text_len {
            return Err(bad(format!(
                "the header claims {text_len} bytes of text but the file has {got}"
            )));
        }
        // The samples the header names: every record must carry exactly that many (a record
        // claiming 2^24 made the decoder loop over them, a 567-byte file taking 0.4 s).
        let samples = raw[9..]
            .split(|&b| b == b'\n')
            .find(|l| l.starts_with(b"#CHROM"))
            .map(|l| {
                let l = l.strip_suffix(b"\0").unwrap_or(l);
                l.split(|&b| b == b'\t').count().saturating_sub(9) as u64
            });
        let parsed = crate::guard::catch(|| -> Result<(noodles_vcf::Header, Vec<u8>)> {
            let bad = |e: std::io::Error| Error::format(path, format!("cannot decode BCF: {e}"));
            let header = noodles_bcf::io::Reader::from(&raw[..])
                .read_header()
                .map_err(bad)?;
            let mut writer = noodles_vcf::io::Writer::new(Vec::new());
            writer.write_header(&header).map_err(bad)?;
            Ok((header, writer.into_inner()))
        })
        .map_err(|panic| bad(format!("the header: {panic}")))??;
        let (header, text) = parsed;
        let text = String::from_utf8(text)
            .map_err(|_| Error::format(path, "BCF holds text that is not UTF-8"))?;
        Ok(VariantStream {
            path: path.to_path_buf(),
            reader,
            kind: Kind::Bcf {
                header: Box::new(header),
                samples,
            },
            header: text.lines().map(str::to_string).collect(),
            is_vcf: true,
            records: 0,
            line_no: 0,
            line: Vec::new(),
        })
    }

    /// The input's name as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next non-blank line (without its line end), or `None` at the end.
    fn next_line(&mut self) -> Result<Option<String>> {
        loop {
            self.line.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.line)
                .map_err(io_err(&self.path))?;
            if n == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            let mut l = &self.line[..];
            l = l.strip_suffix(b"\n").unwrap_or(l);
            l = l.strip_suffix(b"\r").unwrap_or(l);
            if l.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = std::str::from_utf8(l).map_err(|e| {
                Error::format(
                    &self.path,
                    format!("line {}: not UTF-8 text: {e}", self.line_no),
                )
            })?;
            return Ok(Some(text.to_string()));
        }
    }

    /// The next BCF record as a VCF line, or `None` at the end.
    fn next_bcf_line(&mut self) -> Result<Option<String>> {
        let Kind::Bcf { header, samples } = &self.kind else {
            return Ok(None);
        };
        let n = self.line_no + 1;
        let path = self.path.clone();
        let bad = |m: String| Error::format(&path, format!("cannot decode BCF: record {n}: {m}"));
        let mut lengths = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            match self
                .reader
                .read(&mut lengths[got..])
                .map_err(io_err(&path))?
            {
                0 if got == 0 => return Ok(None),
                0 => return Err(bad("truncated record lengths".into())),
                k => got += k,
            }
        }
        self.line_no = n;
        let shared = u32::from_le_bytes([lengths[0], lengths[1], lengths[2], lengths[3]]) as u64;
        let indiv = u32::from_le_bytes([lengths[4], lengths[5], lengths[6], lengths[7]]) as u64;
        let size = shared + indiv;
        if size > MAX_BCF_RECORD {
            return Err(bad(format!(
                "{size} bytes, more than the {MAX_BCF_RECORD} ssmgen accepts"
            )));
        }
        if shared < 24 {
            return Err(bad(format!(
                "{shared} bytes of site data, less than the 24 every record has"
            )));
        }
        self.line.clear();
        self.line.extend_from_slice(&lengths);
        let read = (&mut self.reader)
            .take(size)
            .read_to_end(&mut self.line)
            .map_err(io_err(&path))?;
        if (read as u64) < size {
            return Err(bad("the file ends inside the record".into()));
        }
        let site = 8;
        let n_sample = self
            .line
            .get(site + 20..site + 23)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], 0]) as u64);
        if let Some(samples) = *samples
            && n_sample != samples
        {
            return Err(bad(format!(
                "{n_sample} samples, but the header names {samples}"
            )));
        }
        let bytes = &self.line;
        let decoded = crate::guard::catch(|| -> Result<Vec<u8>> {
            use noodles_vcf::variant::io::Write as _;
            let mut reader = noodles_bcf::io::Reader::from(&bytes[..]);
            let mut record = noodles_bcf::Record::default();
            reader
                .read_record(&mut record)
                .map_err(|e| Error::format(&path, format!("BCF record {n}: cannot decode: {e}")))?;
            let mut writer = noodles_vcf::io::Writer::new(Vec::new());
            writer
                .write_variant_record(header, &record)
                .map_err(|e| Error::format(&path, format!("BCF record {n}: {e}")))?;
            Ok(writer.into_inner())
        })
        .map_err(|panic| {
            Error::format(&path, format!("BCF record {n}: cannot decode ({panic})"))
        })??;
        let mut text = String::from_utf8(decoded)
            .map_err(|_| Error::format(&path, "BCF holds text that is not UTF-8"))?;
        while text.ends_with(['\n', '\r']) {
            text.pop();
        }
        Ok(Some(text))
    }

    /// The next record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<InputRecord>> {
        match &self.kind {
            Kind::Bcf { .. } => {
                let Some(line) = self.next_bcf_line()? else {
                    return Ok(None);
                };
                self.vcf_record(line).map(Some)
            }
            Kind::Vcf => loop {
                let Some(line) = self.next_line()? else {
                    return Ok(None);
                };
                if line.starts_with('#') {
                    // A header line among the records: not part of any record.
                    continue;
                }
                return self.vcf_record(line).map(Some);
            },
            Kind::Table { .. } => {
                let Some(line) = self.next_line()? else {
                    return Ok(None);
                };
                self.table_record(&line).map(Some)
            }
        }
    }

    fn vcf_record(&mut self, line: String) -> Result<InputRecord> {
        let what = if matches!(self.kind, Kind::Bcf { .. }) {
            "record"
        } else {
            "line"
        };
        let bad = |m: String| Error::format(&self.path, format!("{what} {}: {m}", self.line_no));
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 5 {
            return Err(bad(format!(
                "a VCF record needs at least 5 tab-separated columns, found {}",
                f.len()
            )));
        }
        let pos: u64 = f[1]
            .parse()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| bad(format!("POS {:?} is not a positive whole number", f[1])))?;
        check_sizes(f[0], pos, f[3], f[4]).map_err(bad)?;
        let record = self.records;
        self.records += 1;
        let variants = f[4]
            .split(',')
            .enumerate()
            .map(|(alt_index, alt)| Variant {
                chrom: f[0].to_string(),
                pos,
                id: f[2].to_string(),
                reference: f[3].to_string(),
                alt: alt.to_string(),
                record,
                alt_index,
            })
            .collect();
        Ok(InputRecord {
            variants,
            line: Some(line),
            line_no: self.line_no,
        })
    }

    fn table_record(&mut self, line: &str) -> Result<InputRecord> {
        let Kind::Table {
            sep,
            names,
            cols: [ci, pi, ri, ai],
            id,
        } = &self.kind
        else {
            unreachable!("a table record from a table");
        };
        let f: Vec<&str> = line.split(*sep).map(str::trim).collect();
        let n = self.line_no;
        let bad = |m: String| Error::format(&self.path, format!("line {n}: {m}"));
        let get = |i: usize| {
            f.get(i)
                .copied()
                .ok_or_else(|| bad(format!("needs {} columns, found {}", names.len(), f.len())))
        };
        let pos: u64 = get(*pi)?.parse().ok().filter(|&p| p > 0).ok_or_else(|| {
            bad(format!(
                "pos {:?} is not a positive whole number (1-based)",
                f.get(*pi)
            ))
        })?;
        check_sizes(get(*ci)?, pos, get(*ri)?, get(*ai)?).map_err(bad)?;
        let record = self.records;
        let mut variants = Vec::new();
        for (alt_index, alt) in get(*ai)?.split(',').enumerate() {
            variants.push(Variant {
                chrom: get(*ci)?.to_string(),
                pos,
                id: id
                    .and_then(|i| f.get(i))
                    .map_or(".".to_string(), |s| s.to_string()),
                reference: get(*ri)?.to_string(),
                alt: alt.to_string(),
                record,
                alt_index,
            });
        }
        self.records += 1;
        Ok(InputRecord {
            variants,
            line: None,
            line_no: n,
        })
    }
}

/// Reads `bytes` (a whole input, for tests and fuzzing) as a stream.
pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<VariantStream> {
    VariantStream::from_reader(path, Box::new(Cursor::new(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &[u8]) -> Result<(VariantStream, Vec<InputRecord>)> {
        let mut s = from_bytes(Path::new("t"), text.to_vec())?;
        let mut out = Vec::new();
        while let Some(r) = s.next_record()? {
            out.push(r);
        }
        Ok((s, out))
    }

    #[test]
    fn vcf_records_keep_their_lines_and_split_alts() {
        let (s, r) = records(
            b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nc1\t5\trs1\tA\tG,T\t.\t.\t.\r\n\nc1\t9\t.\tA\tC\t.\t.\tX=1\n",
        )
        .unwrap();
        assert_eq!(s.header.len(), 2);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].variants.len(), 2);
        assert_eq!(r[0].line.as_deref(), Some("c1\t5\trs1\tA\tG,T\t.\t.\t."));
        assert_eq!((r[1].variants[0].record, r[1].line_no), (1, 5));
    }

    #[test]
    fn bad_pos_names_the_line() {
        let e = records(b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\nc1\tx\t.\tA\tG\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("line 3") && e.contains("POS"), "{e}");
    }

    #[test]
    fn gzip_and_table_are_sniffed() {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"chrom\tpos\tref\talt\nc1\t7\tAC\tA\n")
            .unwrap();
        let (s, r) = records(&gz.finish().unwrap()).unwrap();
        assert!(!s.is_vcf);
        assert_eq!((r[0].variants[0].pos, r[0].line_no), (7, 2));
    }
}
