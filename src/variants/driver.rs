//! Streaming `score-variants` with a causal model: a position-sorted variant input is read
//! record by record, one chromosome (a *block* of consecutive records) at a time, and scored in
//! memory bounded by a stripe and the variants of a stripe, whatever the input's or the
//! chromosome's size.
//!
//! A block's records go to an anonymous temporary file as they are read (REF checked against a
//! window of the reference that slides with the positions), with one fixed-size entry per ALT in
//! a second file. The reverse strand's pass then reads those entries from the block's end, the
//! forward strand's pass from its start, each reading the reference a stripe at a time
//! ([`RandomReference`]) and writing each variant's scores at its place in a results file; a
//! last sweep reads the records, both strands' results and hands every record with its results
//! to the caller, in input order. The passes see the variants in the order the in-memory path
//! gives them (the forward strand by position, the reverse strand by position on that strand,
//! ties in input order), so the backend computes the same batches and the scores are the same
//! to the bit.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt as _;

use super::engine::{
    EngineOptions, StrandScores, StrandSource, StrandVariant, score_strand_stream,
};
use super::stream::{InputRecord, RecordSource};
use super::{Skip, Variant, VariantResult, check_alleles, chr_toggled, ref_span};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::input::RandomReference;
use crate::tokenizer::Tokenizer;

/// Bases read from the reference at a time (REF checks, the bad-base sweep).
const WINDOW: u64 = 4 << 20;
/// ALT entries read from the entry file at a time.
const ENTRY_CHUNK: u64 = 4096;
/// Bytes of one ALT entry: position, REF length, ALT length, skip flag, ALT (inline or offset).
const ENTRY: usize = 32;
/// ALT alleles up to this length are stored in the entry itself.
const INLINE: usize = 15;
/// Bytes of one strand result: a flag (bit 0: scored, bit 1: llr present), llr, delta_ll.
const RESULT: u64 = 17;

/// What a block is about to cost: given to the caller before its passes.
#[derive(Clone, Debug)]
pub struct BlockInfo {
    /// The chromosome as the input names it.
    pub chrom: String,
    /// The reference record it is scored against (`None`: not in the reference).
    pub reference: Option<String>,
    /// REF/ALT pairs in the block.
    pub variants: u64,
    /// Those that are scored.
    pub scored: u64,
    /// Bases the two passes run the model over (both strands together).
    pub bases: u64,
}

/// What a streamed run met.
#[derive(Debug, Default)]
pub struct Summary {
    /// REF/ALT pairs read.
    pub variants: u64,
    /// Of those, on chromosomes the reference lacks.
    pub unknown_contig: u64,
    /// The first few chromosome names of the input (for messages).
    pub input_names: Vec<String>,
    /// Variant chromosome names matched by adding or dropping `chr`: `(input, reference)`.
    pub renamed: Vec<(String, String)>,
}

/// What the caller hears from [`score_stream`].
pub struct Hooks<'a> {
    /// Called once per block after its records are read, before its passes.
    pub block: &'a mut dyn FnMut(&BlockInfo),
    /// Bases each pass moves on.
    pub progress: &'a (dyn Fn(u64) + Sync),
    /// Every record with its results (one per ALT), in input order.
    pub record: &'a mut dyn FnMut(&InputRecord, &[VariantResult]) -> Result<()>,
}

fn tmp_err(e: std::io::Error) -> Error {
    Error::io(std::env::temp_dir(), e)
}

fn skip_code(skip: Option<Skip>) -> u8 {
    match skip {
        None => 0,
        Some(Skip::UnknownContig) => 1,
        Some(Skip::SymbolicOrMissingAlt) => 2,
        Some(Skip::NonAcgtAllele) => 3,
        Some(Skip::PastContigEnd) => 4,
        Some(Skip::RefMismatch) => 5,
        Some(Skip::NotSnv) => 6,
    }
}

