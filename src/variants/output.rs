//! Writing variant scores: TSV/CSV tables, BED, or the input VCF with INFO fields added.

use std::io::Write;

use super::{VariantFile, VariantResult};
use crate::error::{Error, Result};
use crate::output::Output;

/// Output formats of `score-variants`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VariantFormat {
    /// Tab-separated table with a header.
    Tsv,
    /// Comma-separated table with a header.
    Csv,
    /// BED: `chrom start end name score`, scored variants only.
    Bed,
    /// The input VCF (or a minimal one for a table) with `SSM_*` INFO fields.
    Vcf,
}

/// Which value is reported as `score`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreKind {
    /// `delta_ll`, averaged over strands.
    DeltaLl,
    /// `llr`, averaged over strands.
    Llr,
}

/// Columns of the TSV/CSV table.
pub const COLUMNS: [&str; 14] = [
    "chrom",
    "pos",
    "id",
    "ref",
    "alt",
    "llr_fwd",
    "llr_rev",
    "llr",
    "delta_ll_fwd",
    "delta_ll_rev",
    "delta_ll",
    "score",
    "ref_mismatch",
    "skip_reason",
];

/// A score as written: empty when there is none (a masked model has no `delta_ll`: `NaN`).
fn num(v: Option<f64>) -> String {
    v.filter(|x| !x.is_nan())
        .map_or(String::new(), |x| format!("{x:.6}"))
}

fn io(out: &Output) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(out.path().unwrap_or(std::path::Path::new("<stdout>")), e)
}

/// The reported score of a result.
pub fn score_of(r: &VariantResult, kind: ScoreKind) -> Option<f64> {
    match kind {
        ScoreKind::DeltaLl => r.delta_ll(),
        ScoreKind::Llr => r.llr(),
    }
}

/// Writes `results` (parallel to `file.variants`) to `out` and commits it. VCF output gets the
/// header lines `extra_header` (provenance, `##contig`) before `#CHROM`.
pub fn write(
    mut out: Output,
    format: VariantFormat,
    extra_header: &[String],
    kind: ScoreKind,
    file: &VariantFile,
    results: &[VariantResult],
) -> Result<()> {
    match format {
        VariantFormat::Tsv | VariantFormat::Csv => {
            let sep = if format == VariantFormat::Tsv {
                b'\t'
            } else {
                b','
            };
            let shown = out.display_path();
            let mut w = csv::WriterBuilder::new()
                .delimiter(sep)
                .from_writer(&mut out);
            let err = |e: csv::Error| crate::output::csv_error(&shown, e);
            w.write_record(COLUMNS).map_err(err)?;
            for (v, r) in file.variants.iter().zip(results) {
                let (f, rv) = (r.fwd, r.rev);
                w.write_record([
                    v.chrom.clone(),
                    v.pos.to_string(),
                    v.id.clone(),
                    v.reference.clone(),
                    v.alt.clone(),
                    num(f.and_then(|s| s.llr)),
                    num(rv.and_then(|s| s.llr)),
                    num(r.llr()),
                    num(f.map(|s| s.delta_ll)),
                    num(rv.map(|s| s.delta_ll)),
                    num(r.delta_ll()),
                    num(score_of(r, kind)),
                    u8::from(r.skip == Some(super::Skip::RefMismatch)).to_string(),
                    r.skip.map_or("", |s| s.as_str()).to_string(),
                ])
                .map_err(err)?;
            }
            w.flush().map_err(|e| Error::io(&shown, e))?;
        }
        VariantFormat::Bed => {
            for (v, r) in file.variants.iter().zip(results) {
                let Some(score) = score_of(r, kind) else {
                    continue;
                };
                let name = if v.id != "." {
                    v.id.clone()
                } else {
                    format!("{}:{}:{}>{}", v.chrom, v.pos, v.reference, v.alt)
                };
                let start = v.pos - 1;
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{:.6}",
                    v.chrom,
                    start,
                    start + v.reference.len() as u64,
                    name,
                    score
                )
                .map_err(io(&out))?;
            }
        }
        VariantFormat::Vcf => write_vcf(&mut out, kind, file, results, extra_header)?,
    }
    out.commit()
}

const INFO_LINES: [&str; 4] = [
    "##INFO=<ID=SSM_LLR,Number=A,Type=Float,Description=\"ssmgen: log P(ALT base | upstream) - log P(REF base | upstream), mean of forward and reverse-complement strands\">",
    "##INFO=<ID=SSM_DLL,Number=A,Type=Float,Description=\"ssmgen: log-likelihood of ALT minus REF over the allele and the downstream window, mean of both strands\">",
    "##INFO=<ID=SSM_SCORE,Number=A,Type=Float,Description=\"ssmgen: the reported score (SSM_DLL or SSM_LLR, see --score)\">",
    "##INFO=<ID=SSM_SKIP,Number=A,Type=String,Description=\"ssmgen: why an ALT has no score (unknown_contig, symbolic_or_missing_alt, non_acgt_allele, past_contig_end, ref_mismatch), . if scored\">",
];

fn write_vcf(
    out: &mut Output,
    kind: ScoreKind,
    file: &VariantFile,
    results: &[VariantResult],
    extra_header: &[String],
) -> Result<()> {
    let e = |err: std::io::Error| Error::io("<vcf output>", err);
    let header: Vec<String> = if file.is_vcf {
        file.header.clone()
    } else {
        vec![
            "##fileformat=VCFv4.2".into(),
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO".into(),
        ]
    };
    for line in &header {
        if line.starts_with("#CHROM") {
            for extra in extra_header {
                writeln!(out, "{extra}").map_err(e)?;
            }
            for info in INFO_LINES {
                writeln!(out, "{info}").map_err(e)?;
            }
        }
        writeln!(out, "{line}").map_err(e)?;
    }
    // Group results by record (ALTs of one record are consecutive).
    let mut i = 0;
    let records = if file.is_vcf {
        file.records.len()
    } else {
        file.variants.last().map_or(0, |v| v.record + 1)
    };
    for rec in 0..records {
        let start = i;
        while i < file.variants.len() && file.variants[i].record == rec {
            i += 1;
        }
        let alts = &results[start..i];
        let join =
            |f: &dyn Fn(&VariantResult) -> String| alts.iter().map(f).collect::<Vec<_>>().join(",");
        let fmt = |x: Option<f64>| {
            x.filter(|v| !v.is_nan())
                .map_or(".".to_string(), |v| format!("{v:.6}"))
        };
        let added = format!(
            "SSM_LLR={};SSM_DLL={};SSM_SCORE={};SSM_SKIP={}",
            join(&|r| fmt(r.llr())),
            join(&|r| fmt(r.delta_ll())),
            join(&|r| fmt(score_of(r, kind))),
            join(&|r| r.skip.map_or(".".to_string(), |s| s.as_str().to_string())),
        );
        let line = if file.is_vcf {
            let mut f: Vec<String> = file.records[rec].split('\t').map(str::to_string).collect();
            while f.len() < 8 {
                f.push(".".into());
            }
            f[7] = if f[7] == "." || f[7].is_empty() {
                added
            } else {
                format!("{};{added}", f[7])
            };
            f.join("\t")
        } else {
            let v = &file.variants[start];
            let alt: Vec<&str> = file.variants[start..i]
                .iter()
                .map(|v| v.alt.as_str())
                .collect();
            format!(
                "{}\t{}\t{}\t{}\t{}\t.\t.\t{added}",
                v.chrom,
                v.pos,
                v.id,
                v.reference,
                alt.join(",")
            )
        };
        writeln!(out, "{line}").map_err(e)?;
    }
    Ok(())
}
