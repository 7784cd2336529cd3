//! Reading dataset files: gzip sniffing and "first of these names" lookup.
//!
//! The one place that calls `flate2`. A file whose first two bytes are the
//! gzip magic (`1f 8b`) is decompressed whatever its name; anything else is
//! returned as is. Memory use follows the bytes actually on disk (or actually
//! decompressed), never a count read from a header.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// Most bytes one gzip file may decompress to (16 GiB): far above any real
/// dataset file, and a bound on what a decompression bomb can make the
/// process allocate. IDX files are cut off sooner, at their declared size.
pub const MAX_DECOMPRESSED_BYTES: u64 = 16 << 30;

/// The whole content of `path`, gunzipped when it is gzip data.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if is_gzip(&raw) {
        gunzip(&raw, MAX_DECOMPRESSED_BYTES).map_err(|error| DataError::Gzip {
            path: path.to_path_buf(),
            error,
        })
    } else {
        Ok(raw)
    }
}

/// Whether `bytes` start with the gzip magic `1f 8b`.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// `bytes` gunzipped when they are gzip data (detected by content, as
/// [`read_file`] does), else borrowed unchanged. At most `limit` bytes are
/// decompressed: more is an [`std::io::ErrorKind::InvalidData`] error, so
/// a small bomb cannot make a huge allocation.
pub fn decode_maybe_gzip(bytes: &[u8], limit: u64) -> std::io::Result<Cow<'_, [u8]>> {
    if is_gzip(bytes) {
        gunzip(bytes, limit).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(bytes))
    }
}

/// Decompress all gzip members of `bytes`, at most `limit` bytes of output.
fn gunzip(bytes: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    let out = gunzip_prefix(bytes, limit.saturating_add(1))?;
    if out.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("decompresses to more than {limit} bytes"),
        ));
    }
    Ok(out)
}

/// The first `limit` bytes that the gzip data `bytes` decompress to (all of
/// them when fewer). Decompression stops there, so a caller that knows how
/// much it needs pays nothing for what follows.
pub fn gunzip_prefix(bytes: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(limit_usize));
    flate2::read::MultiGzDecoder::new(bytes)
        .take(limit)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Most bytes [`gzip_damage`] inflates (and discards) beyond what a caller
/// already read, when a gzip file's content has been found wrong: enough
/// to reach the checksum of any real dataset file, and a bound on the time
/// a bomb can take.
pub const MAX_CHECKED_BYTES: u64 = 1 << 30;

/// The error that inflating the gzip data `bytes` to their end meets — a
/// checksum that does not match, a corrupt deflate stream, a truncated
/// member — or `None` when they inflate cleanly, or run past `limit`
/// bytes of output first. The output is discarded as it comes (memory use
/// is a fixed buffer): this tells a damaged file from one whose content is
/// intact but wrong, whose checksum a reader that stops early never meets.
pub fn gzip_damage(bytes: &[u8], limit: u64) -> Option<std::io::Error> {
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes).take(limit);
    std::io::copy(&mut decoder, &mut std::io::sink()).err()
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_prefix_stops_at_the_limit() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let gz = gzip(&data);
        // Declared 784 data bytes + 16 header + 1: exactly that much comes out.
        assert_eq!(gunzip_prefix(&gz, 801).unwrap(), &data[..801]);
        assert_eq!(gunzip_prefix(&gz, 1 << 30).unwrap(), data);
        assert!(gunzip_prefix(&gz[..gz.len() / 2], 1 << 30).is_err());
    }
}