fn skip_of(code: u8) -> Option<Skip> {
    Some(match code {
        1 => Skip::UnknownContig,
        2 => Skip::SymbolicOrMissingAlt,
        3 => Skip::NonAcgtAllele,
        4 => Skip::PastContigEnd,
        5 => Skip::RefMismatch,
        6 => Skip::NotSnv,
        _ => return None,
    })
}

fn put_str(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn get_u64(r: &mut impl Read) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn get_str(r: &mut impl Read) -> std::io::Result<String> {
    let n = get_u64(r)? as usize;
    let mut b = vec![0u8; n];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A window of one chromosome's bases that slides forward with the variants' positions.
struct RefWindow {
    start: u64,
    bases: Vec<u8>,
}

impl RefWindow {
    /// Bases `[start, end)` of `name` (`end <= len`), fetching a new window when needed.
    fn get(
        &mut self,
        reference: &mut RandomReference,
        name: &str,
        len: u64,
        start: u64,
        end: u64,
    ) -> Result<&[u8]> {
        let have = self.start + self.bases.len() as u64;
        if start < self.start || end > have {
            let to = (start + WINDOW.max(end - start)).min(len);
            reference.fetch(name, start, to, &mut self.bases)?;
            self.start = start;
        }
        Ok(&self.bases[(start - self.start) as usize..(end - self.start) as usize])
    }
}

/// One chromosome's records and ALT entries on disk.
struct Block {
    reference: Option<(String, u64)>,
    records: BufWriter<File>,
    entries: BufWriter<File>,
    alleles: BufWriter<File>,
    alleles_len: u64,
    n: u64,
    scored: u64,
    min_pos: u64,
    max_end: u64,
    max_ref: u64,
    context_bases: u64,
}

impl Block {
    fn new(reference: Option<(String, u64)>) -> Result<Self> {
        let file = || -> Result<BufWriter<File>> {
            Ok(BufWriter::with_capacity(
                1 << 20,
                tempfile::tempfile().map_err(tmp_err)?,
            ))
        };
        Ok(Block {
            reference,
            records: file()?,
            entries: file()?,
            alleles: file()?,
            alleles_len: 0,
            n: 0,
            scored: 0,
            min_pos: u64::MAX,
            max_end: 0,
            max_ref: 0,
            context_bases: 0,
        })
    }

    /// Adds a record, checking its ALTs against the reference.
    fn push(
        &mut self,
        record: &InputRecord,
        reference: &mut RandomReference,
        window: &mut RefWindow,
        opts: &EngineOptions,
    ) -> Result<()> {
        let r = &mut self.records;
        r.write_all(&record.line_no.to_le_bytes())
            .map_err(tmp_err)?;
        match &record.line {
            Some(line) => {
                r.write_all(&[1]).map_err(tmp_err)?;
                put_str(r, line).map_err(tmp_err)?;
            }
            None => r.write_all(&[0]).map_err(tmp_err)?,
        }
        r.write_all(&(record.variants.len() as u64).to_le_bytes())
            .map_err(tmp_err)?;
        for v in &record.variants {
            let skip = match &self.reference {
                None => Some(Skip::UnknownContig),
                Some((name, len)) => match check_alleles(v) {
                    Some(s) => Some(s),
                    None => match ref_span(v, *len) {
                        None => Some(Skip::PastContigEnd),
                        Some((start, end)) => {
                            let bases = window.get(reference, name, *len, start, end)?;
                            (!bases.eq_ignore_ascii_case(v.reference.as_bytes()))
                                .then_some(Skip::RefMismatch)
                        }
                    },
                },
            };
            let r = &mut self.records;
            for field in [&v.id, &v.reference, &v.alt] {
                put_str(r, field).map_err(tmp_err)?;
            }
            r.write_all(&v.pos.to_le_bytes()).map_err(tmp_err)?;
            r.write_all(&[skip_code(skip)]).map_err(tmp_err)?;
            let mut entry = [0u8; ENTRY];
            let p = v.pos.saturating_sub(1);
            let ref_len = v.reference.len() as u64;
            entry[..8].copy_from_slice(&p.to_le_bytes());
            entry[8..12].copy_from_slice(&(ref_len as u32).to_le_bytes());
            entry[12..16].copy_from_slice(&(v.alt.len() as u32).to_le_bytes());
            entry[16] = u8::from(skip.is_some());
            if skip.is_none() {
                if v.alt.len() <= INLINE {
                    entry[17..17 + v.alt.len()].copy_from_slice(v.alt.as_bytes());
                } else {
                    entry[17..25].copy_from_slice(&self.alleles_len.to_le_bytes());
                    self.alleles.write_all(v.alt.as_bytes()).map_err(tmp_err)?;
                    self.alleles_len += v.alt.len() as u64;
                }
                self.scored += 1;
                self.min_pos = self.min_pos.min(p);
                self.max_end = self.max_end.max(p + ref_len);
                self.max_ref = self.max_ref.max(ref_len);
                if let Some(c) = opts.context {
                    self.context_bases += 4 * ((c as u64).min(p) + ref_len + opts.window as u64);
                }
            }
            self.entries.write_all(&entry).map_err(tmp_err)?;
            self.n += 1;
        }
        Ok(())
    }

    /// Bases the passes run the model over.
    fn bases(&self, opts: &EngineOptions) -> u64 {
        let Some((_, len)) = self.reference else {
            return 0;
        };
        if self.scored == 0 {
            return 0;
        }
        if opts.context.is_some() {
            return self.context_bases;
        }
        let w = opts.window as u64;
        (self.max_end + w).min(len) + (len - self.min_pos + w).min(len)
    }
}

/// The ALT entries of a block, read forward or backward.
struct Entries {
    file: File,
    alleles: File,
    n: u64,
    buf: Vec<u8>,
}

/// One ALT entry: its ordinal in the block, 0-based position, REF length and ALT bases.
struct Entry {
    ordinal: u64,
    pos: u64,
    ref_len: usize,
    alt: Vec<u8>,
}

impl Entries {
    /// Entry `i`, or `None` when it is not scored.
    fn get(&mut self, i: u64, chunk_start: u64) -> Result<Option<Entry>> {
        let at = ((i - chunk_start) as usize) * ENTRY;
        let e = &self.buf[at..at + ENTRY];
        if e[16] != 0 {
            return Ok(None);
        }
        let pos = u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
        let ref_len = u32::from_le_bytes(e[8..12].try_into().expect("4 bytes")) as usize;
        let alt_len = u32::from_le_bytes(e[12..16].try_into().expect("4 bytes")) as usize;
        let alt = if alt_len <= INLINE {
            e[17..17 + alt_len].to_vec()
        } else {
            let offset = u64::from_le_bytes(e[17..25].try_into().expect("8 bytes"));
            let mut alt = vec![0u8; alt_len];
            self.alleles
                .read_exact_at(&mut alt, offset)
                .map_err(tmp_err)?;
            alt
        };
        Ok(Some(Entry {
            ordinal: i,
            pos,
            ref_len,
            alt,
        }))
    }

    /// Loads entries `[from, to)` into the buffer.
    fn load(&mut self, from: u64, to: u64) -> Result<()> {
        self.buf.resize(((to - from) as usize) * ENTRY, 0);
        self.file
            .read_exact_at(&mut self.buf, from * ENTRY as u64)
            .map_err(tmp_err)
    }

    /// Every scored entry in input order.
    fn forward(&mut self) -> impl Iterator<Item = Result<Entry>> + '_ {
        let (mut i, mut chunk) = (0u64, (0u64, 0u64));
        std::iter::from_fn(move || {
            loop {
                if i >= self.n {
                    return None;
                }
                if i >= chunk.1 {
                    chunk = (i, (i + ENTRY_CHUNK).min(self.n));
                    if let Err(e) = self.load(chunk.0, chunk.1) {
                        i = self.n;
                        return Some(Err(e));
                    }
                }
                let got = self.get(i, chunk.0);
                i += 1;
                match got {
                    Ok(None) => continue,
                    Ok(Some(e)) => return Some(Ok(e)),
                    Err(e) => return Some(Err(e)),
                }
            }
        })
    }

    /// Every scored entry, from the last to the first.
    fn backward(&mut self) -> impl Iterator<Item = Result<Entry>> + '_ {
        let (mut i, mut chunk) = (self.n, (self.n, self.n));
        std::iter::from_fn(move || {
            loop {
                if i == 0 {
                    return None;
                }
                i -= 1;
                if i < chunk.0 {
                    chunk = (i.saturating_sub(ENTRY_CHUNK - 1), i + 1);
                    if let Err(e) = self.load(chunk.0, chunk.1) {
                        i = 0;
                        return Some(Err(e));
                    }
                }
                match self.get(i, chunk.0) {
                    Ok(None) => continue,
                    Ok(Some(e)) => return Some(Ok(e)),
                    Err(e) => return Some(Err(e)),
                }
            }
        })
    }
}

