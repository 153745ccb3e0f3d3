//! Opening sequence files: FASTA or FASTQ, plain, gzip or bgzip, from a path or stdin.
//!
//! A file with a `.fai` index is read region by region: memory-mapped when uncompressed, through
//! the `.gzi` index when bgzip-compressed; a plain FASTA asked for regions without one gets it
//! built, and written beside it when the folder allows. Anything else is streamed record by record, with a
//! record's bases delivered in chunks so a chromosome never has to be held whole.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use noodles_fasta as fasta;
use noodles_fasta::fai;

use crate::error::{Error, Result};

/// Bytes read through the memory map before its pages are handed back to the kernel.
const MMAP_RELEASE_BYTES: u64 = 16 << 20;

/// The longest record name accepted (FASTA, FASTQ, `.fai`), in bytes: a name is repeated on
/// every output line, so a huge one would multiply the output.
pub const MAX_NAME_LEN: usize = 4096;
/// The longest FASTA/FASTQ header line accepted (name plus description), in bytes.
pub const MAX_HEADER_LEN: usize = 1 << 16;
/// The longest FASTQ read accepted, in bases (a read is held in memory whole).
pub const MAX_FASTQ_BASES: usize = 100_000_000;

/// One line read with a length limit.
enum Line {
    /// The end of the input.
    Eof,
    /// A line (without its `\n`; a trailing `\r` kept).
    Text,
    /// The line is longer than the limit (its start is in the buffer).
    TooLong,
}

/// Reads one line into `buf` (replacing it), reading at most `limit + 2` bytes of it.
fn read_line_limited(
    reader: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut any = false;
    loop {
        let src = reader.fill_buf()?;
        if src.is_empty() {
            return Ok(if any { Line::Text } else { Line::Eof });
        }
        any = true;
        let (take, done) = match src.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (src.len(), false),
        };
        let room = (limit + 2).saturating_sub(buf.len());
        if take > room {
            buf.extend_from_slice(&src[..room]);
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(&src[..take]);
        reader.consume(take + usize::from(done));
        if done {
            return Ok(Line::Text);
        }
    }
}

/// The name in a header line (after `>` or `@`): up to the first whitespace.
fn header_name(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(line.len());
    &line[..end]
}

/// Checks a header line read with [`read_line_limited`] and returns the record name.
fn parse_header(path: &Path, what: &str, line: &[u8], status: &Line) -> Result<String> {
    let bad = |m: String| Error::format(path, format!("{what}: {m}"));
    let body = line.strip_suffix(b"\r").unwrap_or(line);
    if body.contains(&b'\r') {
        return Err(bad(
            "the file uses bare carriage returns (\\r) as line ends; convert it with `tr '\\r' '\\n'`"
                .into(),
        ));
    }
    if matches!(status, Line::TooLong) {
        return Err(bad(format!(
            "header line is longer than {MAX_HEADER_LEN} bytes, the most ssmgen accepts"
        )));
    }
    let name = header_name(&body[1..]);
    if name.is_empty() {
        return Err(bad(format!("empty name after '{}'", body[0] as char)));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad(format!(
            "record name is {} bytes long; the most ssmgen accepts is {MAX_NAME_LEN}",
            name.len()
        )));
    }
    String::from_utf8(name.to_vec()).map_err(|_| bad("record name is not UTF-8 text".into()))
}

/// Whether the gzip stream at `path` is BGZF (bgzip): a gzip header with the `BC` extra field.
fn is_bgzf(path: &Path) -> bool {
    let mut head = [0u8; 18];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head[3] & 4 != 0 && head[12] == b'B' && head[13] == b'C')
}

/// A FASTA or FASTQ input, indexed or streamed.
pub enum SequenceFile {
    /// Random access through a `.fai` index.
    Indexed(IndexedFasta),
    /// Sequential reading.
    Stream(StreamFile),
}

trait BufReadSeek: BufRead + Seek + Send {}
impl<T: BufRead + Seek + Send> BufReadSeek for T {}

