//! Output formats from `-O/--output-type` or the output's extension, and `--write-index`.

use std::path::Path;

use ssmgen::output::atomic::is_gzip_name;
use ssmgen::output::{IndexKind, format_extension};

/// One format a command writes: the extensions that name it and whether it is text (so a
/// `.gz` suffix compresses it).
pub struct Known<F> {
    /// Extensions, lowercase, without the dot; the first is the one listed in messages.
    pub extensions: &'static [&'static str],
    /// The format.
    pub format: F,
    /// Text (compressible with `.gz`).
    pub text: bool,
}

/// The format of `output`: `-O` when given; else, for a file, its extension (looking past
/// `.gz`), which must be one of `known` (an error lists them); a name with no extension, a
/// device or stdout gets `default`. A `.gz` name must be a text format.
pub fn choose<F: Copy + PartialEq>(
    output: Option<&Path>,
    explicit: Option<F>,
    known: &[Known<F>],
    default: F,
) -> anyhow::Result<F> {
    let file = output.filter(|p| *p != Path::new("-"));
    let Some(path) = file else {
        return Ok(explicit.unwrap_or(default));
    };
    if path.is_dir() {
        // Writing it fails with its own message ("is a directory").
        return Ok(explicit.unwrap_or(default));
    }
    let format = match (explicit, format_extension(path)) {
        (Some(f), _) => f,
        (None, None) => default,
        (None, Some(ext)) => match known.iter().find(|k| k.extensions.contains(&ext.as_str())) {
            Some(k) => k.format,
            None => anyhow::bail!(
                "{}: unknown output extension '.{ext}'; known: {} (add .gz to compress {}), or \
                 choose the format with -O",
                path.display(),
                list(known),
                text_list(known)
            ),
        },
    };
    let text = known.iter().any(|k| k.format == format && k.text);
    if is_gzip_name(path) && !text {
        anyhow::bail!(
            "{}: .gz compresses text formats only ({})",
            path.display(),
            text_list(known)
        );
    }
    Ok(format)
}

fn list<F>(known: &[Known<F>]) -> String {
    known
        .iter()
        .flat_map(|k| k.extensions.iter().map(|e| format!(".{e}")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn text_list<F>(known: &[Known<F>]) -> String {
    known
        .iter()
        .filter(|k| k.text)
        .map(|k| format!(".{}", k.extensions[0]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Values of `--write-index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IndexArg {
    /// CSI (`FILE.csi`), as `bcftools --write-index` (the default).
    Csi,
    /// Tabix (`FILE.tbi`), positions below 2^29 only.
    Tbi,
}

/// `--write-index[=csi|tbi]`.
#[derive(clap::Args, Debug, Clone)]
pub struct IndexArgs {
    /// Write an index beside each BGZF (`.gz`) output, put in place together with it: `csi`
    /// (FILE.csi, the default, as bcftools) or `tbi` (FILE.tbi). Needs an output file sorted by
    /// position within each chromosome (chromosomes not interleaved).
    #[arg(
        long,
        value_name = "FMT",
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "csi"
    )]
    pub write_index: Option<IndexArg>,
}

impl IndexArgs {
    /// The index asked for, if any.
    pub fn kind(&self) -> Option<IndexKind> {
        self.write_index.map(|k| match k {
            IndexArg::Csi => IndexKind::Csi,
            IndexArg::Tbi => IndexKind::Tbi,
        })
    }
}
