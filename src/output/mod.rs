//! Output writers: where results go and the formats they are written in.

pub mod atomic;
pub mod bigwig;
pub mod embedding;
pub mod track;

pub use atomic::{Output, format_extension};
pub use bigwig::BigWigWriter;
pub use track::{BedGraphSink, CsvSink, IntervalSink, TrackSink};
