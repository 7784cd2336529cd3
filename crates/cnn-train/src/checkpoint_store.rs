//! A run's `checkpoint/` directory, where each checkpoint is a commit:
//!
//! 1. every file of the checkpoint is written and fsynced in a temporary
//!    directory (`.step-N.tmp-<pid>-<k>`), then its [`MANIFEST`] (each
//!    file's name, size and SHA-256) is, and the directory is fsynced;
//! 2. the directory is renamed to `step-N` (`step-N.1`, ... when taken)
//!    and `checkpoint/` is fsynced;
//! 3. `LATEST` is replaced atomically with the new name: the commit point;
//! 4. the new checkpoint is read back and checked against its manifest, and
//!    only then are older ones deleted, keeping the newest
//!    [`KEEP`] complete ones and `step-0` (the initial weights).
//!
//! A crash at any moment leaves `LATEST` naming a complete checkpoint (the
//! new one or the one before) and, at worst, a temporary directory that
//! resuming removes. Resuming ([`CheckpointStore::candidates`],
//! [`CheckpointStore::verify`]) tries the checkpoint `LATEST` names, then
//! every other `step-*` directory from the newest, and uses the first that
//! verifies; `LATEST` may only name a directory of this `checkpoint/`.
//!
//! Checkpoints written before manifests existed have none: they count as
//! complete when every required file is there, and the reader's own checks
//! (each file parses, the step counts agree) stand in for the hashes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, TrainError};
use crate::io::{rename_dir, sync_dir, write_atomic, write_synced};

/// The file in `checkpoint/` naming the newest complete checkpoint.
pub const LATEST: &str = "LATEST";
/// A checkpoint's list of files with their sizes and SHA-256.
pub const MANIFEST: &str = "MANIFEST.json";
/// Complete checkpoints kept: the newest and the one before, the fallback
/// when the newest turns out damaged.
pub const KEEP: usize = 2;

/// Distinguishes temporary directories of one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// What a checkpoint's [`MANIFEST`] holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Manifest {
    /// The manifest's format, 1.
    format: u32,
    step: u64,
    files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FileEntry {
    name: String,
    size: u64,
    sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `step-N` or `step-N.K`: `(N, K)` (K = 0 for `step-N`).
pub fn parse_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("step-")?;
    let (step, k) = match rest.split_once('.') {
        Some((s, k)) => (s, k.parse().ok().filter(|&k| k > 0)?),
        None => (rest, 0),
    };
    if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((step.parse().ok()?, k))
}

/// How a checkpoint passed [`CheckpointStore::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Every file matches the manifest's size and SHA-256.
    Manifest,
    /// Written before manifests: every required file is there.
    Legacy,
}

/// The checkpoints to try when resuming, in order, and what was wrong
/// with `LATEST` when it could not be followed.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    pub dirs: Vec<PathBuf>,
    pub latest_problem: Option<String>,
}

/// The `checkpoint/` directory of a run.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    /// The files every checkpoint holds.
    required: &'static [&'static str],
}

