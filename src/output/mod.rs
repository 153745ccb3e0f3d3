//! Output writers: where results go and the formats they are written in.

pub mod atomic;
pub mod bigwig;
pub mod embedding;
pub mod index;
pub mod parquet;
pub mod track;

pub use atomic::{Output, format_extension};
pub use bigwig::BigWigWriter;
pub use index::{IndexKind, Preset};
pub use track::{BedGraphSink, CsvSink, IntervalSink, TrackSink};

/// A csv crate error as ssmgen's I/O error on `what`.
pub(crate) fn csv_error(what: &std::path::Path, e: csv::Error) -> crate::error::Error {
    let cause = match e.into_kind() {
        csv::ErrorKind::Io(io) => io,
        other => std::io::Error::other(format!("{other:?}")),
    };
    crate::error::Error::io(what, cause)
}
