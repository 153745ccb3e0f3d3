//! Writing variant scores: TSV/CSV tables, BED, or the input VCF with INFO fields added.

use std::io::Write;

use super::{Variant, VariantFile, VariantResult};
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
    out: Output,
    format: VariantFormat,
    extra_header: &[String],
    kind: ScoreKind,
    file: &VariantFile,
    results: &[VariantResult],
) -> Result<()> {
    let mut w = RowWriter::new(out, format, extra_header, kind, &file.header, file.is_vcf)?;
    let mut i = 0;
    while i < file.variants.len() {
        let start = i;
        let record = file.variants[i].record;
        while i < file.variants.len() && file.variants[i].record == record {
            i += 1;
        }
        let line = file.records.get(record).map(String::as_str);
        w.record(&file.variants[start..i], line, &results[start..i])?;
    }
    w.finish()
}

enum Rows {
    Table(Box<csv::Writer<Output>>),
    Bed(Output),
    Vcf(Output),
}

/// Writes variant scores record by record, in any of the [`VariantFormat`]s.
pub struct RowWriter {
    rows: Rows,
    kind: ScoreKind,
    is_vcf: bool,
    shown: std::path::PathBuf,
}

impl RowWriter {
    /// Starts `out`: the table's column names, or the VCF header (the input's `header` lines,
    /// a minimal one when the input is not VCF, with `extra_header` and the `SSM_*` INFO lines
    /// before `#CHROM`).
    pub fn new(
        mut out: Output,
        format: VariantFormat,
        extra_header: &[String],
        kind: ScoreKind,
        header: &[String],
        is_vcf: bool,
    ) -> Result<Self> {
        let shown = out.display_path();
        let rows = match format {
            VariantFormat::Tsv | VariantFormat::Csv => {
                let sep = if format == VariantFormat::Tsv {
                    b'\t'
                } else {
                    b','
                };
                let mut w = csv::WriterBuilder::new().delimiter(sep).from_writer(out);
                w.write_record(COLUMNS)
                    .map_err(|e| crate::output::csv_error(&shown, e))?;
                Rows::Table(Box::new(w))
            }
            VariantFormat::Bed => Rows::Bed(out),
            VariantFormat::Vcf => {
                write_vcf_header(&mut out, header, is_vcf, extra_header)?;
                Rows::Vcf(out)
            }
        };
        Ok(RowWriter {
            rows,
            kind,
            is_vcf,
            shown,
        })
    }

    /// Writes one input record: its variants (one per ALT), its VCF line (`None` for a table)
    /// and their results.
    pub fn record(
        &mut self,
        variants: &[Variant],
        line: Option<&str>,
        results: &[VariantResult],
    ) -> Result<()> {
        let kind = self.kind;
        match &mut self.rows {
            Rows::Table(w) => {
                let shown = &self.shown;
                let err = |e: csv::Error| crate::output::csv_error(shown, e);
                for (v, r) in variants.iter().zip(results) {
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
            }
            Rows::Bed(out) => {
                for (v, r) in variants.iter().zip(results) {
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
                    .map_err(io(out))?;
                }
            }
            Rows::Vcf(out) => write_vcf_record(out, kind, self.is_vcf, variants, line, results)?,
        }
        Ok(())
    }

    /// Finishes the output and commits it under its name.
    pub fn finish(self) -> Result<()> {
        match self.rows {
            Rows::Table(w) => {
                let out = w
                    .into_inner()
                    .map_err(|e| Error::io(&self.shown, e.into_error()))?;
                out.commit()
            }
            Rows::Bed(out) | Rows::Vcf(out) => out.commit(),
        }
    }
}

const INFO_LINES: [&str; 4] = [
    "##INFO=<ID=SSM_LLR,Number=A,Type=Float,Description=\"ssmgen: log P(ALT base | upstream) - log P(REF base | upstream), mean of forward and reverse-complement strands\">",
    "##INFO=<ID=SSM_DLL,Number=A,Type=Float,Description=\"ssmgen: log-likelihood of ALT minus REF over the allele and the downstream window, mean of both strands\">",
    "##INFO=<ID=SSM_SCORE,Number=A,Type=Float,Description=\"ssmgen: the reported score (SSM_DLL or SSM_LLR, see --score)\">",
    "##INFO=<ID=SSM_SKIP,Number=A,Type=String,Description=\"ssmgen: why an ALT has no score (unknown_contig, symbolic_or_missing_alt, non_acgt_allele, past_contig_end, ref_mismatch), . if scored\">",
];

fn write_vcf_header(
    out: &mut Output,
    input_header: &[String],
    is_vcf: bool,
    extra_header: &[String],
) -> Result<()> {
    let e = |err: std::io::Error| Error::io("<vcf output>", err);
    let minimal = [
        "##fileformat=VCFv4.2".to_string(),
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO".to_string(),
    ];
    let header: &[String] = if is_vcf { input_header } else { &minimal };
    for line in header {
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
    Ok(())
}

/// One VCF line for a record: the input's line with the `SSM_*` INFO fields added, or a minimal
/// line for a table's record.
fn write_vcf_record(
    out: &mut Output,
    kind: ScoreKind,
    is_vcf: bool,
    variants: &[Variant],
    line: Option<&str>,
    alts: &[VariantResult],
) -> Result<()> {
    let e = |err: std::io::Error| Error::io("<vcf output>", err);
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
    let text = match (is_vcf, line) {
        (true, Some(line)) => {
            let mut f: Vec<String> = line.split('\t').map(str::to_string).collect();
            while f.len() < 8 {
                f.push(".".into());
            }
            f[7] = if f[7] == "." || f[7].is_empty() {
                added
            } else {
                format!("{};{added}", f[7])
            };
            f.join("\t")
        }
        _ => {
            let Some(v) = variants.first() else {
                return Ok(());
            };
            let alt: Vec<&str> = variants.iter().map(|v| v.alt.as_str()).collect();
            format!(
                "{}\t{}\t{}\t{}\t{}\t.\t.\t{added}",
                v.chrom,
                v.pos,
                v.id,
                v.reference,
                alt.join(",")
            )
        }
    };
    writeln!(out, "{text}").map_err(e)?;
    Ok(())
}
