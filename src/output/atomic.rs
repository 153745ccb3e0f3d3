//! Output destinations: stdout, or a file written under a temporary name in the same folder
//! and renamed into place only when everything succeeded (BGZF-compressed if it ends in `.gz`,
//! which every gzip reader reads and `tabix`/`bcftools index` can index; with
//! [`Output::with_index`] the `.tbi`/`.csi` is written too and put in place with the file).
//!
//! What `-o PATH` names decides how it is written, as a shell's `>` would:
//! - a regular file (or nothing yet): a temporary `.NAME.XXXX.tmp` beside it, renamed onto it
//!   on success; a symlink is followed first, so the file it points at is replaced, not the link;
//! - anything else (a character device such as `/dev/null`, a FIFO, `/dev/stdout`): written
//!   directly, with no temporary file and no rename.
//!
//! Live temporary files are listed in a registry; on SIGINT, SIGTERM or SIGHUP they are removed
//! before the process ends, and every error path drops (and so removes) them.
//! [`check_not_inputs`] refuses an output that is the same file as an input before work starts.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once};

use super::index::{IndexKind, Preset};
use crate::error::{Error, Result};

/// Paths of the temporary files that exist right now; the signal handler removes them.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();

fn live() -> MutexGuard<'static, Vec<PathBuf>> {
    // A panic while holding the lock leaves the list as it was: still usable.
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Installs (once) the thread that removes live temporary files on SIGINT, SIGTERM and SIGHUP
/// and then ends the process as the signal would have.
fn install_cleanup_handler() {
    HANDLER.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("ssmgen-signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    // Holding the lock keeps a commit from renaming half of a pair meanwhile.
                    let guard = live();
                    for path in guard.iter() {
                        let _ = std::fs::remove_file(path);
                    }
                    let _ = signal_hook::low_level::emulate_default_handler(signal);
                    std::process::exit(128 + signal);
                }
            });
        drop(spawned);
    });
}

/// A temporary file's entry in the registry, removed from it when dropped.
struct Registration(PathBuf);

impl Registration {
    fn new(path: &Path) -> Self {
        install_cleanup_handler();
        live().push(path.to_path_buf());
        Registration(path.to_path_buf())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut guard = live();
        if let Some(i) = guard.iter().position(|p| *p == self.0) {
            guard.swap_remove(i);
        }
    }
}

/// Where `-o PATH` really writes.
#[derive(Clone, Debug)]
enum Dest {
    /// A regular file (or none yet) at this path, symlinks resolved: staged and renamed.
    Regular(PathBuf),
    /// A device, FIFO or other non-regular file: written in place.
    Special(PathBuf),
}

/// Follows symlinks from `path` (as `open` would) and says what is at the end.
fn resolve(path: &Path) -> Result<Dest> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p).map_err(|e| Error::io(path, e))?;
                p = match p.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            Ok(m) if m.is_dir() => {
                return Err(Error::format(path, "is a directory, not an output file"));
            }
            Ok(m) if m.is_file() => return Ok(Dest::Regular(p)),
            Ok(_) => return Ok(Dest::Special(p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Dest::Regular(p)),
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Err(Error::format(path, "too many levels of symbolic links"))
}

/// A temporary file in `path`'s folder (so renaming it onto `path` is atomic), named
/// `.NAME.XXXX.tmp`, readable by others like a normally created file (0644 on Unix).
fn temp_in(dir_of: &Path, shown: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match dir_of.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = dir_of
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{file_name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder.tempfile_in(dir).map_err(|e| Error::io(shown, e))
}

/// An output file being written under a temporary name (registered for removal on signals),
/// put in place by [`StagedFile::commit`] or [`commit_together`]; dropped, it leaves nothing.
pub struct StagedFile {
    tmp: tempfile::TempPath,
    registration: Option<Registration>,
    dest: Dest,
    shown: PathBuf,
}

impl StagedFile {
    /// Starts an output for `path`; returns it and the temporary file opened for reading and
    /// writing (seekable). For a non-regular `path` (a device or FIFO) the temporary file lives
    /// in the system's temporary folder and is copied into `path` on commit.
    pub fn create(path: &Path) -> Result<(Self, File)> {
        let dest = resolve(path)?;
        let tmp = match &dest {
            Dest::Regular(p) => temp_in(p, path)?,
            Dest::Special(_) => temp_in(&std::env::temp_dir().join("ssmgen-output"), path)?,
        };
        let registration = Registration::new(tmp.path());
        let file = tmp.reopen().map_err(|e| Error::io(path, e))?;
        let staged = StagedFile {
            tmp: tmp.into_temp_path(),
            registration: Some(registration),
            dest,
            shown: path.to_path_buf(),
        };
        Ok((staged, file))
    }

    /// Whether the destination is a device or FIFO (copied into on commit, not renamed onto).
    pub fn is_special(&self) -> bool {
        matches!(self.dest, Dest::Special(_))
    }

    /// The path as the user gave it.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// Puts the file in place (see [`commit_together`]).
    pub fn commit(self) -> Result<()> {
        commit_together(vec![self])
    }

    fn put_in_place(self) -> Result<()> {
        let StagedFile {
            tmp, dest, shown, ..
        } = self;
        match dest {
            Dest::Regular(p) => tmp.persist(&p).map_err(|e| Error::io(&shown, e.error))?,
            Dest::Special(p) => {
                let mut from = File::open(&tmp).map_err(|e| Error::io(&shown, e))?;
                let mut to = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|e| Error::io(&shown, e))?;
                io::copy(&mut from, &mut to).map_err(|e| Error::io(&shown, e))?;
                to.flush().map_err(|e| Error::io(&shown, e))?;
            }
        }
        Ok(())
    }
}

