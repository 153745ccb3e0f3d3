//! Opening sequence files: FASTA or FASTQ, plain, gzip or bgzip, from a path or stdin.
//!
//! A file with a `.fai` index is read region by region: memory-mapped when uncompressed, through
//! the `.gzi` index when bgzip-compressed. Anything else is streamed record by record, with a
//! record's bases delivered in chunks so a chromosome never has to be held whole.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use noodles_fasta as fasta;
use noodles_fasta::fai;

use crate::error::{Error, Result};

/// Bytes read through the memory map before its pages are handed back to the kernel.
const MMAP_RELEASE_BYTES: u64 = 16 << 20;

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
        if need_index {
            let message = if !has_fai {
                format!(
                    "regions need a FASTA index, but {} does not exist (make it with `samtools faidx {}`)",
                    fai_path.display(),
                    path.display()
                )
            } else {
                format!(
                    "regions in a compressed FASTA need bgzip compression and {} (make it with `bgzip -r {}` or recompress with `bgzip` and run `samtools faidx`)",
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
        let index = fai::fs::read(fai_path)
            .map_err(|e| Error::format(fai_path, format!("not a valid FASTA index: {e}")))?;
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
        Ok(IndexedFasta {
            path: path.to_path_buf(),
            index,
            reader,
            map,
            fetched_since_release: 0,
        })
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

    /// Replaces `buf` with bases `[start, end)` (0-based) of record `name`.
    pub fn fetch(&mut self, name: &str, start: u64, end: u64, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        if end <= start {
            return Ok(());
        }
        let to_pos = |p: u64| {
            noodles_core::Position::try_from(p as usize)
                .map_err(|e| Error::format(&self.path, format!("record '{name}': {e}")))
        };
        let region = noodles_core::Region::new(name, to_pos(start + 1)?..=to_pos(end)?);
        let mut reader = fasta::io::Reader::new(&mut self.reader);
        let record = reader.query(&self.index, &region).map_err(|e| {
            Error::format(&self.path, format!("record '{name}' at {}: {e}", start + 1))
        })?;
        let seq = record.sequence().as_ref();
        if seq.len() as u64 != end - start {
            return Err(Error::format(
                &self.path,
                format!(
                    "record '{name}': the index promises bases {}-{} but the file ends early or the .fai is stale (re-run `samtools faidx`)",
                    start + 1,
                    end
                ),
            ));
        }
        buf.extend_from_slice(seq);
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
        Ok(StreamFile {
            path,
            reader,
            format,
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

    /// Calls `f(name, bases)` for every record in order; `f` may read as much of the record as
    /// it likes, the rest is skipped.
    pub fn for_each_record(
        &mut self,
        mut f: impl FnMut(&str, &mut dyn ChunkRead) -> Result<()>,
    ) -> Result<()> {
        let path = self.path.clone();
        match self.format {
            None => Ok(()),
            Some(StreamFormat::Fasta) => {
                let mut reader = fasta::io::Reader::new(&mut self.reader);
                let mut definition = fasta::record::Definition::default();
                let mut index = 0usize;
                loop {
                    index += 1;
                    let n = reader.read_definition(&mut definition).map_err(|e| {
                        Error::format(&path, format!("record {index}: bad header line: {e}"))
                    })?;
                    if n == 0 {
                        return Ok(());
                    }
                    let name = definition.name().to_string();
                    if name.is_empty() {
                        return Err(Error::format(
                            &path,
                            format!("record {index}: empty name after '>'"),
                        ));
                    }
                    let mut chunks = FastaChunks {
                        inner: reader.sequence_reader(),
                        path: &path,
                    };
                    f(&name, &mut chunks)?;
                    // Skip what the callback left unread.
                    io::copy(&mut chunks.inner, &mut io::sink())
                        .map_err(|e| Error::io(&path, e))?;
                }
            }
            Some(StreamFormat::Fastq) => {
                let mut reader = noodles_fastq::io::Reader::new(&mut self.reader);
                for (i, record) in reader.records().enumerate() {
                    let record = record.map_err(|e| {
                        Error::format(&path, format!("FASTQ record {}: {e}", i + 1))
                    })?;
                    let name = record.name().to_string();
                    if record.sequence().len() != record.quality_scores().len() {
                        return Err(Error::format(
                            &path,
                            format!(
                                "FASTQ record {} ('{name}'): {} bases but {} quality scores",
                                i + 1,
                                record.sequence().len(),
                                record.quality_scores().len()
                            ),
                        ));
                    }
                    f(&name, &mut SliceChunks(record.sequence()))?;
                }
                Ok(())
            }
        }
    }
}
