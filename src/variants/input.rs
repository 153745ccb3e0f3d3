//! Variant input: VCF (plain, gzip or bgzip), BCF (decoded to VCF text with noodles) or a table with `chrom,pos,ref,alt` columns
//! (comma- or tab-separated, optional `id`, 1-based positions). Multi-allelic records become one
//! [`Variant`] per ALT, in input order.

use std::io::{BufRead, BufReader, Read};

use std::path::Path;

use crate::error::{Error, Result};

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

/// Reads the whole input, decompressed when it is gzip or bgzip.
fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    let head = reader.fill_buf().map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    if head.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(reader).read_to_end(&mut bytes)
    } else {
        reader.read_to_end(&mut bytes)
    }
    .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Decodes BCF (already decompressed) into VCF text with noodles, so that it takes the same
/// path as VCF input, annotated VCF output included.
fn bcf_to_vcf_text(path: &Path, bytes: &[u8]) -> Result<String> {
    use noodles_vcf::variant::io::Write as _;
    let bad = |e: std::io::Error| Error::format(path, format!("cannot decode BCF: {e}"));
    let mut reader = noodles_bcf::io::Reader::from(bytes);
    let header = reader.read_header().map_err(bad)?;
    let mut writer = noodles_vcf::io::Writer::new(Vec::new());
    writer.write_header(&header).map_err(bad)?;
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            Error::format(path, format!("BCF record {}: cannot decode: {e}", n + 1))
        })?;
        writer
            .write_variant_record(&header, &record)
            .map_err(|e| Error::format(path, format!("BCF record {}: {e}", n + 1)))?;
    }
    String::from_utf8(writer.into_inner())
        .map_err(|_| Error::format(path, "BCF holds text that is not UTF-8"))
}

impl VariantFile {
    /// Reads a VCF (plain, gzip, bgzip), a BCF, or a variant table.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = read_bytes(path)?;
        let text = if bytes.starts_with(b"BCF") {
            bcf_to_vcf_text(path, &bytes)?
        } else {
            String::from_utf8(bytes)
                .map_err(|e| Error::format(path, format!("not UTF-8 text: {e}")))?
        };
        let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
        let first = lines
            .iter()
            .find(|l| !l.trim().is_empty())
            .copied()
            .unwrap_or("");
        if first.starts_with("##fileformat=VCF") || first.starts_with("#CHROM") {
            Self::from_vcf(path, &lines)
        } else {
            Self::from_table(path, &lines)
        }
    }

    fn from_vcf(path: &Path, lines: &[&str]) -> Result<Self> {
        let mut out = VariantFile {
            variants: Vec::new(),
            header: Vec::new(),
            records: Vec::new(),
            is_vcf: true,
        };
        for (n, line) in lines.iter().enumerate() {
            if line.starts_with('#') {
                out.header.push(line.to_string());
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            let bad = |m: String| Error::format(path, format!("line {}: {m}", n + 1));
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
            let record = out.records.len();
            for (alt_index, alt) in f[4].split(',').enumerate() {
                out.variants.push(Variant {
                    chrom: f[0].to_string(),
                    pos,
                    id: f[2].to_string(),
                    reference: f[3].to_string(),
                    alt: alt.to_string(),
                    record,
                    alt_index,
                });
            }
            out.records.push(line.to_string());
        }
        Ok(out)
    }

    fn from_table(path: &Path, lines: &[&str]) -> Result<Self> {
        let mut rows = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header)) = rows.next() else {
            return Ok(VariantFile {
                variants: Vec::new(),
                header: Vec::new(),
                records: Vec::new(),
                is_vcf: false,
            });
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
                path,
                "not a VCF, and as a table the first line must name the columns chrom, pos, ref and alt",
            ));
        };
        let ii = col("id");
        let mut variants = Vec::new();
        for (record, (n, line)) in rows.enumerate() {
            let f: Vec<&str> = line.split(sep).map(str::trim).collect();
            let bad = |m: String| Error::format(path, format!("line {}: {m}", n + 1));
            let get = |i: usize| {
                f.get(i)
                    .copied()
                    .ok_or_else(|| bad(format!("needs {} columns, found {}", names.len(), f.len())))
            };
            let pos: u64 = get(pi)?.parse().ok().filter(|&p| p > 0).ok_or_else(|| {
                bad(format!(
                    "pos {:?} is not a positive whole number (1-based)",
                    f.get(pi)
                ))
            })?;
            for (alt_index, alt) in get(ai)?.split(',').enumerate() {
                variants.push(Variant {
                    chrom: get(ci)?.to_string(),
                    pos,
                    id: ii
                        .and_then(|i| f.get(i))
                        .map_or(".".to_string(), |s| s.to_string()),
                    reference: get(ri)?.to_string(),
                    alt: alt.to_string(),
                    record,
                    alt_index,
                });
            }
        }
        Ok(VariantFile {
            variants,
            header: Vec::new(),
            records: Vec::new(),
            is_vcf: false,
        })
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
