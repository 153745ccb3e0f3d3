//! Sequence input: files, indexes and regions.

pub mod random;
pub mod region;
pub mod sequence_file;
pub mod shards;
pub mod span;

pub use random::RandomReference;
pub use region::{Region, read_bed};
pub use sequence_file::{
    ChunkRead, IndexedFasta, RecordCounts, SequenceFile, StreamFile, StreamFormat,
};