/// A FASTA file with a `.fai` index (and a `.gzi` when bgzip-compressed).
pub struct IndexedFasta {
    path: PathBuf,
    index: fai::Index,
    reader: Box<dyn BufReadSeek>,
    /// The map, when uncompressed, so consumed pages can be released.
    map: Option<std::sync::Arc<memmap2::Mmap>>,
    fetched_since_release: u64,
    fai_path: PathBuf,
    /// Records whose header and end were checked against the file.
    verified: std::collections::HashSet<usize>,
    /// One line of the file, reused.
    line: Vec<u8>,
}

/// Whether a streamed file holds FASTA or FASTQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFormat {
    /// `>` records.
    Fasta,
    /// `@` records.
    Fastq,
}

/// A sequentially read FASTA/FASTQ file (plain or gzip), or stdin.
pub struct StreamFile {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    format: Option<StreamFormat>,
    counts: RecordCounts,
}

/// How many records a run has met, and how many of them had no bases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordCounts {
    /// Records read.
    pub records: u64,
    /// Records with no bases (a header and nothing else).
    pub empty: u64,
}

/// Where a `Mmap` lives inside the reader: `Cursor` needs `AsRef<[u8]>`.
struct SharedMap(std::sync::Arc<memmap2::Mmap>);
impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(ext);
    PathBuf::from(s)
}

