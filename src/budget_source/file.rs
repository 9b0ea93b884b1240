//! A budget written into a file by another program (`source = "file"`). The first non-empty,
//! non-`#` line holds one budget such as `12w`, `0.004gflops`, `30ips` or `5ms`.
//!
//! Whatever is at the path, reading it costs little and cannot block: only a regular file is
//! read, opened with `O_NONBLOCK` (a FIFO or device is refused, never waited on), at most
//! [`MAX_FILE_BYTES`] of it, and only when it changed (path, inode, size, mtime or ctime);
//! until then the last answer, good or bad, stands. Error messages quote at most
//! [`MAX_QUOTE`] characters of the file.

use super::{BudgetSource, Reading, SourceError};
use crate::policy::Budget;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Largest budget file read, bytes (a budget is one short line; comments fit too).
pub const MAX_FILE_BYTES: u64 = 4096;

/// Most characters of the file quoted in an error message.
pub const MAX_QUOTE: usize = 64;

/// `O_NONBLOCK` (std has no constant for it): opening a FIFO for reading returns at once
/// instead of waiting for a writer, and a file with a lease returns `EWOULDBLOCK`.
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
const O_NONBLOCK: i32 = 0o200;
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const O_NONBLOCK: i32 = 0x4000;

/// What identifies one version of the file: a rewrite in place changes size, mtime or ctime;
/// a new file renamed over it changes the inode.
type Version = (u64, u64, u64, i64, i64, i64, i64);

fn version(m: &Metadata) -> Version {
    (
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

/// The file source.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    stale_after: Option<Duration>,
    /// The version last read and what it said.
    last: Option<(Version, Result<Budget, SourceError>)>,
}

impl FileSource {
    /// Watches `path`; a file not rewritten for `stale_after` is stale.
    pub fn new(path: PathBuf, stale_after: Option<Duration>) -> Self {
        Self {
            path,
            stale_after,
            last: None,
        }
    }

    fn invalid(&self, why: impl std::fmt::Display) -> SourceError {
        SourceError::Invalid(format!("budget file {}: {why}", self.path.display()))
    }

    fn missing(&self, why: impl std::fmt::Display) -> SourceError {
        SourceError::Missing(format!("budget file {}: {why}", self.path.display()))
    }

    /// Opens and reads the file once, refusing anything but a small regular file.
    fn load(&self) -> Result<Budget, SourceError> {
        let mut f = File::options()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open(&self.path)
            .map_err(|e| self.missing(e))?;
        // The path may have been replaced since it was checked: check what was opened.
        let meta = f.metadata().map_err(|e| self.missing(e))?;
        if !meta.file_type().is_file() {
            return Err(self.invalid(not_regular(&meta)));
        }
        let too_big = |n: u64| {
            self.invalid(format!(
                "{n} bytes: a budget file holds one short line (at most {MAX_FILE_BYTES} bytes)"
            ))
        };
        if meta.len() > MAX_FILE_BYTES {
            return Err(too_big(meta.len()));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        (&mut f)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.missing(e))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(too_big(bytes.len() as u64)); // grew while read
        }
        parse_budget_text(&String::from_utf8_lossy(&bytes)).map_err(|e| self.invalid(e))
    }
}

/// What kind of non-regular file `m` is, for the error message.
fn not_regular(m: &Metadata) -> String {
    let t = m.file_type();
    let kind = if t.is_fifo() {
        "a FIFO"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a file"
    };
    format!("{kind}, not a regular file: refused")
}

/// `s` cut to [`MAX_QUOTE`] characters, marked when cut.
fn quote(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTE) {
        Some((i, _)) => format!("{:?}... ({} bytes)", &s[..i], s.len()),
        None => format!("{s:?}"),
    }
}

/// Parses the budget file's text. Errors quote at most [`MAX_QUOTE`] characters of it.
pub fn parse_budget_text(text: &str) -> Result<Budget, String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or("the file holds no budget")?;
    line.parse::<Budget>().map_err(|e| {
        let e = e.to_string();
        if line.len() > MAX_QUOTE {
            format!(
                "not a budget: {} (e.g. 12w, 0.004gflops, 30ips, 5ms)",
                quote(line)
            )
        } else {
            e
        }
    })
}

impl BudgetSource for FileSource {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn read(&mut self) -> Result<Reading, SourceError> {
        // stat never blocks, whatever the path names.
        let meta = std::fs::metadata(&self.path).map_err(|e| {
            self.last = None;
            self.missing(e)
        })?;
        if !meta.file_type().is_file() {
            self.last = None;
            return Err(self.invalid(not_regular(&meta)));
        }
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if let Some(limit) = self.stale_after {
            let age = SystemTime::now()
                .duration_since(mtime)
                .unwrap_or(Duration::ZERO);
            if age > limit {
                return Err(SourceError::Stale(format!(
                    "budget file {} not rewritten for {:.0} s",
                    self.path.display(),
                    age.as_secs_f64()
                )));
            }
        }
        let v = version(&meta);
        let result = match &self.last {
            Some((seen, r)) if *seen == v => r.clone(),
            _ => {
                let r = self.load();
                // An answer stands until the file changes; a failed open or read is retried.
                self.last = match r {
                    Err(SourceError::Missing(_)) => None,
                    _ => Some((v, r.clone())),
                };
                r
            }
        };
        Ok(Reading {
            budget: Some(result?),
            power_watts: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_quote_a_short_prefix_of_a_long_line() {
        let e = parse_budget_text(&"x".repeat(10_000)).unwrap_err();
        assert!(e.len() < 200 && e.contains("10000 bytes"), "{e}");
        assert!(parse_budget_text("lots").unwrap_err().contains("lots"));
    }

    #[test]
    fn large_files_and_directories_are_refused_unread() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("budget");
        std::fs::write(&p, format!("12w\n{}", "#".repeat(5000))).unwrap();
        let mut s = FileSource::new(p.clone(), None);
        let e = s.read().unwrap_err().to_string();
        assert!(
            e.contains("5004 bytes") && e.contains("at most 4096"),
            "{e}"
        );
        let mut d = FileSource::new(t.path().to_path_buf(), None);
        let e = d.read().unwrap_err().to_string();
        assert!(e.contains("a directory, not a regular file"), "{e}");
    }
}
