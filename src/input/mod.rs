//! Sequence input: files, indexes and regions.

pub mod region;
pub mod sequence_file;
pub mod shards;
pub mod span;

pub use region::{Region, read_bed};
pub use sequence_file::{
    ChunkRead, IndexedFasta, RecordCounts, SequenceFile, StreamFile, StreamFormat,
};