fn is_gzip(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 2];
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    match f.read_exact(&mut magic) {
        Ok(()) => Ok(magic == [0x1f, 0x8b]),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

impl SequenceFile {
    /// Opens `path` (`-` for stdin). With `need_index`, a file without a usable index is an
    /// error that says how to make one.
    pub fn open(path: &Path, need_index: bool) -> Result<Self> {
        if path == Path::new("-") {
            if need_index {
                return Err(Error::format(
                    "-",
                    "regions need an indexed file; stdin cannot be indexed",
                ));
            }
            let reader: Box<dyn BufRead + Send> = Box::new(BufReader::new(io::stdin()));
            return StreamFile::new(PathBuf::from("<stdin>"), reader).map(SequenceFile::Stream);
        }
        if path.is_dir() {
            return Err(Error::format(path, "is a directory, not a sequence file"));
        }
        let gz = is_gzip(path)?;
        let fai_path = sibling(path, ".fai");
        let gzi_path = sibling(path, ".gzi");
        let has_fai = fai_path.is_file();
        if has_fai && (!gz || gzi_path.is_file()) {
            return IndexedFasta::open(path, &fai_path, gz.then_some(gzi_path.as_path()))
                .map(SequenceFile::Indexed);
        }
        if need_index && !gz && !has_fai {
            // As `samtools faidx` would: index the plain FASTA now, and keep the index beside
            // it when that folder is writable (else in memory only).
            let index = build_fai(path)?;
            save_fai(&fai_path, &index);
            return IndexedFasta::open_with_index(path, &fai_path, index, None)
                .map(SequenceFile::Indexed);
        }
        if need_index {
            let message = if gz && !is_bgzf(path) {
                format!(
                    "regions need random access, which plain gzip does not allow: recompress with bgzip (`gunzip -c {0} | bgzip > NEW.fa.gz`) and index that with `samtools faidx NEW.fa.gz`",
                    path.display()
                )
            } else if !has_fai {
                format!(
                    "regions need a FASTA index, but {} does not exist (make it with `samtools faidx {}`)",
                    fai_path.display(),
                    path.display()
                )
            } else {
                format!(
                    "regions in a bgzip FASTA need {} (make it with `bgzip -r {}`)",
                    gzi_path.display(),
                    path.display()
                )
            };
            return Err(Error::format(path, message));
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let reader: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(1 << 16, file));
        StreamFile::new(path.to_path_buf(), reader).map(SequenceFile::Stream)
    }

    /// Records met so far and how many had no bases (an indexed file: all of its records).
    pub fn counts(&self) -> RecordCounts {
        match self {
            SequenceFile::Indexed(f) => RecordCounts {
                records: f.index.as_ref().len() as u64,
                empty: f.index.as_ref().iter().filter(|r| r.length() == 0).count() as u64,
            },
            SequenceFile::Stream(f) => f.counts,
        }
    }

    /// After a run over every record: an error if no record had a base; a warning (or with
    /// `strict` an error) saying how many records had none and were skipped.
    pub fn check_counts(&self, strict: bool) -> Result<Option<String>> {
        let c = self.counts();
        if c.empty == 0 {
            return Ok(None);
        }
        if c.empty == c.records {
            return Err(Error::format(
                self.path(),
                format!(
                    "no bases in any of its {} record(s) (header lines only)",
                    c.records
                ),
            ));
        }
        let message = format!(
            "{} of {} record(s) have no bases and were skipped",
            c.empty, c.records
        );
        if strict {
            return Err(Error::format(self.path(), format!("{message} (--strict)")));
        }
        Ok(Some(format!(
            "{}: {message} (--strict makes this an error)",
            self.path().display()
        )))
    }

    /// The file's path as given (or `<stdin>`).
    pub fn path(&self) -> &Path {
        match self {
            SequenceFile::Indexed(f) => &f.path,
            SequenceFile::Stream(f) => &f.path,
        }
    }
}

impl IndexedFasta {
    fn open(path: &Path, fai_path: &Path, gzi_path: Option<&Path>) -> Result<Self> {
        let index = read_fai(fai_path)?;
        Self::open_with_index(path, fai_path, index, gzi_path)
    }

    fn open_with_index(
        path: &Path,
        fai_path: &Path,
        index: fai::Index,
        gzi_path: Option<&Path>,
    ) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let (reader, map): (Box<dyn BufReadSeek>, _) = match gzi_path {
            Some(gzi_path) => {
                let gzi = noodles_bgzf::gzi::fs::read(gzi_path)
                    .map_err(|e| Error::format(gzi_path, format!("not a valid .gzi index: {e}")))?;
                let reader = noodles_bgzf::io::IndexedReader::new(file, gzi);
                (Box::new(reader), None)
            }
            None => {
                // SAFETY: a read-only map; if another process truncates the file while we read
                // it the process may fault, as with any mmap-based reader (samtools included).
                let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
                let map = std::sync::Arc::new(map);
                (Box::new(Cursor::new(SharedMap(map.clone()))), Some(map))
            }
        };
        Self::from_parts(path, fai_path, index, reader, map)
    }

    /// An indexed FASTA held in memory: its bytes (bgzip-compressed when `gzi` is given), the
    /// text of its `.fai` and the bytes of its `.gzi`. For tests and fuzzing; `path` names it
    /// in messages.
    pub fn from_bytes(path: &Path, fasta: Vec<u8>, fai: &[u8], gzi: Option<&[u8]>) -> Result<Self> {
        let fai_path = sibling(path, ".fai");
        let index = fai::io::Reader::new(fai)
            .read_index()
            .map_err(|e| Error::format(&fai_path, format!("not a valid FASTA index: {e}")))?;
        let reader: Box<dyn BufReadSeek> = match gzi {
            Some(gzi) => {
                let gzi = noodles_bgzf::gzi::io::Reader::new(gzi)
                    .read_index()
                    .map_err(|e| {
                        Error::format(
                            sibling(path, ".gzi"),
                            format!("not a valid .gzi index: {e}"),
                        )
                    })?;
                Box::new(noodles_bgzf::io::IndexedReader::new(
                    Cursor::new(fasta),
                    gzi,
                ))
            }
            None => Box::new(Cursor::new(fasta)),
        };
        Self::from_parts(path, &fai_path, index, reader, None)
    }

    fn from_parts(
        path: &Path,
        fai_path: &Path,
        index: fai::Index,
        reader: Box<dyn BufReadSeek>,
        map: Option<std::sync::Arc<memmap2::Mmap>>,
    ) -> Result<Self> {
        check_index(fai_path, &index)?;
        let mut indexed = IndexedFasta {
            path: path.to_path_buf(),
            index,
            reader,
            map,
            fetched_since_release: 0,
            fai_path: fai_path.to_path_buf(),
            verified: Default::default(),
            line: Vec::new(),
        };
        if indexed.index.as_ref().is_empty() {
            let head = indexed.read_at(0, 1 << 16)?;
            let message = if head.iter().any(|b| !b.is_ascii_whitespace()) {
                format!(
                    "the index {} lists no records, but the file is not empty; re-index it with `samtools faidx {}`",
                    fai_path.display(),
                    path.display()
                )
            } else {
                "is empty: no FASTA records".to_string()
            };
            return Err(Error::format(path, message));
        }
        Ok(indexed)
    }

    /// The records in the index: `(name, length)`, in file order.
    pub fn records(&self) -> Vec<(String, u64)> {
        self.index
            .as_ref()
            .iter()
            .map(|r| (r.name().to_string(), r.length()))
            .collect()
    }

    /// The length of record `name`, if the index has it.
    pub fn length_of(&self, name: &str) -> Option<u64> {
        self.index
            .as_ref()
            .iter()
            .find(|r| r.name() == name.as_bytes())
            .map(|r| r.length())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces `buf` with bases `[start, end)` (0-based) of record `name`. Every line read is
    /// checked against the index (its length and line end), and the first fetch from a record
    /// checks that its header line and its end are where the index says: a `.fai` made for
    /// another file, another line width or an older version of this one is an error saying to
    /// re-index, never wrong bases.
    pub fn fetch(&mut self, name: &str, start: u64, end: u64, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        let Some(i) = self.position_of(name) else {
            return Err(Error::format(
                &self.path,
                format!("no record named '{name}' in the index"),
            ));
        };
        let record = self.index.as_ref()[i].clone();
        if !self.verified.contains(&i) {
            self.verify_record(&record)?;
            self.verified.insert(i);
        }
        if end <= start {
            return Ok(());
        }
        if end > record.length() {
            return Err(self.stale(
                name,
                format!(
                    "bases {}-{end} asked for, but the index gives the record {} bases",
                    start + 1,
                    record.length()
                ),
            ));
        }
        let lb = record.line_base_count().get();
        let lw = record.line_width().get();
        let length = record.length();
        let first_line = start / lb;
        let last_line = (end - 1) / lb;
        let at = record.position() + first_line * lw;
        if let Err(e) = self.reader.seek(SeekFrom::Start(at)) {
            return Err(self.stale(name, format!("cannot reach byte {at} ({e})")));
        }
        // The length comes from the index: reserve no more than a stripe's worth up front.
        buf.reserve(((end - start) as usize).min(1 << 24));
        let mut line = std::mem::take(&mut self.line);
        let terminator: &[u8] = if lw - lb == 2 { b"\r\n" } else { b"\n" };
        let mut result = Ok(());
        for l in first_line..=last_line {
            let lo = l * lb;
            let hi = (lo + lb).min(length);
            let last_of_record = hi == length;
            let want = (hi - lo) as usize + if last_of_record { 0 } else { terminator.len() };
            line.resize(want, 0);
            if let Err(e) = self.reader.read_exact(&mut line) {
                result = Err(self.stale(name, format!("the file ends before base {} ({e})", hi)));
                break;
            }
            let (bases, ending) = line.split_at((hi - lo) as usize);
            if let Some(k) = bases.iter().position(|b| matches!(b, b'\n' | b'\r' | b'>')) {
                result = Err(self.stale(
                    name,
                    format!(
                        "a line ends at base {}, not where the index says",
                        lo + k as u64 + 1
                    ),
                ));
                break;
            }
            if !last_of_record && ending != terminator {
                result = Err(self.stale(
                    name,
                    format!("no line end after base {hi}, where the index puts one"),
                ));
                break;
            }
            let from = (start.max(lo) - lo) as usize;
            let to = (end.min(hi) - lo) as usize;
            buf.extend_from_slice(&bases[from..to]);
        }
        self.line = line;
        result?;
        self.fetched_since_release += end - start;
        if self.fetched_since_release > MMAP_RELEASE_BYTES {
            self.fetched_since_release = 0;
            if let Some(map) = &self.map {
                // SAFETY: DontNeed on a read-only shared file mapping only drops clean pages,
                // which the kernel re-reads from the file on the next access.
                unsafe {
                    let _ = map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed);
                }
            }
        }
        Ok(())
    }

    fn position_of(&self, name: &str) -> Option<usize> {
        self.index
            .as_ref()
            .iter()
            .position(|r| r.name() == name.as_bytes())
    }

    /// The error for an index that does not match the file.
    fn stale(&self, name: &str, what: String) -> Error {
        Error::format(
            &self.path,
            format!(
                "record '{name}': {what}: the index {} does not match this file; re-index it with `samtools faidx {}`",
                self.fai_path.display(),
                self.path.display()
            ),
        )
    }

    /// Reads up to `n` bytes at uncompressed offset `at` (fewer at the end of the file; none
    /// past it).
    fn read_at(&mut self, at: u64, n: u64) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        if self.reader.seek(SeekFrom::Start(at)).is_err() {
            // Past the end of a bgzip file: nothing there.
            return Ok(out);
        }
        (&mut self.reader)
            .take(n)
            .read_to_end(&mut out)
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(out)
    }

    /// Checks that `record`'s header line ends right before its offset and names it, and that
    /// the record ends where its length says (a line end, then another record or the file's end).
    fn verify_record(&mut self, record: &fai::Record) -> Result<()> {
        let name = String::from_utf8_lossy(record.name()).into_owned();
        let offset = record.position();
        // The header line: look back for the newline before it, in a small window first.
        let mut window = 256u64 + name.len() as u64;
        let header = loop {
            let w = window.min(offset);
            let bytes = self.read_at(offset - w, w)?;
            if bytes.last() != Some(&b'\n') {
                return Err(self.stale(&name, "no header line ends where the record starts".into()));
            }
            let body = &bytes[..bytes.len() - 1];
            match body.iter().rposition(|&b| b == b'\n') {
                Some(p) => break body[p + 1..].to_vec(),
                None if w == offset => break body.to_vec(),
                None if window > MAX_HEADER_LEN as u64 => {
                    return Err(self.stale(&name, "no header line found before the record".into()));
                }
                None => window *= 16,
            }
        };
        let header = header.strip_suffix(b"\r").unwrap_or(&header);
        if header.first() != Some(&b'>') || header_name(&header[1..]) != record.name() {
            return Err(self.stale(
                &name,
                "the line before the record's offset is not its header".into(),
            ));
        }
        // The end: the last base, a line end (or the file's end), then '>' or the file's end.
        let length = record.length();
        let (lb, lw) = (record.line_base_count().get(), record.line_width().get());
        let last_base_at = if length == 0 {
            None
        } else {
            let last = length - 1;
            Some(offset + (last / lb) * lw + last % lb)
        };
        let tail = match last_base_at {
            Some(at) => {
                let t = self.read_at(at, 4)?;
                if t.first().is_none_or(|b| matches!(b, b'\n' | b'\r' | b'>')) {
                    return Err(self.stale(
                        &name,
                        format!("the record has fewer than the {length} bases the index gives"),
                    ));
                }
                t[1..].to_vec()
            }
            None => self.read_at(offset, 3)?,
        };
        let after = tail
            .strip_prefix(b"\r\n")
            .or_else(|| tail.strip_prefix(b"\n"))
            .unwrap_or(&tail);
        let ends_here = (tail.is_empty() || after.len() < tail.len())
            && after
                .first()
                .is_none_or(|b| matches!(b, b'>' | b'\n' | b'\r'));
        if !ends_here {
            return Err(self.stale(
                &name,
                format!("the record is longer than the {length} bases the index gives"),
            ));
        }
        Ok(())
    }
}