/// One strand of a chromosome read from the reference stripe by stripe.
struct RefStrand<'a> {
    reference: &'a mut RandomReference,
    tokenizer: &'a Tokenizer,
    name: &'a str,
    len: u64,
    reverse: bool,
    bases: Vec<u8>,
}

impl StrandSource for RefStrand<'_> {
    fn len(&self) -> usize {
        self.len as usize
    }

    fn tokens(&mut self, start: usize, end: usize, out: &mut Vec<u32>) -> Result<()> {
        let (from, to) = if self.reverse {
            (self.len - end as u64, self.len - start as u64)
        } else {
            (start as u64, end as u64)
        };
        self.reference.fetch(self.name, from, to, &mut self.bases)?;
        out.clear();
        let path = self.reference.path().to_path_buf();
        self.tokenizer
            .encode(&self.bases, out)
            .map_err(|i| Error::BadBase {
                path,
                record: self.name.to_string(),
                position: from + i as u64 + 1,
                character: self.bases[i] as char,
            })?;
        if self.reverse {
            self.tokenizer.reverse_complement(out);
        }
        Ok(())
    }
}

/// Fails on the first base of `name` the model has no token for, as the in-memory path does
/// before scoring a chromosome.
fn sweep(
    reference: &mut RandomReference,
    tokenizer: &Tokenizer,
    name: &str,
    len: u64,
) -> Result<()> {
    let (mut bases, mut tokens) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at < len {
        let to = (at + WINDOW).min(len);
        reference.fetch(name, at, to, &mut bases)?;
        tokens.clear();
        tokenizer
            .encode(&bases, &mut tokens)
            .map_err(|i| Error::BadBase {
                path: reference.path().to_path_buf(),
                record: name.to_string(),
                position: at + i as u64 + 1,
                character: bases[i] as char,
            })?;
        at = to;
    }
    Ok(())
}