impl CheckpointStore {
    pub fn new(dir: PathBuf, required: &'static [&'static str]) -> Self {
        CheckpointStore { dir, required }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write the checkpoint of `step` holding `files` as a commit (see the
    /// module docs); gives its directory. On failure the temporary
    /// directory is removed and `LATEST` still names the previous one.
    pub fn commit(&self, step: u64, files: &[(&str, &[u8])]) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir).map_err(|e| TrainError::io(&self.dir, e))?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".step-{step}.tmp-{}-{n}", std::process::id()));
        std::fs::create_dir(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        let result = self.fill(&tmp, step, files);
        let result = result.and_then(|()| {
            let name = self.free_name(step);
            let dir = self.dir.join(&name);
            rename_dir(&tmp, &dir)?;
            Ok((name, dir))
        });
        let (name, dir) = match result {
            Ok(ok) => ok,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        write_atomic(&self.dir.join(LATEST), name.as_bytes())?;
        // Delete older checkpoints only once the new one reads back intact.
        match self.verify(&dir) {
            Ok(Verified::Manifest) => self.prune()?,
            Ok(Verified::Legacy) => {}
            Err(why) => {
                return Err(TrainError::bad_file(
                    &dir,
                    format!("the checkpoint just written does not read back: {why}"),
                ));
            }
        }
        Ok(dir)
    }

    fn fill(&self, tmp: &Path, step: u64, files: &[(&str, &[u8])]) -> Result<()> {
        let mut entries = Vec::with_capacity(files.len());
        for (name, bytes) in files {
            write_synced(&tmp.join(name), bytes)?;
            entries.push(FileEntry {
                name: (*name).to_string(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            });
        }
        let manifest = Manifest {
            format: 1,
            step,
            files: entries,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| TrainError::bad_file(tmp.join(MANIFEST), e.to_string()))?;
        write_synced(&tmp.join(MANIFEST), &json)?;
        sync_dir(tmp);
        Ok(())
    }

    /// `step-N`, or the first of `step-N.1`, `step-N.2`, ... not taken.
    fn free_name(&self, step: u64) -> String {
        (0u64..)
            .map(|k| match k {
                0 => format!("step-{step}"),
                k => format!("step-{step}.{k}"),
            })
            .find(|n| self.dir.join(n).symlink_metadata().is_err())
            .expect("an unbounded range has a free name")
    }

    /// The checkpoint directories (`step-*`, real directories, not
    /// symbolic links), newest first.
    pub fn list(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found: Vec<((u64, u64), PathBuf)> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| {
                let key = parse_name(e.file_name().to_str()?)?;
                Some((key, e.path()))
            })
            .collect();
        found.sort_by_key(|(key, _)| std::cmp::Reverse(*key));
        found.into_iter().map(|(_, p)| p).collect()
    }

    /// The name `LATEST` holds, if the file exists.
    pub fn latest_name(&self) -> Result<Option<String>> {
        let path = self.dir.join(LATEST);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TrainError::io(&path, e)),
        }
    }

    /// The checkpoints to try, in order: the one `LATEST` names (when it
    /// names a `step-*` directory of this `checkpoint/`), then the others,
    /// newest first.
    pub fn candidates(&self) -> Result<Candidates> {
        let mut out = Candidates {
            dirs: self.list(),
            latest_problem: None,
        };
        match self.latest_name()? {
            None => out.latest_problem = Some(format!("there is no {LATEST}")),
            Some(name) if parse_name(&name).is_none() => {
                out.latest_problem = Some(format!(
                    "{LATEST} names `{name}`, which is not a checkpoint of this run"
                ));
            }
            Some(name) => {
                let named = self.dir.join(&name);
                if let Some(i) = out.dirs.iter().position(|d| d == &named) {
                    let d = out.dirs.remove(i);
                    out.dirs.insert(0, d);
                } else {
                    out.latest_problem =
                        Some(format!("{LATEST} names `{name}`, which does not exist"));
                }
            }
        }
        Ok(out)
    }

    /// Whether a checkpoint looks complete without reading its data: a
    /// manifest, or (written before manifests) every required file.
    pub fn looks_complete(&self, dir: &Path) -> bool {
        dir.join(MANIFEST).is_file() || self.required.iter().all(|f| dir.join(f).is_file())
    }

    /// Check the checkpoint in `dir`: every file its manifest lists has
    /// the recorded size and SHA-256 and every required file is listed; a
    /// checkpoint without a manifest (written before them) needs every
    /// required file. The error says what is wrong, in words.
    pub fn verify(&self, dir: &Path) -> std::result::Result<Verified, String> {
        let manifest_path = dir.join(MANIFEST);
        let bytes = match std::fs::read(&manifest_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let missing: Vec<&str> = self
                    .required
                    .iter()
                    .copied()
                    .filter(|f| !dir.join(f).is_file())
                    .collect();
                return if missing.is_empty() {
                    Ok(Verified::Legacy)
                } else {
                    Err(format!(
                        "it is incomplete: no {MANIFEST} and no {}",
                        missing.join(", ")
                    ))
                };
            }
            Err(e) => return Err(format!("cannot read {MANIFEST}: {e}")),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| format!("its {MANIFEST} is damaged: {e}"))?;
        if let Some(f) = self
            .required
            .iter()
            .find(|f| !manifest.files.iter().any(|e| e.name == **f))
        {
            return Err(format!("its {MANIFEST} does not list {f}"));
        }
        for entry in &manifest.files {
            if Path::new(&entry.name).file_name() != Some(std::ffi::OsStr::new(&entry.name)) {
                return Err(format!("its {MANIFEST} lists `{}`", entry.name));
            }
            let path = dir.join(&entry.name);
            let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", entry.name))?;
            if data.len() as u64 != entry.size {
                return Err(format!(
                    "{} has {} bytes, its manifest says {} (truncated?)",
                    entry.name,
                    data.len(),
                    entry.size
                ));
            }
            if sha256_hex(&data) != entry.sha256 {
                return Err(format!(
                    "{} does not match its SHA-256 in the manifest (damaged)",
                    entry.name
                ));
            }
        }
        Ok(Verified::Manifest)
    }

    /// Delete every checkpoint directory but the newest [`KEEP`] complete
    /// ones and `step-0`, the initial weights (the last resort of a run
    /// that diverges before an older checkpoint is finite); incomplete
    /// ones, left by a crash, go too.
    fn prune(&self) -> Result<()> {
        let mut kept = 0;
        for dir in self.list() {
            let complete = self.looks_complete(&dir);
            if kept < KEEP && complete {
                kept += 1;
                continue;
            }
            if complete && dir.file_name() == Some(std::ffi::OsStr::new("step-0")) {
                continue;
            }
            std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        }
        Ok(())
    }

    /// Once the checkpoint `loaded` is in memory: remove what killed
    /// processes left (temporary directories and files), the checkpoints
    /// in `unusable` and every checkpoint newer than `loaded` (never
    /// committed, or damaged), and point `LATEST` at `loaded`. Returns how
    /// many entries were removed.
    pub fn settle_after_load(&self, loaded: &Path, unusable: &[PathBuf]) -> Result<usize> {
        let name = loaded.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let key = parse_name(name);
        let mut removed = 0;
        let entries = std::fs::read_dir(&self.dir).map_err(|e| TrainError::io(&self.dir, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let temporary = file_name.starts_with('.') && file_name.contains(".tmp-");
            let newer = is_dir && parse_name(&file_name).is_some_and(|k| Some(k) > key);
            let gone = if temporary && is_dir {
                std::fs::remove_dir_all(&path)
            } else if temporary {
                std::fs::remove_file(&path)
            } else if newer || (is_dir && unusable.contains(&path)) {
                std::fs::remove_dir_all(&path)
            } else {
                continue;
            };
            gone.map_err(|e| TrainError::io(&path, e))?;
            removed += 1;
        }
        removed += remove_temp_files(loaded)?;
        if self.latest_name()?.as_deref() != Some(name) {
            write_atomic(&self.dir.join(LATEST), name.as_bytes())?;
        }
        Ok(removed)
    }
}