/// Reads a `.fai`, each line read with a length limit (a name past [`MAX_NAME_LEN`] is an
/// error before it is held in memory).
/// Builds the `.fai` index of a plain FASTA file by reading it once (noodles' indexer, which
/// checks line lengths as `samtools faidx` does).
fn build_fai(path: &Path) -> Result<fai::Index> {
    noodles_fasta::fs::index(path).map_err(|e| {
        Error::format(
            path,
            format!(
                "regions need a FASTA index; there is no .fai and one cannot be built: {e} \
                 (every line of a record but its last must have the same length)"
            ),
        )
    })
}

/// Writes `index` to `fai_path` (staged, then renamed into place) when nothing is there yet;
/// a folder that cannot be written to, or a name already taken (even by a dangling link), is
/// left alone: the index then lives in memory for this run only.
fn save_fai(fai_path: &Path, index: &fai::Index) {
    if !matches!(std::fs::symlink_metadata(fai_path), Err(e) if e.kind() == io::ErrorKind::NotFound)
    {
        return;
    }
    let Ok((staged, file)) = crate::output::atomic::StagedFile::create(fai_path) else {
        return;
    };
    let mut writer = fai::io::Writer::new(io::BufWriter::new(file));
    if writer.write_index(index).is_err() {
        return;
    }
    if writer.get_mut().flush().is_err() {
        return;
    }
    drop(writer);
    let _ = staged.commit();
}

