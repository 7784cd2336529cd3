//! Reading dataset files: gzip sniffing and "first of these names" lookup.
//!
//! The one place that calls `flate2`. A file whose first two bytes are the
//! gzip magic (`1f 8b`) is decompressed whatever its name; anything else is
//! returned as is. Memory use follows the bytes actually on disk (or actually
//! decompressed), never a count read from a header.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The whole content of `path`, gunzipped when it is gzip data.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len().saturating_mul(4));
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|error| DataError::Gzip {
                path: path.to_path_buf(),
                error,
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Check that `dir` is an existing directory.
pub fn require_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(DataError::MissingDir {
            path: dir.to_path_buf(),
        })
    }
}

/// The first of `names` (joined to `dir`) that is a file, or a
/// [`DataError::NotFound`] listing every path tried.
pub fn find_first(dir: &Path, what: &str, names: &[String]) -> Result<PathBuf> {
    let tried: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    match tried.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => Err(DataError::NotFound {
            what: what.to_string(),
            dir: dir.to_path_buf(),
            tried,
        }),
    }
}
