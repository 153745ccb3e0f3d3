//! ssmgen: selective state-space (Mamba) DNA language models over whole chromosomes.
//!
//! The library is split by job: [`model`] loads checkpoints, [`tokenizer`] maps bases to ids,
//! [`backend`] runs the network on a device, [`runner`] drives the stripe loop that carries
//! state across stripes, [`input`] reads sequences and regions, [`output`] writes results.

pub mod backend;
pub mod embed;
pub mod error;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod graph;
pub mod guard;
pub mod input;
pub mod likelihood;
pub mod masked;
pub mod model;
pub mod output;
pub mod provenance;
pub mod runner;
pub mod spool;
pub mod tokenizer;
pub mod variants;

pub use error::{Error, Result};