fn read_fai(fai_path: &Path) -> Result<fai::Index> {
    let file = File::open(fai_path).map_err(|e| Error::io(fai_path, e))?;
    let mut reader = BufReader::new(file);
    let mut text = Vec::new();
    let mut line = Vec::new();
    let mut n = 0usize;
    loop {
        n += 1;
        match read_line_limited(&mut reader, &mut line, MAX_NAME_LEN + 128)
            .map_err(|e| Error::io(fai_path, e))?
        {
            Line::Eof => break,
            Line::TooLong => {
                return Err(Error::format(
                    fai_path,
                    format!(
                        "line {n}: longer than a record name of at most {MAX_NAME_LEN} bytes and four numbers"
                    ),
                ));
            }
            Line::Text => {
                text.extend_from_slice(&line);
                text.push(b'\n');
            }
        }
    }
    fai::io::Reader::new(&text[..])
        .read_index()
        .map_err(|e| Error::format(fai_path, format!("not a valid FASTA index: {e}")))
}

/// Checks a `.fai` on its own: unique, bounded names and sane line geometry.
fn check_index(fai_path: &Path, index: &fai::Index) -> Result<()> {
    let mut seen = std::collections::HashMap::new();
    for (i, r) in index.as_ref().iter().enumerate() {
        let line = i + 1;
        let bad = |m: String| Error::format(fai_path, format!("line {line}: {m}"));
        let name = String::from_utf8_lossy(r.name());
        if r.name().len() > MAX_NAME_LEN {
            return Err(bad(format!(
                "record name is {} bytes long; the most ssmgen accepts is {MAX_NAME_LEN}",
                r.name().len()
            )));
        }
        if let Some(first) = seen.insert(r.name().to_vec(), line) {
            return Err(bad(format!(
                "the record name '{name}' is also on line {first}; record names must be unique"
            )));
        }
        let (lb, lw) = (r.line_base_count().get(), r.line_width().get());
        if !(lw == lb + 1 || lw == lb + 2) {
            return Err(bad(format!(
                "line width {lw} for {lb} bases per line is not a FASTA index; re-index with `samtools faidx`"
            )));
        }
        let lines = r.length().div_ceil(lb);
        if lines
            .checked_mul(lw)
            .and_then(|b| b.checked_add(r.position()))
            .is_none()
        {
            return Err(bad("offset and length overflow".into()));
        }
    }
    Ok(())
}