/// A strand's results, one fixed-size slot per ALT of the block.
struct Results {
    file: File,
    /// Slots not yet written, by ordinal: written in runs of consecutive ordinals, so that a
    /// pass (whose results come nearly in order) makes one write per run, not per ALT.
    pending: std::collections::BTreeMap<u64, [u8; RESULT as usize]>,
}

/// Slots held before [`Results`] writes them out.
const PENDING: usize = 4096;

impl Results {
    fn new() -> Result<Self> {
        Ok(Results {
            file: tempfile::tempfile().map_err(tmp_err)?,
            pending: Default::default(),
        })
    }

    fn put(&mut self, ordinal: u64, s: StrandScores) -> Result<()> {
        let mut b = [0u8; RESULT as usize];
        b[0] = 1 | if s.llr.is_some() { 2 } else { 0 };
        b[1..9].copy_from_slice(&s.llr.unwrap_or(0.0).to_le_bytes());
        b[9..17].copy_from_slice(&s.delta_ll.to_le_bytes());
        self.pending.insert(ordinal, b);
        if self.pending.len() >= PENDING {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the pending slots, one write per run of consecutive ordinals.
    fn flush(&mut self) -> Result<()> {
        let mut run: Vec<u8> = Vec::new();
        let mut start = 0u64;
        let mut next = None;
        for (ordinal, b) in std::mem::take(&mut self.pending) {
            if next != Some(ordinal) && !run.is_empty() {
                self.file
                    .write_all_at(&run, start * RESULT)
                    .map_err(tmp_err)?;
                run.clear();
            }
            if run.is_empty() {
                start = ordinal;
            }
            run.extend_from_slice(&b);
            next = Some(ordinal + 1);
        }
        if !run.is_empty() {
            self.file
                .write_all_at(&run, start * RESULT)
                .map_err(tmp_err)?;
        }
        Ok(())
    }

    fn reader(&mut self) -> Result<BufReader<&mut File>> {
        self.flush()?;
        self.file.seek(SeekFrom::Start(0)).map_err(tmp_err)?;
        Ok(BufReader::with_capacity(1 << 16, &mut self.file))
    }
}

/// The next result of a sequential read (`None` when that ALT was not scored).
fn next_result(r: &mut impl Read) -> Result<Option<StrandScores>> {
    let mut b = [0u8; RESULT as usize];
    match r.read_exact(&mut b) {
        Ok(()) => {}
        // Past the last slot written: the remaining ALTs were not scored.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(tmp_err(e)),
    }
    if b[0] & 1 == 0 {
        return Ok(None);
    }
    let f = |s: &[u8]| f64::from_le_bytes(s.try_into().expect("8 bytes"));
    Ok(Some(StrandScores {
        llr: (b[0] & 2 != 0).then(|| f(&b[1..9])),
        delta_ll: f(&b[9..17]),
    }))
}

/// A strand variant in the reverse pass's order: by position on the reverse strand, then by
/// input order (a max-heap of the reversed key).
#[derive(PartialEq, Eq)]
struct RevKey(u64, u64);

impl Ord for RevKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.0, other.1).cmp(&(self.0, self.1))
    }
}

