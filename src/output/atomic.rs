//! Output destinations: stdout, or a file written under a temporary name in the same folder
//! and renamed into place only when everything succeeded (gzip-compressed if it ends in `.gz`).

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

enum Inner {
    Stdout(BufWriter<io::Stdout>),
    Plain(BufWriter<tempfile::NamedTempFile>),
    Gzip(flate2::write::GzEncoder<BufWriter<tempfile::NamedTempFile>>),
}

/// Where results go. Dropping it without [`Output::commit`] leaves no file behind.
pub struct Output {
    inner: Inner,
    path: Option<PathBuf>,
}

/// A temporary file in `path`'s folder (so renaming it onto `path` is atomic), named
/// `.NAME.XXXX.tmp`, readable by others like a normally created file (0644 on Unix).
pub fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
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
    builder.tempfile_in(dir).map_err(|e| Error::io(path, e))
}

impl Output {
    /// stdout for `None` or `-`, else a temporary file beside `path`.
    pub fn create(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path.filter(|p| *p != Path::new("-")) else {
            return Ok(Output {
                inner: Inner::Stdout(BufWriter::with_capacity(1 << 16, io::stdout())),
                path: None,
            });
        };
        let tmp = temp_beside(path)?;
        let buffered = BufWriter::with_capacity(1 << 16, tmp);
        let inner = if is_gzip_name(path) {
            Inner::Gzip(flate2::write::GzEncoder::new(
                buffered,
                flate2::Compression::default(),
            ))
        } else {
            Inner::Plain(buffered)
        };
        Ok(Output {
            inner,
            path: Some(path.to_path_buf()),
        })
    }

    /// The final path, if writing to a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Flushes and, for a file, renames the temporary file to its final name.
    pub fn commit(self) -> Result<()> {
        let path = self.path.unwrap_or_else(|| PathBuf::from("<stdout>"));
        let tmp = match self.inner {
            Inner::Stdout(mut w) => {
                return match w.flush() {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    r => r.map_err(|e| Error::io(path, e)),
                };
            }
            Inner::Plain(w) => w
                .into_inner()
                .map_err(|e| Error::io(&path, e.into_error()))?,
            Inner::Gzip(w) => {
                let w = w.finish().map_err(|e| Error::io(&path, e))?;
                w.into_inner()
                    .map_err(|e| Error::io(&path, e.into_error()))?
            }
        };
        tmp.as_file().sync_all().map_err(|e| Error::io(&path, e))?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(())
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
    name.rsplit_once('.').map(|(_, ext)| ext.to_string())
}

/// Whether a file name asks for gzip compression.
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
}
