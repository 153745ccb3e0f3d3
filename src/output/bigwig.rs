//! bigWig output through bigtools: intervals stream over a bounded channel to a writer thread
//! that encodes them into a temporary file beside the target, renamed into place at the end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use bigtools::beddata::BedParserStreamingIterator;
use bigtools::{BigWigWrite, Value};

use crate::error::{Error, Result};
use crate::output::atomic::StagedFile;
use crate::output::track::IntervalWriter;

/// Intervals handed to the writer thread at a time.
const BATCH: usize = 4096;

/// A chromosome name shared by all of its intervals (bigtools wants one per value).
#[derive(Clone, Debug)]
struct Chrom(Arc<str>);

impl From<Chrom> for String {
    fn from(c: Chrom) -> String {
        c.0.to_string()
    }
}

impl PartialEq<&str> for Chrom {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

/// Writes a bigWig file; chromosome sizes must be known up front.
pub struct BigWigWriter {
    path: PathBuf,
    sizes: HashMap<String, u32>,
    tmp: Option<StagedFile>,
    chrom: Option<Chrom>,
    batch: Vec<(Chrom, Value)>,
    sender: Option<SyncSender<Vec<(Chrom, Value)>>>,
    thread: Option<JoinHandle<std::result::Result<(), String>>>,
}

impl BigWigWriter {
    /// Starts writing `path` for chromosomes of the given sizes (name, length).
    pub fn create(path: &Path, sizes: &[(String, u64)]) -> Result<Self> {
        let mut map = HashMap::new();
        for (name, len) in sizes {
            let len = u32::try_from(*len).map_err(|_| {
                Error::format(
                    path,
                    format!("{name} is longer than bigWig allows (2^32 - 1)"),
                )
            })?;
            map.insert(name.clone(), len);
        }
        let (tmp, file) = StagedFile::create(path)?;
        let (sender, receiver) = sync_channel::<Vec<(Chrom, Value)>>(4);
        let thread_sizes = map.clone();
        let thread = std::thread::spawn(move || {
            // bigtools panics on some I/O errors (a full disk): catch them here, silently, and
            // report them as this writer's error.
            crate::guard::catch(move || {
                let values = receiver.into_iter().flatten();
                let source = BedParserStreamingIterator::wrap_infallible_iter(values, true);
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .build()
                    .map_err(|e| e.to_string())?;
                BigWigWrite::new(file, thread_sizes)
                    .write(source, runtime)
                    .map_err(|e| e.to_string())
            })
            .unwrap_or_else(|panic| Err(format!("the bigWig encoder failed: {panic}")))
        });
        Ok(BigWigWriter {
            path: path.to_path_buf(),
            sizes: map,
            tmp: Some(tmp),
            chrom: None,
            batch: Vec::with_capacity(BATCH),
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    fn send_batch(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let sent = self.sender.as_ref().is_some_and(|s| s.send(batch).is_ok());
        if sent {
            Ok(())
        } else {
            // The writer stopped: its error says why.
            Err(self
                .join()
                .err()
                .unwrap_or_else(|| Error::format(&self.path, "the bigWig writer stopped early")))
        }
    }

    fn join(&mut self) -> Result<()> {
        self.sender = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Ok(()))) | None => Ok(()),
            Some(Ok(Err(message))) => Err(Error::format(
                &self.path,
                format!("cannot write bigWig: {message}"),
            )),
            Some(Err(_)) => Err(Error::format(&self.path, "the bigWig writer panicked")),
        }
    }
}

impl IntervalWriter for BigWigWriter {
    fn interval(&mut self, chrom: &str, start: u64, end: u64, value: f32) -> Result<()> {
        let Some(&size) = self.sizes.get(chrom) else {
            return Err(Error::format(
                &self.path,
                format!("{chrom} is not among the chromosome sizes"),
            ));
        };
        if self.chrom.as_ref().is_none_or(|c| &*c.0 != chrom) {
            self.chrom = Some(Chrom(Arc::from(chrom)));
        }
        let chrom = self.chrom.clone().expect("set above");
        // Both fit: end <= size <= u32::MAX.
        let (start, end) = (start as u32, end.min(size as u64) as u32);
        self.batch.push((chrom, Value { start, end, value }));
        if self.batch.len() == BATCH {
            self.send_batch()?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.send_batch()?;
        self.join()?;
        let tmp = self.tmp.take().expect("finish runs once");
        tmp.commit()
    }
}
