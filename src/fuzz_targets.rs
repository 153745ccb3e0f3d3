//! The bodies of the `cargo fuzz` targets under `fuzz/`, one per parser, kept in the library so
//! that `tests/fuzz_replay.rs` replays the committed corpus through the very same code on
//! stable Rust. Each takes arbitrary bytes and must return (an `Err` is fine) without
//! panicking, aborting or allocating more than the input justifies.

use std::io::{BufRead, Cursor, Write};
use std::path::{Path, PathBuf};

use crate::input::{ChunkRead, IndexedFasta, Region, StreamFile};
use crate::model::{MambaConfig, ModelWeights};
use crate::variants::VariantFile;

/// A fuzz target: arbitrary bytes in, nothing out.
pub type Target = fn(&[u8]);

/// Every target, by the name of its folder under `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("sequence_stream", sequence_stream),
    ("fastq", fastq),
    ("indexed_fasta", indexed_fasta),
    ("region", region),
    ("bed", bed),
    ("vcf", vcf),
    ("bcf", bcf),
    ("config_json", config_json),
    ("safetensors", safetensors),
];

/// The target named `name`.
pub fn by_name(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

fn drain(stream: &mut StreamFile) {
    let _ = stream.for_each_record(|_name, chunks: &mut dyn ChunkRead| {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if chunks.read_chunk(4096, &mut buf)? == 0 {
                return Ok(());
            }
        }
    });
}

/// FASTA or FASTQ, plain or gzip-compressed, streamed record by record.
pub fn sequence_stream(data: &[u8]) {
    let reader: Box<dyn BufRead + Send> = Box::new(Cursor::new(data.to_vec()));
    if let Ok(mut stream) = StreamFile::from_reader(PathBuf::from("fuzz.fa"), reader) {
        drain(&mut stream);
    }
}

/// FASTQ: the input after an `@`.
pub fn fastq(data: &[u8]) {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(b'@');
    bytes.extend_from_slice(data);
    sequence_stream(&bytes);
}

/// Splits `data` into a part of the length in its first two bytes and the rest.
fn split_u16(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u16::from_le_bytes([*data.first()?, *data.get(1)?]) as usize;
    let rest = &data[2..];
    Some(rest.split_at(n.min(rest.len())))
}

/// bgzip-compresses `plain` in 64-byte blocks; returns the data and its `.gzi` bytes.
fn bgzip_small_blocks(plain: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::new();
    let mut entries = Vec::new();
    let mut uncompressed = 0u64;
    for chunk in plain.chunks(64) {
        let mut w = noodles_bgzf::io::Writer::new(Vec::new());
        let _ = w.write_all(chunk);
        let Ok(bytes) = w.finish() else {
            return (Vec::new(), Vec::new());
        };
        entries.push((out.len() as u64, uncompressed));
        // Drop the empty EOF block the writer appends (28 bytes).
        out.extend_from_slice(&bytes[..bytes.len().saturating_sub(28)]);
        uncompressed += chunk.len() as u64;
    }
    if let Ok(eof) = noodles_bgzf::io::Writer::new(Vec::new()).finish() {
        out.extend_from_slice(&eof);
    }
    let mut gzi = Vec::new();
    let skip = entries.len().min(1);
    gzi.extend_from_slice(&((entries.len() - skip) as u64).to_le_bytes());
    for (c, u) in &entries[skip..] {
        gzi.extend_from_slice(&c.to_le_bytes());
        gzi.extend_from_slice(&u.to_le_bytes());
    }
    (out, gzi)
}

/// An indexed FASTA: byte 0 picks plain, bgzip with a correct `.gzi`, or bgzip with the
/// `.gzi` taken from the input; then a `.fai` (length-prefixed), [a `.gzi`], and the FASTA.
/// Every record is fetched whole and in pieces.
pub fn indexed_fasta(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((fai, rest)) = split_u16(rest) else {
        return;
    };
    let path = Path::new("fuzz.fa");
    let file = match mode % 3 {
        0 => IndexedFasta::from_bytes(path, rest.to_vec(), fai, None),
        1 => {
            let (gz, gzi) = bgzip_small_blocks(rest);
            IndexedFasta::from_bytes(path, gz, fai, Some(&gzi))
        }
        _ => {
            let Some((gzi, fasta)) = split_u16(rest) else {
                return;
            };
            let (gz, _) = bgzip_small_blocks(fasta);
            IndexedFasta::from_bytes(path, gz, fai, Some(gzi))
        }
    };
    let Ok(mut file) = file else {
        return;
    };
    let mut buf = Vec::new();
    for (i, (name, len)) in file.records().into_iter().take(8).enumerate() {
        let _ = file.fetch(&name, 0, len, &mut buf);
        let a = (i as u64 * 37) % len.max(1);
        let b = (a + 1 + i as u64 * 101).min(len);
        let _ = file.fetch(&name, a, b, &mut buf);
        let _ = file.fetch(&name, len.saturating_sub(3), len, &mut buf);
    }
}

/// A region string, resolved against a record length taken from the input's first byte.
pub fn region(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(r) = Region::parse(&text) {
        let length = data.first().map_or(0, |&b| (b as u64) << (b % 64));
        let _ = r.resolve(length);
        let _ = r.resolve(u64::MAX);
        let _ = r.resolve(0);
    }
}

/// BED text.
pub fn bed(data: &[u8]) {
    let _ = crate::input::region::parse_bed(Path::new("fuzz.bed"), Cursor::new(data));
}

/// A 200-base reference the variant targets check their variants against.
fn reference_bases() -> Vec<u8> {
    b"ACGTTGCAAC".repeat(20)
}

fn variants(bytes: Vec<u8>, name: &str) {
    if let Ok(file) = VariantFile::from_bytes(Path::new(name), bytes) {
        let bases = reference_bases();
        for v in &file.variants {
            let _ = crate::variants::check(v, &bases);
        }
    }
}

/// VCF text (or a variant table).
pub fn vcf(data: &[u8]) {
    variants(data.to_vec(), "fuzz.vcf");
}

/// BCF (decompressed): the input after the `BCF\x02\x02` magic.
pub fn bcf(data: &[u8]) {
    let mut bytes = b"BCF\x02\x02".to_vec();
    bytes.extend_from_slice(data);
    variants(bytes, "fuzz.bcf");
}

/// `config.json` text.
pub fn config_json(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = MambaConfig::from_json(text);
    }
}

/// The configuration the safetensors target checks tensors against (a 1-layer d_model 2 model).
pub const TINY_CONFIG: &str = r#"{"vocab_size":12,"hidden_size":2,"state_size":2,
    "num_hidden_layers":1,"intermediate_size":1,"conv_kernel":2,"time_step_rank":1,
    "tie_word_embeddings":true,"use_conv_bias":true}"#;

/// A safetensors file (header and data), loaded as the weights of [`TINY_CONFIG`].
pub fn safetensors(data: &[u8]) {
    if let Ok(config) = MambaConfig::from_json(TINY_CONFIG) {
        let _ = ModelWeights::from_bytes(&config, data, Path::new("fuzz.safetensors"));
    }
}
