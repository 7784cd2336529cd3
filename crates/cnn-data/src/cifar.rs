//! CIFAR-10 binary batches.
//!
//! Each `.bin` file is a sequence of 3073-byte records: one label byte
//! (0..=9) then 3072 pixel bytes, 1024 red, 1024 green, 1024 blue, each a
//! 32x32 row-major plane (already `[C, H, W]`). Training data is
//! `data_batch_1.bin`..`data_batch_5.bin`, test data `test_batch.bin`, in
//! the given directory or its `cifar-10-batches-bin` subfolder, whichever
//! holds all six (the directory itself when both do).

use std::path::{Path, PathBuf};

use cnn_core::Shape;

use crate::dataset::{Dataset, ImageSet, Pixels};
use crate::error::{DataError, ParseError, Result};
use crate::files::{read_file, require_dir};
use crate::normalize::Normalization;

/// Bytes of pixel data per image (3 x 32 x 32).
pub const CIFAR_IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes per record: label + image.
pub const CIFAR_RECORD_BYTES: usize = 1 + CIFAR_IMAGE_BYTES;
/// Subfolder the official archive unpacks to.
pub const CIFAR_SUBDIR: &str = "cifar-10-batches-bin";

/// The CIFAR-10 class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// One parsed batch: `labels.len()` images of `[3, 32, 32]` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CifarBatch {
    /// Pixel bytes, image after image, `[3, 32, 32]` each.
    pub pixels: Vec<u8>,
    /// One label (0..=9) per image.
    pub labels: Vec<u32>,
}

/// Parse a CIFAR-10 binary batch. The length must be a non-zero multiple
/// of 3073 and every label below 10.
pub fn parse_cifar_batch(bytes: &[u8]) -> Result<CifarBatch, ParseError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(CIFAR_RECORD_BYTES) {
        return Err(ParseError::RecordLength {
            len: bytes.len(),
            record: CIFAR_RECORD_BYTES,
        });
    }
    let n = bytes.len() / CIFAR_RECORD_BYTES;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * CIFAR_IMAGE_BYTES);
    for (index, record) in bytes.chunks_exact(CIFAR_RECORD_BYTES).enumerate() {
        let label = u32::from(record[0]);
        if label >= 10 {
            return Err(ParseError::LabelOutOfRange {
                index,
                label,
                classes: 10,
            });
        }
        labels.push(label);
        pixels.extend_from_slice(&record[1..]);
    }
    Ok(CifarBatch { pixels, labels })
}

/// The six batch files, training data first.
const BATCH_NAMES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];

/// Load CIFAR-10 from `dir` or `dir/cifar-10-batches-bin`, whichever holds
/// all six batch files (`dir` when both do).
pub fn load_cifar10_dir(dir: &Path) -> Result<Dataset> {
    require_dir(dir)?;
    let root = batch_dir(dir)?;
    let [train_files @ .., test_file] = BATCH_NAMES.map(|n| root.join(n));
    let train = load_batches(&train_files)?;
    let test = load_batches(&[test_file])?;
    let classes = CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
    Dataset::new("cifar10", classes, train, test, Normalization::cifar10())
}

/// The directory, `dir` or its subfolder, that holds every batch file.
/// Completeness decides, not any one file: a stray `test_batch.bin` next to
/// a complete subfolder must not hide it. When neither is complete the
/// error names the first file missing from the more complete one, and
/// lists only the paths looked at where it is absent.
fn batch_dir(dir: &Path) -> Result<PathBuf> {
    let roots = [dir.to_path_buf(), dir.join(CIFAR_SUBDIR)];
    let missing = roots
        .each_ref()
        .map(|root| BATCH_NAMES.map(|n| !root.join(n).is_file()));
    let missing_count = |m: &[bool; 6]| m.iter().filter(|&&x| x).count();
    let best = if missing_count(&missing[1]) < missing_count(&missing[0]) {
        1
    } else {
        0
    };
    let Some(first) = missing[best].iter().position(|&m| m) else {
        return Ok(roots[best].clone());
    };
    let name = BATCH_NAMES[first];
    let tried: Vec<PathBuf> = roots
        .iter()
        .zip(&missing)
        .filter(|(_, m)| m[first])
        .map(|(root, _)| root.join(name))
        .collect();
    Err(DataError::NotFound {
        what: name.to_string(),
        dir: if tried.len() == roots.len() {
            dir.to_path_buf()
        } else {
            roots[best].clone()
        },
        tried,
    })
}

fn load_batches(files: &[PathBuf]) -> Result<ImageSet> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for path in files {
        let bytes = read_file(path)?;
        let batch = parse_cifar_batch(&bytes).map_err(|e| DataError::parse(path, e))?;
        pixels.extend_from_slice(&batch.pixels);
        labels.extend_from_slice(&batch.labels);
    }
    ImageSet::new(Shape::from([3, 32, 32]), Pixels::U8(pixels), labels)
}
