//! Tabix (`.tbi`) and CSI (`.csi`) indexes of BGZF text outputs, built by reading the finished
//! file back (noodles-bgzf for virtual positions, noodles-csi's indexer, noodles-tabix/-csi
//! writers), so every writer gets an index without knowing about it.

use std::io::BufRead;
use std::path::Path;

use noodles_core::Position;
use noodles_csi::binning_index::Indexer;
use noodles_csi::binning_index::index::Header;
use noodles_csi::binning_index::index::header::ReferenceSequenceNames;
use noodles_csi::binning_index::index::header::format::{CoordinateSystem, Format};
use noodles_csi::binning_index::index::reference_sequence::bin::Chunk;
use noodles_csi::binning_index::index::reference_sequence::index::{BinnedIndex, LinearIndex};

use crate::error::{Error, Result};

/// Which index file `--write-index` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    /// Tabix `.tbi` (positions below 2^29).
    Tbi,
    /// CSI `.csi` (min_shift 14, depth 7: positions below 2^35), as `bcftools index` writes.
    Csi,
}

impl IndexKind {
    /// The index file's extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            IndexKind::Tbi => "tbi",
            IndexKind::Csi => "csi",
        }
    }
}

/// How a text output's lines are read for indexing (the tabix presets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// VCF: `#` lines are the header; CHROM, POS (1-based), the end from REF's length.
    Vcf,
    /// BED-like (`bed`, bedGraph): chrom, 0-based start, end; the first `skip` lines are a header.
    Bed {
        /// Header lines to skip.
        skip: u32,
    },
    /// A table with a header line and columns chrom, pos (1-based), id, ref, ...
    PosTable,
}

impl Preset {
    fn header(self) -> Header {
        use noodles_csi::binning_index::index::header::Builder;
        match self {
            Preset::Vcf => Builder::vcf().build(),
            Preset::Bed { skip } => Builder::bed().set_line_skip_count(skip).build(),
            Preset::PosTable => Builder::vcf()
                .set_format(Format::Generic(CoordinateSystem::Gff))
                .set_end_position_index(None)
                .set_line_skip_count(1)
                .build(),
        }
    }

    fn skip(self) -> u32 {
        match self {
            Preset::Vcf => 0,
            Preset::Bed { skip } => skip,
            Preset::PosTable => 1,
        }
    }

    /// Chrom, 1-based start and 1-based inclusive end of a data line.
    fn locate(self, line: &str) -> Option<(&str, usize, usize)> {
        let mut f = line.split('\t');
        let chrom = f.next()?;
        let a: usize = f.next()?.parse().ok()?;
        match self {
            Preset::Bed { .. } => {
                let end: usize = f.next()?.parse().ok()?;
                Some((chrom, a + 1, end.max(a + 1)))
            }
            Preset::Vcf | Preset::PosTable => {
                let reference = f.nth(1)?;
                Some((chrom, a, a + reference.len().max(1) - 1))
            }
        }
    }
}

/// Builds the index of the BGZF file at `data` (shown as `shown` in messages) and returns it
/// serialised. Records must be grouped by chromosome and sorted by start within each.
pub fn build(data: &Path, shown: &Path, preset: Preset, kind: IndexKind) -> Result<Vec<u8>> {
    let file = std::fs::File::open(data).map_err(|e| Error::io(shown, e))?;
    let mut reader = noodles_bgzf::io::Reader::new(file);
    let bad = |n: u64, why: String| Error::format(shown, format!("cannot index line {n}: {why}"));
    let mut names = ReferenceSequenceNames::new();
    let mut tbi: Indexer<LinearIndex> = Indexer::default();
    let mut csi: Indexer<BinnedIndex> =
        Indexer::new(14, 7).ok_or_else(|| Error::format(shown, "invalid CSI parameters"))?;
    let mut line = String::new();
    let mut n = 0u64;
    loop {
        line.clear();
        let start = reader.virtual_position();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| Error::io(shown, e))?;
        if read == 0 {
            break;
        }
        n += 1;
        let end = reader.virtual_position();
        if n <= u64::from(preset.skip()) || line.starts_with('#') {
            continue;
        }
        let text = line.trim_end_matches(['\n', '\r']);
        let (chrom, from, to) = preset
            .locate(text)
            .ok_or_else(|| bad(n, "no chromosome and position columns".into()))?;
        let id = match names.get_index_of(chrom.as_bytes()) {
            Some(id) if id + 1 == names.len() => id,
            Some(_) => {
                return Err(bad(
                    n,
                    format!("'{chrom}' comes again after another chromosome (output not sorted)"),
                ));
            }
            None => {
                names.insert(chrom.to_string().into());
                names.len() - 1
            }
        };
        let (Some(from), Some(to)) = (Position::new(from), Position::new(to)) else {
            return Err(bad(n, "position 0".into()));
        };
        let context = Some((id, from, to, true));
        let chunk = Chunk::new(start, end);
        let added = match kind {
            IndexKind::Tbi => tbi.add_record(context, chunk),
            IndexKind::Csi => csi.add_record(context, chunk),
        };
        added.map_err(|e| {
            let hint = if kind == IndexKind::Tbi {
                " (positions past 2^29 need --write-index=csi)"
            } else {
                ""
            };
            bad(n, format!("{e}{hint}"))
        })?;
    }
    let count = names.len();
    let mut header = preset.header();
    *header.reference_sequence_names_mut() = names;
    let written = match kind {
        IndexKind::Tbi => {
            let index = tbi.set_header(header).build(count);
            let mut w = noodles_tabix::io::Writer::new(Vec::new());
            w.write_index(&index).and_then(|()| w.into_inner().finish())
        }
        IndexKind::Csi => {
            let index = csi.set_header(header).build(count);
            let mut w = noodles_csi::io::Writer::new(Vec::new());
            w.write_index(&index).and_then(|()| w.into_inner().finish())
        }
    };
    let bytes = written.map_err(|e| Error::io(shown, e))?;
    Ok(bytes)
}