impl PartialOrd for RevKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

fn strand_variant(
    tokenizer: &Tokenizer,
    e: &Entry,
    pos: usize,
    reverse: bool,
) -> Result<StrandVariant> {
    let mut alt = Vec::with_capacity(e.alt.len());
    tokenizer.encode(&e.alt, &mut alt).map_err(|i| {
        Error::Backend(format!(
            "ALT {:?} has no token at {i}",
            String::from_utf8_lossy(&e.alt)
        ))
    })?;
    if reverse {
        tokenizer.reverse_complement(&mut alt);
    }
    Ok(StrandVariant {
        pos,
        ref_len: e.ref_len,
        alt,
    })
}

/// Runs both strands' passes over a block.
#[allow(clippy::too_many_arguments)]
fn score_block<B: Backend>(
    backend: &B,
    tokenizer: &Tokenizer,
    reference: &mut RandomReference,
    entries: &mut Entries,
    name: &str,
    len: u64,
    max_ref: u64,
    opts: &EngineOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(Results, Results)> {
    sweep(reference, tokenizer, name, len)?;
    let (mut fwd, mut rev) = (Results::new()?, Results::new()?);
    // The reverse strand first.
    {
        let mut source = RefStrand {
            reference: &mut *reference,
            tokenizer,
            name,
            len,
            reverse: true,
            bases: Vec::new(),
        };
        let rev_pos = |e: &Entry| (len - (e.pos + e.ref_len as u64)) as usize;
        let mut sink = |id: u64, s: StrandScores| rev.put(id, s);
        if opts.context.is_some() {
            // Windows are scored in input order, as the in-memory path does.
            let mut it = entries.forward().map(|e| {
                let e = e?;
                Ok((e.ordinal, strand_variant(tokenizer, &e, rev_pos(&e), true)?))
            });
            score_strand_stream(
                backend,
                tokenizer,
                &mut source,
                &mut it,
                opts,
                progress,
                &mut sink,
            )?;
        } else {
            let mut heap: BinaryHeap<RevKey> = BinaryHeap::new();
            let mut held: HashMap<u64, Entry> = HashMap::new();
            let mut back = entries.backward();
            let (mut done, mut last_start) = (false, 0u64);
            let mut it = std::iter::from_fn(|| -> Option<Result<(u64, StrandVariant)>> {
                loop {
                    // Release the smallest reverse position once no entry still to read can
                    // come before it: those start at most where the last one read does, so
                    // they end at most `max_ref` bases further.
                    if let Some(&RevKey(rp, id)) = heap.peek()
                        && (done || rp < len.saturating_sub(last_start + max_ref))
                    {
                        heap.pop();
                        let e = held.remove(&id).expect("held");
                        return Some(
                            strand_variant(tokenizer, &e, rp as usize, true).map(|v| (id, v)),
                        );
                    }
                    if done {
                        return None;
                    }
                    match back.next() {
                        None => done = true,
                        Some(Err(e)) => return Some(Err(e)),
                        Some(Ok(e)) => {
                            heap.push(RevKey(rev_pos(&e) as u64, e.ordinal));
                            last_start = e.pos;
                            held.insert(e.ordinal, e);
                        }
                    }
                }
            });
            score_strand_stream(
                backend,
                tokenizer,
                &mut source,
                &mut it,
                opts,
                progress,
                &mut sink,
            )?;
        }
    }
    {
        let mut source = RefStrand {
            reference: &mut *reference,
            tokenizer,
            name,
            len,
            reverse: false,
            bases: Vec::new(),
        };
        let mut it = entries.forward().map(|e| {
            let e = e?;
            Ok((
                e.ordinal,
                strand_variant(tokenizer, &e, e.pos as usize, false)?,
            ))
        });
        let mut sink = |id: u64, s: StrandScores| fwd.put(id, s);
        score_strand_stream(
            backend,
            tokenizer,
            &mut source,
            &mut it,
            opts,
            progress,
            &mut sink,
        )?;
    }
    Ok((fwd, rev))
}

/// Scores every record of `input`, which must be sorted by position within each chromosome and
/// hold each chromosome's records together, against `reference` (names through `aliases`, or
/// with `chr` added or dropped), handing each record with its results to `hooks.record` in
/// input order.
pub fn score_stream<B: Backend>(
    backend: &B,
    reference: &mut RandomReference,
    input: &mut dyn RecordSource,
    aliases: &HashMap<String, String>,
    opts: &EngineOptions,
    hooks: Hooks<'_>,
) -> Result<Summary> {
    let tokenizer = Tokenizer::new(backend.config());
    let lengths: HashMap<String, u64> = reference.records().into_iter().collect();
    let mut summary = Summary::default();
    let mut finished: HashSet<String> = HashSet::new();
    let mut carry: Option<InputRecord> = None;
    let mut record_index = 0usize;
    let vcf_path = input.path().to_path_buf();
    loop {
        let first = match carry.take() {
            Some(r) => r,
            None => match input.next_record()? {
                Some(r) => r,
                None => break,
            },
        };
        let Some(v0) = first.variants.first() else {
            continue;
        };
        let chrom = v0.chrom.clone();
        let unsorted = |r: &InputRecord, why: String| {
            Error::format(
                &vcf_path,
                format!(
                    "record at line {}: {why}: the variants are not sorted; sort them (`bcftools sort`) or pass --allow-unsorted (sorts them in memory)",
                    r.line_no
                ),
            )
        };
        if finished.contains(&chrom) {
            return Err(unsorted(
                &first,
                format!(
                    "{chrom}:{} comes after other chromosomes' records, but {chrom} had records before them",
                    v0.pos
                ),
            ));
        }
        if summary.input_names.len() < 5 {
            summary.input_names.push(chrom.clone());
        }
        let name = aliases.get(&chrom).unwrap_or(&chrom).clone();
        let resolved = if let Some(&len) = lengths.get(&name) {
            Some((name, len))
        } else {
            let other = chr_toggled(&name);
            lengths.get(&other).map(|&len| {
                summary.renamed.push((name.clone(), other.clone()));
                (other, len)
            })
        };
        let mut block = Block::new(resolved)?;
        let mut window = RefWindow {
            start: 0,
            bases: Vec::new(),
        };
        let mut last = v0.pos;
        let mut record = Some(first);
        while let Some(r) = record.take() {
            block.push(&r, reference, &mut window, opts)?;
            match input.next_record()? {
                None => {}
                Some(next) => {
                    let Some(v) = next.variants.first() else {
                        continue;
                    };
                    if v.chrom != chrom {
                        carry = Some(next);
                    } else if v.pos < last {
                        return Err(unsorted(
                            &next,
                            format!("{chrom}:{} comes after {chrom}:{last}", v.pos),
                        ));
                    } else {
                        last = v.pos;
                        record = Some(next);
                    }
                }
            }
        }
        drop(window);
        finished.insert(chrom.clone());
        summary.variants += block.n;
        if block.reference.is_none() {
            summary.unknown_contig += block.n;
        }
        (hooks.block)(&BlockInfo {
            chrom: chrom.clone(),
            reference: block.reference.as_ref().map(|(n, _)| n.clone()),
            variants: block.n,
            scored: block.scored,
            bases: block.bases(opts),
        });
        let into = |w: BufWriter<File>| w.into_inner().map_err(|e| tmp_err(e.into_error()));
        let mut records = into(block.records)?;
        let mut entries = Entries {
            file: into(block.entries)?,
            alleles: into(block.alleles)?,
            n: block.n,
            buf: Vec::new(),
        };
        let (mut fwd, mut rev) = match (&block.reference, block.scored) {
            (Some((name, len)), 1..) => score_block(
                backend,
                &tokenizer,
                reference,
                &mut entries,
                name,
                *len,
                block.max_ref,
                opts,
                hooks.progress,
            )?,
            _ => (Results::new()?, Results::new()?),
        };
        // The records again, with both strands' results, in input order.
        records.seek(SeekFrom::Start(0)).map_err(tmp_err)?;
        let mut r = BufReader::with_capacity(1 << 16, records);
        let (mut fr, mut rr) = (fwd.reader()?, rev.reader()?);
        let mut results = Vec::new();
        let total = block.n;
        let mut read = 0u64;
        while read < total {
            let line_no = get_u64(&mut r).map_err(tmp_err)?;
            let mut flag = [0u8];
            r.read_exact(&mut flag).map_err(tmp_err)?;
            let line = if flag[0] == 1 {
                Some(get_str(&mut r).map_err(tmp_err)?)
            } else {
                None
            };
            let n = get_u64(&mut r).map_err(tmp_err)?;
            let mut variants = Vec::with_capacity(n as usize);
            results.clear();
            for alt_index in 0..n as usize {
                let id = get_str(&mut r).map_err(tmp_err)?;
                let reference = get_str(&mut r).map_err(tmp_err)?;
                let alt = get_str(&mut r).map_err(tmp_err)?;
                let pos = get_u64(&mut r).map_err(tmp_err)?;
                r.read_exact(&mut flag).map_err(tmp_err)?;
                let (f, rv) = (next_result(&mut fr)?, next_result(&mut rr)?);
                results.push(VariantResult {
                    skip: skip_of(flag[0]),
                    fwd: f,
                    rev: rv,
                });
                variants.push(Variant {
                    chrom: chrom.clone(),
                    pos,
                    id,
                    reference,
                    alt,
                    record: record_index,
                    alt_index,
                });
            }
            record_index += 1;
            read += n;
            (hooks.record)(
                &InputRecord {
                    variants,
                    line,
                    line_no,
                },
                &results,
            )?;
        }
    }
    Ok(summary)
}