/// Remove the `.<name>.tmp-*` files [`write_atomic`] leaves when killed
/// mid-write, directly in `dir`; returns how many.
pub fn remove_temp_files(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))? {
        let entry = entry.map_err(|e| TrainError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".tmp-") && entry.path().is_file() {
            std::fs::remove_file(entry.path()).map_err(|e| TrainError::io(entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: &[&str] = &["a.bin", "b.txt"];

    fn store(root: &Path) -> CheckpointStore {
        CheckpointStore::new(root.join("checkpoint"), REQUIRED)
    }

    fn commit(s: &CheckpointStore, step: u64, tag: &str) -> Result<PathBuf> {
        let a = format!("weights {tag}");
        let b = format!("state {tag}");
        s.commit(step, &[("a.bin", a.as_bytes()), ("b.txt", b.as_bytes())])
    }

    fn names(s: &CheckpointStore) -> Vec<String> {
        s.list()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn names_parse() {
        assert_eq!(parse_name("step-30"), Some((30, 0)));
        assert_eq!(parse_name("step-30.2"), Some((30, 2)));
        for bad in [
            "step-",
            "step-x",
            "step-3.0",
            "../../other",
            "step-+3",
            "LATEST",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn commits_keep_the_newest_two_and_leave_no_temporaries() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        for step in [0, 2, 4, 4, 6] {
            commit(&s, step, &step.to_string()).unwrap();
        }
        assert_eq!(names(&s), ["step-6", "step-4.1", "step-0"]);
        assert_eq!(s.latest_name().unwrap().as_deref(), Some("step-6"));
        let all: Vec<_> = std::fs::read_dir(s.dir()).unwrap().flatten().collect();
        assert_eq!(all.len(), 4, "three checkpoints and LATEST");
        assert_eq!(s.verify(&s.dir().join("step-6")), Ok(Verified::Manifest));
    }

    #[test]
    fn a_damaged_or_truncated_file_fails_verification() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let dir = commit(&s, 3, "x").unwrap();
        let a = dir.join("a.bin");
        let mut bytes = std::fs::read(&a).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&a, &bytes).unwrap();
        let why = s.verify(&dir).unwrap_err();
        assert!(why.contains("a.bin") && why.contains("SHA-256"), "{why}");
        std::fs::write(dir.join("b.txt"), b"sta").unwrap();
        std::fs::write(&a, b"weights x").unwrap();
        let why = s.verify(&dir).unwrap_err();
        assert!(why.contains("b.txt") && why.contains("truncated"), "{why}");
    }

    #[test]
    fn latest_outside_the_run_or_missing_falls_back_to_the_newest() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        commit(&s, 1, "1").unwrap();
        commit(&s, 2, "2").unwrap();
        std::fs::write(s.dir().join(LATEST), "../../other-run").unwrap();
        let c = s.candidates().unwrap();
        assert!(
            c.latest_problem
                .unwrap()
                .contains("not a checkpoint of this run")
        );
        assert_eq!(c.dirs[0], s.dir().join("step-2"));
        std::fs::write(s.dir().join(LATEST), "step-1").unwrap();
        let c = s.candidates().unwrap();
        assert!(c.latest_problem.is_none());
        assert_eq!(c.dirs, [s.dir().join("step-1"), s.dir().join("step-2")]);
    }

    #[test]
    fn settling_removes_newer_unusable_and_temporary_entries_only() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        commit(&s, 1, "1").unwrap();
        let two = commit(&s, 2, "2").unwrap();
        let bogus = s.dir().join("step-3");
        std::fs::create_dir(&bogus).unwrap();
        std::fs::create_dir(s.dir().join(".step-4.tmp-1-0")).unwrap();
        std::fs::write(two.join(".a.bin.tmp-1-0"), b"x").unwrap();
        let removed = s
            .settle_after_load(&two, std::slice::from_ref(&bogus))
            .unwrap();
        assert_eq!(removed, 3);
        assert_eq!(names(&s), ["step-2", "step-1"]);
        assert_eq!(s.latest_name().unwrap().as_deref(), Some("step-2"));
    }
}
