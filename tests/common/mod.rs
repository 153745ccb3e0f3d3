//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// The transformers reference written by `test-data/make_fixtures.py`.
pub struct Reference {
    /// Token ids of `test-data/fixture.fa`.
    pub tokens: Vec<u32>,
    /// `[T, 12]` log-softmax of the f32 fixture model after each token.
    pub logp_f32: Vec<f32>,
    /// The same for the bf16 fixture model.
    pub logp_bf16: Vec<f32>,
}

pub const VOCAB: usize = 12;

pub fn reference() -> Reference {
    let (tokens, mut logp) = read_reference(
        "test-data/fixture-reference.safetensors",
        &["logp_f32", "logp_bf16"],
    );
    let logp_bf16 = logp.pop().unwrap();
    let logp_f32 = logp.pop().unwrap();
    Reference {
        tokens,
        logp_f32,
        logp_bf16,
    }
}

/// The `tokens` (i64) and the named f32 tensors of a reference file written by transformers.
pub fn read_reference(path: &str, names: &[&str]) -> (Vec<u32>, Vec<Vec<f32>>) {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tokens = st.tensor("tokens").unwrap();
    assert_eq!(tokens.dtype(), Dtype::I64);
    let tokens = tokens
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
        .collect();
    let f32s = |name: &str| -> Vec<f32> {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), Dtype::F32);
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    (tokens, names.iter().map(|n| f32s(n)).collect())
}

/// The fixture sequence (as in the file, soft-masking kept).
pub fn fixture_sequence() -> String {
    std::fs::read_to_string("test-data/fixture.fa")
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('>'))
        .collect()
}

/// Writes `records` as FASTA with `width` bases per line and `eol` line endings.
pub fn write_fasta(path: &Path, records: &[(&str, &str)], width: usize, eol: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    for (name, seq) in records {
        write!(f, ">{name} description{eol}").unwrap();
        for chunk in seq.as_bytes().chunks(width) {
            f.write_all(chunk).unwrap();
            f.write_all(eol.as_bytes()).unwrap();
        }
    }
}

/// Writes a `.fai` for a plain FASTA with noodles' indexer.
pub fn index_fasta(path: &Path) -> PathBuf {
    let index = noodles_fasta::fs::index(path).unwrap();
    let fai = PathBuf::from(format!("{}.fai", path.display()));
    noodles_fasta::fai::fs::write(&fai, &index).unwrap();
    fai
}

/// bgzip-compresses `plain` into `dst` in small blocks and writes `dst.gzi` and `dst.fai`
/// (the `.fai` of the uncompressed text, as samtools does).
pub fn bgzip_with_index(plain: &Path, dst: &Path) {
    let data = std::fs::read(plain).unwrap();
    let mut blocks = Vec::new();
    let mut out = Vec::new();
    let mut uncompressed = 0u64;
    // Small blocks so region queries cross block boundaries.
    for chunk in data.chunks(1000) {
        let mut w = noodles_bgzf::io::Writer::new(Vec::new());
        w.write_all(chunk).unwrap();
        let bytes = w.finish().unwrap();
        // The writer appends an empty EOF block (28 bytes); keep only the data block.
        let block = &bytes[..bytes.len() - 28];
        blocks.push((out.len() as u64, uncompressed));
        out.extend_from_slice(block);
        uncompressed += chunk.len() as u64;
    }
    let eof = noodles_bgzf::io::Writer::new(Vec::new()).finish().unwrap();
    out.extend_from_slice(&eof);
    std::fs::write(dst, &out).unwrap();
    let gzi = noodles_bgzf::gzi::Index::from(blocks[1..].to_vec());
    let mut w = noodles_bgzf::gzi::io::Writer::new(
        std::fs::File::create(format!("{}.gzi", dst.display())).unwrap(),
    );
    w.write_index(&gzi).unwrap();
    let index = noodles_fasta::fs::index(plain).unwrap();
    noodles_fasta::fai::fs::write(format!("{}.fai", dst.display()), &index).unwrap();
}

/// Gzip-compresses `src` into `dst` (plain gzip, not bgzip).
pub fn gzip(src: &Path, dst: &Path) {
    let mut e = flate2::write::GzEncoder::new(
        std::fs::File::create(dst).unwrap(),
        flate2::Compression::fast(),
    );
    e.write_all(&std::fs::read(src).unwrap()).unwrap();
    e.finish().unwrap();
}

/// Parses CSV output of `ssmgen likelihood` into rows of (chrom, pos, base, fwd, rev, logp).
pub type Row = (String, u64, char, Option<f32>, Option<f32>, Option<f32>);

pub fn parse_csv(text: &str) -> Vec<Row> {
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "chrom,pos,base,logp_fwd,logp_rev,logp"
    );
    let opt = |s: &str| {
        if s.is_empty() {
            None
        } else {
            Some(s.parse::<f32>().unwrap())
        }
    };
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[2].chars().next().unwrap(),
                opt(f[3]),
                opt(f[4]),
                opt(f[5]),
            )
        })
        .collect()
}

/// The stdout of a run that must have succeeded.
pub fn ok_stdout(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts a failure with a one-line message containing every one of `needles`.
pub fn assert_clean_error(out: &std::process::Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "expected exit 1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "error must be one line: {err}"
    );
    assert!(err.starts_with("ssmgen: error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "error {err:?} lacks {n:?}");
    }
}

/// Reverse complement of an ACGT string (upper case; other letters kept).
pub fn revcomp(s: &str) -> String {
    s.chars()
        .rev()
        .map(|c| match c.to_ascii_uppercase() {
            'A' => 'T',
            'C' => 'G',
            'G' => 'C',
            'T' => 'A',
            other => other,
        })
        .collect()
}
