//! Atomic file writes: every run file (checkpoint, CSV, JSONL, plot) is
//! written to a temporary file beside its target, flushed to disk and renamed
//! over the target, so a crash or Ctrl-C never leaves a half-written file.
//! Also [`log_line`], the progress lines that a closed stderr cannot stop.
//!
//! Every write, fsync and rename of cnn's output goes through this module,
//! so that tests can make any one of them fail, as SQLite tests its I/O:
//! `CNN_FAULT_INJECT=OP:N` (read once per process) makes the `N`th (from 1)
//! operation of kind `OP` fail, where `OP` is `write`, `fsync`, `rename` or
//! `any` (all three counted together); `OP:N:full` fails it as a full disk
//! does (`StorageFull`, and a write that fails so has written half its
//! bytes). Every injected failure says so in its message. Directory fsyncs
//! that the platform may refuse stay best effort: an injected failure there
//! is counted and ignored, as a real one is.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
    write_synced_io(tmp, bytes)?;
    rename_io(tmp, path)
}

/// Write `bytes` to a new file `path` (it must not exist) and fsync it, with
/// no rename: for files inside a directory that is itself renamed into
/// place once complete (a checkpoint). On failure the partial file is
/// removed and the error names `path`.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let result = write_synced_io(path, bytes);
    if result.is_err() {
        let _ = fs::remove_file(path);
    }
    result.map_err(|source| TrainError::io(path, source))
}

fn write_synced_io(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    if let Err(e) = inject(Op::Write) {
        if e.kind() == std::io::ErrorKind::StorageFull {
            file.write_all(&bytes[..bytes.len() / 2])?;
        }
        return Err(e);
    }
    file.write_all(bytes)?;
    inject(Op::Fsync)?;
    file.sync_all()
}

fn rename_io(from: &Path, to: &Path) -> std::io::Result<()> {
    inject(Op::Rename)?;
    fs::rename(from, to)
}

/// Rename the directory `from` to `to` (which must not exist, or be an
/// empty directory) and make the rename durable by syncing the parent of
/// `to`. The error names `to`.
pub fn rename_dir(from: &Path, to: &Path) -> Result<()> {
    rename_io(from, to).map_err(|source| TrainError::io(to, source))?;
    if let Some(parent) = to.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// Make the rename durable. Best effort: some platforms and file systems
/// cannot open or fsync a directory, and the data itself is already synced.
pub fn sync_dir(dir: &Path) {
    if inject(Op::Fsync).is_err() {
        return;
    }
    if cfg!(unix)
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// The kinds of operation [`inject`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    Fsync,
    Rename,
}

/// `CNN_FAULT_INJECT`, parsed once: which operation fails, and how.
#[derive(Debug, Clone, Copy)]
struct Fault {
    /// `None`: every kind counts.
    op: Option<Op>,
    nth: u64,
    full_disk: bool,
}

fn fault() -> Option<Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    *FAULT.get_or_init(|| parse_fault(&std::env::var("CNN_FAULT_INJECT").ok()?))
}

/// `OP:N` or `OP:N:full`; anything else injects nothing.
fn parse_fault(spec: &str) -> Option<Fault> {
    let mut parts = spec.trim().split(':');
    let op = match parts.next()? {
        "any" => None,
        "write" => Some(Op::Write),
        "fsync" => Some(Op::Fsync),
        "rename" => Some(Op::Rename),
        _ => return None,
    };
    let nth = parts.next()?.parse().ok().filter(|&n| n > 0)?;
    let full_disk = match parts.next() {
        None => false,
        Some("full") => true,
        Some(_) => return None,
    };
    parts
        .next()
        .is_none()
        .then_some(Fault { op, nth, full_disk })
}

/// Count an operation of kind `op`; fail it when it is the one
/// `CNN_FAULT_INJECT` names.
fn inject(op: Op) -> std::io::Result<()> {
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let Some(f) = fault() else {
        return Ok(());
    };
    if f.op.is_some_and(|o| o != op) {
        return Ok(());
    }
    if SEEN.fetch_add(1, Ordering::SeqCst) + 1 != f.nth {
        return Ok(());
    }
    let what = match op {
        Op::Write => "write",
        Op::Fsync => "fsync",
        Op::Rename => "rename",
    };
    Err(if f.full_disk {
        std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("no space left on device (injected by CNN_FAULT_INJECT at this {what})"),
        )
    } else {
        std::io::Error::other(format!("injected {what} failure (CNN_FAULT_INJECT)"))
    })
}

/// Print one line of progress on stderr, ignoring a closed or failed
/// stderr (`cnn train 2>&1 | head` must not stop training; `eprintln!`
/// would panic).
pub fn log_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// Runs of this process now inside [`Trainer::fit`](crate::trainer::Trainer::fit)
/// (several under `cnn compare --jobs N`).
static TRAINING: AtomicUsize = AtomicUsize::new(0);

/// Marks a run as training while it lives (see [`training_in_progress`]).
#[derive(Debug)]
pub struct TrainingGuard(());

impl Drop for TrainingGuard {
    fn drop(&mut self) {
        TRAINING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A run of this process starts training; it stops when the guard drops.
pub fn training_started() -> TrainingGuard {
    TRAINING.fetch_add(1, Ordering::SeqCst);
    TrainingGuard(())
}

/// Whether any run of this process is training now. An interrupt handler
/// uses it to say what an interrupt will do: stop runs at a checkpoint, or,
/// once training is over, let the final evaluation and files finish.
pub fn training_in_progress() -> bool {
    TRAINING.load(Ordering::SeqCst) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_is_in_progress_while_a_guard_lives() {
        let before = TRAINING.load(Ordering::SeqCst);
        let a = training_started();
        let b = training_started();
        assert!(training_in_progress());
        assert_eq!(TRAINING.load(Ordering::SeqCst), before + 2);
        drop(a);
        assert!(training_in_progress());
        drop(b);
        assert_eq!(TRAINING.load(Ordering::SeqCst), before);
    }

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
    fn fault_specs_parse() {
        let f = parse_fault("rename:3").unwrap();
        assert_eq!((f.op, f.nth, f.full_disk), (Some(Op::Rename), 3, false));
        let f = parse_fault("any:12:full").unwrap();
        assert_eq!((f.op, f.nth, f.full_disk), (None, 12, true));
        for bad in [
            "",
            "write",
            "write:0",
            "write:x",
            "chmod:1",
            "write:1:oops",
            "write:1:full:2",
        ] {
            assert!(parse_fault(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn relative_path_in_current_directory() {
        let err = write_atomic(Path::new(""), b"x").unwrap_err();
        assert!(matches!(err, TrainError::Io { .. }));
    }
}
