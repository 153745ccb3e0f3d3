//! Variant input: VCF (plain, gzip or bgzip), BCF (decoded to VCF text with noodles) or a table with `chrom,pos,ref,alt` columns
//! (comma- or tab-separated, optional `id`, 1-based positions). Multi-allelic records become one
//! [`Variant`] per ALT, in input order.

use std::io::{BufRead, BufReader, Read};

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

/// Reads the whole input, decompressed when it is gzip or bgzip.
fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let source: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| Error::io(path, e))?)
    };
    let mut reader = BufReader::new(source);
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

/// Walks the BCF framing (magic, header text, then each record's two lengths) without
/// decoding, so that no length read from the file is trusted before it is checked against
/// [`MAX_BCF_RECORD`] and against the bytes that are really there.
fn check_bcf_framing(path: &Path, bytes: &[u8]) -> Result<()> {
    let bad = |m: String| Error::format(path, format!("cannot decode BCF: {m}"));
    let u32_at = |at: usize| -> Option<u64> {
        bytes
            .get(at..at.checked_add(4)?)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
    };
    if bytes.len() < 9 || &bytes[..3] != b"BCF" {
        return Err(bad("too short for a BCF header".into()));
    }
    let text = u32_at(5).ok_or_else(|| bad("truncated header".into()))?;
    let mut at = 9u64 + text;
    if at > bytes.len() as u64 {
        return Err(bad(format!(
            "the header claims {text} bytes of text but the file has {}",
            bytes.len() - 9
        )));
    }
    // The samples the header names: every record must carry exactly that many (a record
    // claiming 2^24 made the decoder loop over them, a 567-byte file taking 0.4 s).
    let header_text = &bytes[9..at as usize];
    let samples = header_text
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"#CHROM"))
        .map(|l| {
            let l = l.strip_suffix(b"\0").unwrap_or(l);
            l.split(|&b| b == b'\t').count().saturating_sub(9) as u64
        });
    let mut n = 0u64;
    while at < bytes.len() as u64 {
        n += 1;
        let (Some(shared), Some(indiv)) = (u32_at(at as usize), u32_at(at as usize + 4)) else {
            return Err(bad(format!("record {n}: truncated record lengths")));
        };
        let size = shared + indiv;
        if size > MAX_BCF_RECORD {
            return Err(bad(format!(
                "record {n}: {size} bytes, more than the {MAX_BCF_RECORD} ssmgen accepts"
            )));
        }
        if shared < 24 {
            return Err(bad(format!(
                "record {n}: {shared} bytes of site data, less than the 24 every record has"
            )));
        }
        let site = at as usize + 8;
        let n_sample = bytes
            .get(site + 20..site + 23)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], 0]) as u64);
        if let Some(samples) = samples
            && n_sample != samples
        {
            return Err(bad(format!(
                "record {n}: {n_sample} samples, but the header names {samples}"
            )));
        }
        at += 8 + size;
        if at > bytes.len() as u64 {
            return Err(bad(format!("record {n}: the file ends inside the record")));
        }
    }
    Ok(())
}

/// Decodes BCF (already decompressed) into VCF text with noodles, so that it takes the same
/// path as VCF input, annotated VCF output included. The framing is checked first, and a
/// panic inside the decoder (some malformed fields reach an `unwrap` there) becomes an error
/// naming the record.
fn bcf_to_vcf_text(path: &Path, bytes: &[u8]) -> Result<String> {
    use noodles_vcf::variant::io::Write as _;
    check_bcf_framing(path, bytes)?;
    let record_no = std::cell::Cell::new(0usize);
    let decoded = crate::guard::catch(|| -> Result<Vec<u8>> {
        let bad = |e: std::io::Error| Error::format(path, format!("cannot decode BCF: {e}"));
        let mut reader = noodles_bcf::io::Reader::from(bytes);
        let header = reader.read_header().map_err(bad)?;
        let mut writer = noodles_vcf::io::Writer::new(Vec::new());
        writer.write_header(&header).map_err(bad)?;
        for (n, record) in reader.records().enumerate() {
            record_no.set(n + 1);
            let record = record.map_err(|e| {
                Error::format(path, format!("BCF record {}: cannot decode: {e}", n + 1))
            })?;
            writer
                .write_variant_record(&header, &record)
                .map_err(|e| Error::format(path, format!("BCF record {}: {e}", n + 1)))?;
        }
        Ok(writer.into_inner())
    });
    let text = decoded.map_err(|panic| {
        let at = match record_no.get() {
            0 => "the header".to_string(),
            n => format!("record {n}"),
        };
        Error::format(path, format!("BCF {at}: cannot decode ({panic})"))
    })??;
    String::from_utf8(text).map_err(|_| Error::format(path, "BCF holds text that is not UTF-8"))
}

/// Checks the sizes of one variant line: a bounded POS, alleles and chromosome name.
fn check_sizes(
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
    /// Reads a VCF (plain, gzip, bgzip), a BCF, or a variant table; `-` reads stdin.
    pub fn read(path: &Path) -> Result<Self> {
        Self::from_bytes(path, read_bytes(path)?)
    }

    /// Parses the decompressed bytes of a VCF, BCF or variant table; `path` names the input in
    /// messages.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        let text = if bytes.starts_with(b"BCF") {
            bcf_to_vcf_text(path, &bytes)?
        } else {
            String::from_utf8(bytes)
                .map_err(|e| Error::format(path, format!("not UTF-8 text: {e}")))?
        };
        if text.trim().is_empty() {
            return Err(Error::format(path, "is empty: no VCF header and no table"));
        }
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
            check_sizes(f[0], pos, f[3], f[4]).map_err(bad)?;
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
            check_sizes(get(ci)?, pos, get(ri)?, get(ai)?).map_err(bad)?;
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