/// Puts several staged files in place as one step: no signal can fall between their renames,
/// and two ssmgen runs committing into the same folder take turns (an exclusive lock on the
/// folder), so a matrix is never paired with another run's `.rows.bed`.
pub fn commit_together(files: Vec<StagedFile>) -> Result<()> {
    for f in &files {
        let file = File::options()
            .read(true)
            .write(true)
            .open(&f.tmp)
            .map_err(|e| Error::io(&f.shown, e))?;
        file.sync_all().map_err(|e| Error::io(&f.shown, e))?;
    }
    let lock = files.iter().find_map(|f| match &f.dest {
        Dest::Regular(p) => {
            let dir = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let dir = File::open(dir).ok()?;
            dir.lock().ok()?;
            Some(dir)
        }
        Dest::Special(_) => None,
    });
    // Registrations are dropped only after the lock on the registry is released.
    let mut files = files;
    let registrations: Vec<_> = files.iter_mut().map(|f| f.registration.take()).collect();
    let guard = live();
    let mut result = Ok(());
    for f in files {
        if result.is_ok() {
            result = f.put_in_place();
        }
    }
    drop(guard);
    drop(lock);
    drop(registrations);
    result
}

/// Refuses, before any work, an output that is the same file as an input (through a symlink,
/// a hard link or another spelling of the path): `-o in.fa` on `in.fa` would destroy it.
/// Paths that do not exist yet, `-` and non-regular files (devices, FIFOs) are fine.
pub fn check_not_inputs(outputs: &[&Path], inputs: &[&Path]) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        for out in outputs {
            if *out == Path::new("-") {
                continue;
            }
            let Ok(om) = std::fs::metadata(out) else {
                continue;
            };
            if !om.is_file() {
                continue;
            }
            for input in inputs {
                if *input == Path::new("-") {
                    continue;
                }
                if let Ok(im) = std::fs::metadata(input)
                    && im.dev() == om.dev()
                    && im.ino() == om.ino()
                {
                    return Err(Error::format(
                        out,
                        format!(
                            "the output is the same file as the input {}; refusing to overwrite it",
                            input.display()
                        ),
                    ));
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (outputs, inputs);
    }
    Ok(())
}

/// The index asked for by [`Output::with_index`]: how to read the lines, which file to write.
type IndexRequest = (Preset, IndexKind);

/// Where the bytes of an [`Output`] go.
enum Sink {
    /// A staged temporary file.
    Staged(File),
    /// A device or FIFO, written in place.
    Direct(File),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Staged(f) | Sink::Direct(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Staged(f) | Sink::Direct(f) => f.flush(),
        }
    }
}

enum Inner {
    Stdout(BufWriter<io::Stdout>),
    Plain(BufWriter<Sink>),
    Gzip(noodles_bgzf::io::Writer<BufWriter<Sink>>),
}

/// Where results go. Dropping it without [`Output::commit`] leaves no file behind.
pub struct Output {
    inner: Inner,
    path: Option<PathBuf>,
    staged: Option<StagedFile>,
    index: Option<IndexRequest>,
}

