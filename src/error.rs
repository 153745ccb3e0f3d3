//! The library's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the library, each variant carrying enough context
/// (file, record, position, tensor name) to make a one-line message for the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error (in the message, so the one line says it all).
        cause: std::io::Error,
    },
    /// A malformed input file (FASTA, FASTQ, BED, index).
    #[error("{}: {message}", path.display())]
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong, with record and position where known.
        message: String,
    },
    /// A character the tokenizer cannot map.
    #[error("{}: record '{record}', position {position}: unexpected character {character:?}", path.display())]
    BadBase {
        /// The input file.
        path: PathBuf,
        /// The record name.
        record: String,
        /// 1-based position in the record.
        position: u64,
        /// The character found.
        character: char,
    },
    /// A model directory that cannot be loaded (config, missing or misshapen tensors).
    #[error("model {}: {message}", path.display())]
    Model {
        /// The model directory or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A region that is malformed or does not fit the sequence.
    #[error("region '{region}': {message}")]
    Region {
        /// The region as the user wrote it.
        region: String,
        /// What is wrong.
        message: String,
    },
    /// A backend failure (device not present, kernel launch failed).
    #[error("backend: {0}")]
    Backend(String),
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }

    /// A format error on `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A model error on `path`.
    pub fn model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Model {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// `text` with control characters (newlines, tabs, escapes, DEL) written as escapes, so a
/// message built from file contents stays one line and cannot drive the terminal.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
