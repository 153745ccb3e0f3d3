//! Variant input: VCF (plain, gzip or bgzip), BCF (decoded to VCF text with noodles) or a table with `chrom,pos,ref,alt` columns
//! (comma- or tab-separated, optional `id`, 1-based positions). Multi-allelic records become one
//! [`Variant`] per ALT, in input order.

use std::path::Path;

use crate::error::{Error, Result};

/// The longest REF or ALT allele accepted, in bases: an allele is scored as one continuation,
/// whose memory grows with its length.
pub const MAX_ALLELE_LEN: usize = 10_000;
/// The largest POS accepted (1-based): no genome has a chromosome this long.
pub const MAX_POS: u64 = 1 << 40;
/// The largest BCF record accepted (shared plus per-sample bytes).
pub const MAX_BCF_RECORD: u64 = 64 << 20;

/// One REF/ALT pair to score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    /// Chromosome as written in the input.
    pub chrom: String,
    /// 1-based position of the first REF base.
    pub pos: u64,
    /// ID column (`.` when absent).
    pub id: String,
    /// Reference allele.
    pub reference: String,
    /// This alternate allele.
    pub alt: String,
    /// Index of the input record (line) it came from.
    pub record: usize,
    /// Index of this ALT within its record.
    pub alt_index: usize,
}

/// Parsed input: the variants, and for VCF the header lines and data lines (for annotated output).
#[derive(Debug)]
pub struct VariantFile {
    /// One entry per REF/ALT pair, in input order.
    pub variants: Vec<Variant>,
    /// VCF meta lines (`##...`) and the `#CHROM` line; empty for a table.
    pub header: Vec<String>,
    /// VCF data lines, one per record; empty for a table.
    pub records: Vec<String>,
    /// Whether the input was VCF.
    pub is_vcf: bool,
}

/// Checks the sizes of one variant line: a bounded POS, alleles and chromosome name.
pub(crate) fn check_sizes(
    chrom: &str,
    pos: u64,
    reference: &str,
    alts: &str,
) -> std::result::Result<(), String> {
    if pos > MAX_POS {
        return Err(format!(
            "POS {pos} is larger than {MAX_POS}, the most ssmgen accepts"
        ));
    }
    if chrom.len() > crate::input::sequence_file::MAX_NAME_LEN {
        return Err(format!(
            "the chromosome name is {} bytes long; the most ssmgen accepts is {}",
            chrom.len(),
            crate::input::sequence_file::MAX_NAME_LEN
        ));
    }
    for (what, allele) in
        std::iter::once(("REF", reference)).chain(alts.split(',').map(|a| ("ALT", a)))
    {
        if allele.len() > MAX_ALLELE_LEN {
            return Err(format!(
                "{what} allele of {} bases; the most ssmgen scores is {MAX_ALLELE_LEN} (filter long alleles first, e.g. `bcftools view -e 'strlen(REF)>{MAX_ALLELE_LEN} || strlen(ALT)>{MAX_ALLELE_LEN}'`)",
                allele.len()
            ));
        }
    }
    Ok(())
}

impl VariantFile {
    /// Reads a VCF (plain, gzip, bgzip), a BCF, or a variant table; `-` reads stdin. Holds every
    /// record: the streaming path ([`super::stream::VariantStream`]) does not.
    pub fn read(path: &Path) -> Result<Self> {
        Self::collect(super::stream::VariantStream::open(path)?)
    }

    /// Parses the bytes of a VCF, BCF or variant table (compressed or not); `path` names the
    /// input in messages.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        Self::collect(super::stream::from_bytes(path, bytes)?)
    }

    /// Every record of `stream`.
    pub fn collect(mut stream: super::stream::VariantStream) -> Result<Self> {
        let mut out = VariantFile {
            variants: Vec::new(),
            header: std::mem::take(&mut stream.header),
            records: Vec::new(),
            is_vcf: stream.is_vcf,
        };
        while let Some(record) = stream.next_record()? {
            out.variants.extend(record.variants);
            if let Some(line) = record.line {
                out.records.push(line);
            }
        }
        Ok(out)
    }
}

/// Reads a chromosome alias file: two whitespace-separated columns, `alias fasta_name`.
pub fn read_aliases(path: &Path) -> Result<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut map = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        match (f.next(), f.next()) {
            (Some(a), Some(b)) => {
                map.insert(a.to_string(), b.to_string());
            }
            _ => {
                return Err(Error::format(
                    path,
                    format!("line {}: expected `alias fasta_name`", n + 1),
                ));
            }
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcf_splits_multiallelic_and_table_reads_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.vcf");
        std::fs::write(&p, "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nc1\t5\trs1\tA\tG,T\t.\t.\t.\n").unwrap();
        let v = VariantFile::read(&p).unwrap();
        assert_eq!(v.variants.len(), 2);
        assert_eq!(
            (v.variants[1].alt.as_str(), v.variants[1].alt_index),
            ("T", 1)
        );
        assert_eq!(v.header.len(), 2);
        let t = dir.path().join("v.csv");
        std::fs::write(&t, "chrom,pos,ref,alt\nc1,7,AC,A\n").unwrap();
        let v = VariantFile::read(&t).unwrap();
        assert_eq!(
            (v.variants[0].pos, v.variants[0].reference.as_str()),
            (7, "AC")
        );
        std::fs::write(&t, "c1,7,AC,A\n").unwrap();
        assert!(
            VariantFile::read(&t)
                .unwrap_err()
                .to_string()
                .contains("chrom, pos, ref and alt")
        );
    }
}