impl Output {
    /// stdout for `None` or `-`; a staged file for a regular `path` (or a new one); the file
    /// itself for a device or FIFO.
    pub fn create(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path.filter(|p| *p != Path::new("-")) else {
            return Ok(Output {
                inner: Inner::Stdout(BufWriter::with_capacity(1 << 16, io::stdout())),
                path: None,
                staged: None,
                index: None,
            });
        };
        let (sink, staged) = match resolve(path)? {
            Dest::Special(p) => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|e| Error::io(path, e))?;
                (Sink::Direct(file), None)
            }
            Dest::Regular(_) => {
                let (staged, file) = StagedFile::create(path)?;
                (Sink::Staged(file), Some(staged))
            }
        };
        let buffered = BufWriter::with_capacity(1 << 16, sink);
        let inner = if is_gzip_name(path) {
            Inner::Gzip(noodles_bgzf::io::Writer::new(buffered))
        } else {
            Inner::Plain(buffered)
        };
        Ok(Output {
            inner,
            path: Some(path.to_path_buf()),
            staged,
            index: None,
        })
    }

    /// Asks for a `.tbi`/`.csi` index of the output, built on commit and put in place together
    /// with it. Refused for stdout, devices and FIFOs, and for names not ending in `.gz`.
    pub fn with_index(mut self, preset: Preset, kind: IndexKind) -> Result<Self> {
        let Some(path) = self.path.clone() else {
            return Err(Error::format(
                "<stdout>",
                "--write-index needs an output file (-o FILE.gz), not stdout",
            ));
        };
        if self.staged.is_none() {
            return Err(Error::format(
                &path,
                "--write-index needs a regular output file, not a device or FIFO",
            ));
        }
        if !matches!(self.inner, Inner::Gzip(_)) {
            return Err(Error::format(
                &path,
                "--write-index needs a BGZF-compressed output: name it with .gz",
            ));
        }
        self.index = Some((preset, kind));
        Ok(self)
    }

    /// The final path, if writing to a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The path for messages: the file, or `<stdout>`.
    pub fn display_path(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from("<stdout>"))
    }

    /// Flushes everything; returns the staged file still to be put in place, if any.
    pub fn finish(self) -> Result<Option<StagedFile>> {
        self.finish_parts().map(|(staged, _)| staged)
    }

    fn finish_parts(self) -> Result<(Option<StagedFile>, Option<IndexRequest>)> {
        let index = self.index;
        let path = self.display_path();
        let sink = match self.inner {
            Inner::Stdout(mut w) => {
                return match w.flush() {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok((None, None)),
                    r => r.map(|()| (None, None)).map_err(|e| Error::io(path, e)),
                };
            }
            Inner::Plain(w) => w
                .into_inner()
                .map_err(|e| Error::io(&path, e.into_error()))?,
            Inner::Gzip(mut w) => {
                w.try_finish().map_err(|e| Error::io(&path, e))?;
                let w = w.into_inner();
                w.into_inner()
                    .map_err(|e| Error::io(&path, e.into_error()))?
            }
        };
        if let Sink::Direct(mut f) = sink {
            f.flush().map_err(|e| Error::io(&path, e))?;
        }
        Ok((self.staged, index))
    }

    /// Flushes and, for a file, renames the temporary file to its final name (with its index,
    /// if one was asked for, in the same step).
    pub fn commit(self) -> Result<()> {
        match self.finish_parts()? {
            (Some(staged), Some((preset, kind))) => {
                let bytes = super::index::build(&staged.tmp, staged.path(), preset, kind)?;
                let index_path = index_path(staged.path(), kind);
                let (index, mut file) = StagedFile::create(&index_path)?;
                file.write_all(&bytes)
                    .map_err(|e| Error::io(&index_path, e))?;
                drop(file);
                commit_together(vec![staged, index])
            }
            (Some(staged), None) => staged.commit(),
            (None, _) => Ok(()),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Stdout(w) => w.write(buf),
            Inner::Plain(w) => w.write(buf),
            Inner::Gzip(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Inner::Stdout(w) => w.write_all(buf),
            Inner::Plain(w) => w.write_all(buf),
            Inner::Gzip(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Stdout(w) => w.flush(),
            Inner::Plain(w) => w.flush(),
            Inner::Gzip(w) => w.flush(),
        }
    }
}

/// The lowercase extension that names a file's format, looking past a trailing `.gz`
/// (`scores.VCF.gz` → `vcf`); `None` when the name has none.
pub fn format_extension(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    // A leading dot makes a hidden name, not an extension (`.tmpX`, `.bashrc`).
    let name = name.strip_prefix('.').unwrap_or(name);
    name.rsplit_once('.').map(|(_, ext)| ext.to_string())
}

/// Where the index of `path` goes: `path.tbi` or `path.csi`, beside the name as given.
pub fn index_path(path: &Path, kind: IndexKind) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".");
    name.push(kind.extension());
    PathBuf::from(name)
}

/// Whether a file name asks for (BGZF) compression.
pub fn is_gzip_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_extension_looks_past_gz() {
        assert_eq!(
            format_extension(Path::new("a/b.VCF.gz")).as_deref(),
            Some("vcf")
        );
        assert_eq!(
            format_extension(Path::new("x.bedgraph")).as_deref(),
            Some("bedgraph")
        );
        assert_eq!(format_extension(Path::new("x.gz")), None);
        assert_eq!(format_extension(Path::new("csv")), None);
        assert_eq!(format_extension(Path::new("/tmp/.tmpAbc")), None);
        assert_eq!(
            format_extension(Path::new(".hidden.tsv")).as_deref(),
            Some("tsv")
        );
    }

    #[test]
    fn file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        let mut o = Output::create(Some(&p)).unwrap();
        o.write_all(b"hello").unwrap();
        assert!(!p.exists());
        drop(o);
        assert!(!p.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temp file left behind"
        );
        let mut o = Output::create(Some(&p)).unwrap();
        o.write_all(b"hello").unwrap();
        o.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
    }

    #[cfg(unix)]
    #[test]
    fn symlink_is_followed_and_devices_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.txt");
        std::fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink("real.txt", &link).unwrap();
        let mut o = Output::create(Some(&link)).unwrap();
        o.write_all(b"new").unwrap();
        o.commit().unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        let mut o = Output::create(Some(Path::new("/dev/null"))).unwrap();
        o.write_all(b"x").unwrap();
        o.commit().unwrap();
        assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
    }
}
