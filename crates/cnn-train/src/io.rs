//! Atomic file writes: every run file (checkpoint, CSV, JSONL, plot) is
//! written to a temporary file beside its target, flushed to disk and renamed
//! over the target, so a crash or Ctrl-C never leaves a half-written file.
//! Also [`log_line`], the progress lines that a closed stderr cannot stop.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, TrainError};

/// Distinguishes temporary files of concurrent writers in one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write `bytes` to `path` atomically: readers see either the old contents
/// or the new ones, never a mix.
///
/// Writes `.{name}.tmp-{pid}-{counter}` in the same directory, fsyncs it,
/// renames it over `path` and fsyncs the directory (where the platform
/// allows). On failure the temporary file is removed and the error names
/// `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().ok_or_else(|| {
        TrainError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}-{n}", std::process::id()));
    let tmp = dir.join(tmp_name);

    let result = write_and_rename(&tmp, path, bytes);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|source| TrainError::io(path, source))?;
    sync_dir(&dir);
    Ok(())
}

fn write_and_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, path)
}

/// Make the rename durable. Best effort: some platforms and file systems
/// cannot open or fsync a directory, and the data itself is already synced.
fn sync_dir(dir: &Path) {
    if cfg!(unix)
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// Print one line of progress on stderr, ignoring a closed or failed
/// stderr (`cnn train 2>&1 | head` must not stop training; `eprintln!`
/// would panic).
pub fn log_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"first").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second, longer");
        write_atomic(&path, b"").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        assert_eq!(entries(dir.path()), vec!["a.txt"]);
    }

    #[test]
    fn missing_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("b.txt");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(
            matches!(&err, TrainError::Io { path: p, .. } if p == &path),
            "{err:?}"
        );
        assert!(err.to_string().contains("no-such-dir"), "{err}");
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn rename_failure_removes_the_temp_file() {
        // The target is a non-empty directory: the rename fails after the
        // temporary file was written.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inner"), b"x").unwrap();
        let err = write_atomic(&target, b"data").unwrap_err();
        assert!(err.to_string().contains("taken"), "{err}");
        assert_eq!(entries(dir.path()), vec!["taken"]);
    }

    #[test]
    fn relative_path_in_current_directory() {
        let err = write_atomic(Path::new(""), b"x").unwrap_err();
        assert!(matches!(err, TrainError::Io { .. }));
    }
}