/// One streamed record's bases, delivered in chunks.
pub trait ChunkRead {
    /// Appends up to `max` bases to `buf`; returns how many (0 at the record's end).
    fn read_chunk(&mut self, max: usize, buf: &mut Vec<u8>) -> Result<usize>;
}

struct FastaChunks<'a, R: BufRead> {
    inner: fasta::io::reader::sequence::Reader<'a, R>,
    path: &'a Path,
}

impl<R: BufRead> ChunkRead for FastaChunks<'_, R> {
    fn read_chunk(&mut self, max: usize, buf: &mut Vec<u8>) -> Result<usize> {
        let mut total = 0;
        while total < max {
            let src = self.inner.fill_buf().map_err(|e| Error::io(self.path, e))?;
            if src.is_empty() {
                break;
            }
            let n = src.len().min(max - total);
            buf.extend_from_slice(&src[..n]);
            self.inner.consume(n);
            total += n;
        }
        Ok(total)
    }
}

struct SliceChunks<'a>(&'a [u8]);

impl ChunkRead for SliceChunks<'_> {
    fn read_chunk(&mut self, max: usize, buf: &mut Vec<u8>) -> Result<usize> {
        let n = self.0.len().min(max);
        buf.extend_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

impl StreamFile {
    /// Reads FASTA or FASTQ (plain, gzip or bgzip) from any reader; `path` names it in messages.
    pub fn from_reader(path: PathBuf, reader: Box<dyn BufRead + Send>) -> Result<Self> {
        Self::new(path, reader)
    }

    /// Wraps a raw stream, decompressing it if it starts with the gzip magic bytes (which also
    /// covers bgzip), and detects FASTA or FASTQ from its first record.
    fn new(path: PathBuf, mut reader: Box<dyn BufRead + Send>) -> Result<Self> {
        let head = reader.fill_buf().map_err(|e| Error::io(&path, e))?;
        if head.starts_with(&[0x1f, 0x8b]) {
            reader = Box::new(BufReader::with_capacity(
                1 << 16,
                flate2::read::MultiGzDecoder::new(reader),
            ));
        }
        let format = loop {
            let buf = reader.fill_buf().map_err(|e| Error::io(&path, e))?;
            match buf.first() {
                None => break None,
                Some(b) if b.is_ascii_whitespace() => reader.consume(1),
                Some(b'>') => break Some(StreamFormat::Fasta),
                Some(b'@') => break Some(StreamFormat::Fastq),
                Some(&b) => {
                    return Err(Error::format(
                        &path,
                        format!(
                            "not FASTA or FASTQ: the first record starts with {:?} instead of '>' or '@'",
                            b as char
                        ),
                    ));
                }
            }
        };
        let Some(format) = format else {
            return Err(Error::format(
                &path,
                "is empty: no FASTA ('>') or FASTQ ('@') records",
            ));
        };
        Ok(StreamFile {
            path,
            reader,
            format: Some(format),
            counts: RecordCounts::default(),
        })
    }

    /// The file's path (`<stdin>` for standard input).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The detected format (`None` for an empty input).
    pub fn format(&self) -> Option<StreamFormat> {
        self.format
    }

    /// What the records read so far held (see [`RecordCounts`]).
    pub fn counts(&self) -> RecordCounts {
        self.counts
    }

    /// Calls `f(name, bases)` for every record in order; `f` may read as much of the record as
    /// it likes, the rest is skipped. FASTA record names must be unique (FASTQ read names may
    /// repeat: mates of an interleaved pair share one).
    pub fn for_each_record(
        &mut self,
        mut f: impl FnMut(&str, &mut dyn ChunkRead) -> Result<()>,
    ) -> Result<()> {
        let path = self.path.clone();
        let mut line = Vec::new();
        match self.format {
            None => Ok(()),
            Some(StreamFormat::Fasta) => {
                let mut seen = std::collections::HashMap::<u64, u64>::new();
                let mut index = 0u64;
                loop {
                    index += 1;
                    let status = read_line_limited(&mut self.reader, &mut line, MAX_HEADER_LEN)
                        .map_err(|e| Error::io(&path, e))?;
                    if matches!(status, Line::Eof) {
                        return Ok(());
                    }
                    let what = format!("record {index}");
                    if line.first() != Some(&b'>') {
                        return Err(Error::format(
                            &path,
                            format!("{what}: expected a '>' header line"),
                        ));
                    }
                    let name = parse_header(&path, &what, &line, &status)?;
                    if let Some(first) = seen.insert(name_hash(&name), index) {
                        return Err(Error::format(
                            &path,
                            format!(
                                "record {index}: the name '{name}' was already used by record {first}; record names must be unique"
                            ),
                        ));
                    }
                    let mut reader = fasta::io::Reader::new(&mut self.reader);
                    let mut chunks = FastaChunks {
                        inner: reader.sequence_reader(),
                        path: &path,
                    };
                    let empty = chunks
                        .inner
                        .fill_buf()
                        .map_err(|e| Error::io(&path, e))?
                        .is_empty();
                    self.counts.records += 1;
                    self.counts.empty += u64::from(empty);
                    f(&name, &mut chunks)?;
                    // Skip what the callback left unread.
                    io::copy(&mut chunks.inner, &mut io::sink())
                        .map_err(|e| Error::io(&path, e))?;
                }
            }
            Some(StreamFormat::Fastq) => {
                let mut index = 0u64;
                let (mut seq, mut plus, mut qual) = (Vec::new(), Vec::new(), Vec::new());
                loop {
                    let status = read_line_limited(&mut self.reader, &mut line, MAX_HEADER_LEN)
                        .map_err(|e| Error::io(&path, e))?;
                    if matches!(status, Line::Eof) {
                        return Ok(());
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    index += 1;
                    let name = parse_fastq_record(
                        &mut self.reader,
                        &path,
                        index,
                        (&line, &status),
                        &mut seq,
                        &mut plus,
                        &mut qual,
                    )?;
                    self.counts.records += 1;
                    self.counts.empty += u64::from(seq.is_empty());
                    f(&name, &mut SliceChunks(&seq))?;
                }
            }
        }
    }
}

/// A stable 64-bit hash of a record name (for duplicate checks without keeping the names).
fn name_hash(name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}

/// Reads the rest of one FASTQ record whose header line is `header`: the sequence, `+` and
/// quality lines (one line each), every line bounded. Returns the read's name; `seq` holds its
/// bases.
fn parse_fastq_record(
    reader: &mut dyn BufRead,
    path: &Path,
    index: u64,
    header: (&[u8], &Line),
    seq: &mut Vec<u8>,
    plus: &mut Vec<u8>,
    qual: &mut Vec<u8>,
) -> Result<String> {
    let what = format!("FASTQ record {index}");
    let bad = |m: &str| Error::format(path, format!("{what}: {m}"));
    if header.0.first() != Some(&b'@') {
        return Err(bad("expected a header line starting with '@'"));
    }
    let name = parse_header(path, &what, header.0, header.1)?;
    let mut next = |buf: &mut Vec<u8>, limit: usize, part: &str| -> Result<()> {
        match read_line_limited(reader, buf, limit).map_err(|e| Error::io(path, e))? {
            Line::Eof => Err(bad(&format!(
                "the file ends before the {part} line ('{name}')"
            ))),
            Line::TooLong => Err(bad(&format!(
                "the {part} line of '{name}' is longer than {limit} bytes, the most ssmgen accepts"
            ))),
            Line::Text => {
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                Ok(())
            }
        }
    };
    next(seq, MAX_FASTQ_BASES, "sequence")?;
    next(plus, MAX_HEADER_LEN, "'+'")?;
    next(qual, MAX_FASTQ_BASES, "quality")?;
    if plus.first() != Some(&b'+') {
        return Err(bad(&format!(
            "'{name}': the line after the sequence must start with '+' (multi-line FASTQ is not supported)"
        )));
    }
    if seq.len() != qual.len() {
        return Err(bad(&format!(
            "'{name}': {} bases but {} quality scores",
            seq.len(),
            qual.len()
        )));
    }
    Ok(name)
}
