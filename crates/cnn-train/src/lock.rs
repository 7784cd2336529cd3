//! One process at a time per output directory: a run directory (train,
//! `--resume`, `--overwrite`) and a comparison's or learning curve's
//! directory each hold an OS advisory lock (`flock` on Unix, through
//! [`std::fs::File::try_lock`]) on their [`LOCK_FILE`] for as long as the
//! process works in them. The operating system releases it when the
//! process ends, however it ends (SIGKILL included), so a stale lock never
//! blocks a resume.
//!
//! The holder writes who it is (pid, host, start time) into the lock file;
//! a second process is refused with one line naming it, before it touches
//! anything else. On a network file system the lock is as good as the
//! file system's `flock` (NFSv4 supports it; some older mounts do not, and
//! there the lock does not exclude processes on other hosts).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// The lock file in a locked directory; it stays after the lock is
/// released (removing it would let two processes lock two different files).
pub const LOCK_FILE: &str = ".cnn-lock";

/// A held lock on an output directory, released when dropped (or when the
/// process ends).
#[derive(Debug)]
pub struct DirLock {
    file: File,
    dir: PathBuf,
    /// The outermost directory this lock created (`dir` or one of its
    /// parents): if nothing but the lock file is in `dir` when the lock is
    /// dropped (the command failed before writing), the directories
    /// created for it are removed again.
    created: Option<PathBuf>,
}

impl DirLock {
    /// Lock `dir`, creating it (and its parents) when missing. Fails, with
    /// the holder's pid, host and start time in the message, when another
    /// process holds the lock; changes nothing then.
    pub fn acquire(dir: &Path) -> Result<Self> {
        if dir.symlink_metadata().is_ok() && !dir.exists() {
            return Err(TrainError::bad_file(
                dir,
                "is a symbolic link to something that does not exist",
            ));
        }
        if dir.exists() && !dir.is_dir() {
            return Err(TrainError::bad_file(dir, "exists and is not a directory"));
        }
        let created = dir
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .last()
            .map(Path::to_path_buf);
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(held_by(dir, &mut file)),
            Err(TryLockError::Error(e)) => return Err(TrainError::io(&path, e)),
        }
        let me = format!(
            "cnn pid {} on host {} since {}\n",
            std::process::id(),
            gethostname::gethostname().to_string_lossy(),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        );
        file.set_len(0)
            .and_then(|()| file.write_all(me.as_bytes()))
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(DirLock {
            file,
            dir: dir.to_path_buf(),
            created,
        })
    }

    /// Fail as [`acquire`](Self::acquire) does when another process holds
    /// `dir`'s lock, without creating, locking or writing anything (a
    /// check before work that may still be refused).
    pub fn check_free(dir: &Path) -> Result<()> {
        let path = dir.join(LOCK_FILE);
        let Ok(mut file) = File::open(&path) else {
            return Ok(());
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(())
            }
            Err(TryLockError::WouldBlock) => Err(held_by(dir, &mut file)),
            Err(TryLockError::Error(e)) => Err(TrainError::io(&path, e)),
        }
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The error of a lock held by another process, naming it as its lock
/// file says.
fn held_by(dir: &Path, file: &mut File) -> TrainError {
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    let holder = holder.trim();
    let holder = if holder.is_empty() {
        "another process (it has not written its name yet)"
    } else {
        holder
    };
    TrainError::bad_file(
        dir,
        format!("is in use by {holder}; wait for it to end or stop it (lock file {LOCK_FILE})"),
    )
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let Some(created) = &self.created else {
            return;
        };
        let only_lock = std::fs::read_dir(&self.dir).is_ok_and(|entries| {
            entries
                .flatten()
                .all(|e| e.file_name().to_str() == Some(LOCK_FILE))
        });
        if only_lock {
            let _ = std::fs::remove_file(self.dir.join(LOCK_FILE));
            for d in self.dir.ancestors() {
                if std::fs::remove_dir(d).is_err() || d == created.as_path() {
                    break;
                }
            }
        }
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_the_first_is_released_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let first = DirLock::acquire(&dir).unwrap();
        std::fs::write(dir.join("kept"), b"x").unwrap();
        let err = DirLock::acquire(&dir).unwrap_err().to_string();
        assert!(err.contains("is in use by cnn pid"), "{err}");
        let checked = DirLock::check_free(&dir).unwrap_err().to_string();
        assert_eq!(checked, err);
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        assert!(err.contains("since 20"), "{err}");
        drop(first);
        DirLock::check_free(&dir).unwrap();
        let again = DirLock::acquire(&dir).unwrap();
        assert!(again.dir().join("kept").is_file());
    }

    #[test]
    fn a_directory_created_for_nothing_is_removed_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("runs").join("new");
        drop(DirLock::acquire(&dir).unwrap());
        assert!(!tmp.path().join("runs").exists());
    }

    #[test]
    fn a_dangling_symlink_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("out");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("missing"), &link).unwrap();
            let err = DirLock::acquire(&link).unwrap_err().to_string();
            assert!(err.contains("symbolic link"), "{err}");
        }
    }
}
