//! Sequence input: files, indexes and regions.

pub mod random;
pub mod region;
pub mod sequence_file;
pub mod shards;
pub mod span;

pub use random::RandomReference;
pub use region::{Region, first_overlap, read_bed, sort_regions};
pub use sequence_file::{
    ChunkRead, IndexedFasta, RecordCounts, SequenceFile, StreamFile, StreamFormat,
};
