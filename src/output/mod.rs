//! Output writers: where results go and the formats they are written in.

pub mod atomic;
pub mod track;

pub use atomic::{Output, format_extension};
pub use track::{BedGraphSink, CsvSink, TrackSink};
