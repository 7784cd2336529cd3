//! MNIST and Fashion-MNIST directories: four IDX files, raw or gzip.
//!
//! Each file is looked up under both naming styles, with and without `.gz`
//! (gzip is detected from the content, not the name):
//! `train-images-idx3-ubyte[.gz]`, `train-images.idx3-ubyte[.gz]`, and the
//! same for `train-labels` (`idx1`), `t10k-images`, `t10k-labels`. A gzip
//! file is decompressed no further than its header declares; when what it
//! holds disagrees with its header, the rest of the stream is inflated and
//! discarded (at most [`MAX_CHECKED_BYTES`] more) to find out whether the
//! file is damaged, which is then what the error says. A training set
//! needs at least one image; a test set may be empty.

use std::path::{Path, PathBuf};

use cnn_core::Shape;

use crate::dataset::{Dataset, ImageSet, Pixels};
use crate::error::{DataError, ParseError, Result};
use crate::files::{
    MAX_CHECKED_BYTES, MAX_DECOMPRESSED_BYTES, find_first, gunzip_prefix, gzip_damage, is_gzip,
    require_dir,
};
use crate::idx::{
    IDX1_UBYTE_MAGIC, IDX3_UBYTE_MAGIC, check_labels, idx_header_len, parse_idx_header,
    parse_idx_images, parse_idx_labels,
};
use crate::normalize::Normalization;

/// Environment variable naming the MNIST directory when none is given.
pub const MNIST_DIR_ENV: &str = "CNN_MNIST_DIR";

/// The Fashion-MNIST class names, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Which of the two IDX datasets (same format, different classes and
/// statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxFlavor {
    /// Handwritten digits, classes "0".."9".
    Mnist,
    /// Zalando's Fashion-MNIST.
    FashionMnist,
}

/// The accepted file names for `stem` (`"train-images"`) with IDX suffix
/// `kind` (`"idx3"`), in lookup order.
pub fn idx_candidates(stem: &str, kind: &str) -> Vec<String> {
    let dash = format!("{stem}-{kind}-ubyte");
    let dot = format!("{stem}.{kind}-ubyte");
    vec![
        dash.clone(),
        format!("{dash}.gz"),
        dot.clone(),
        format!("{dot}.gz"),
    ]
}

/// Load an MNIST-style directory.
pub fn load_mnist_dir(dir: &Path, flavor: IdxFlavor) -> Result<Dataset> {
    require_dir(dir)?;
    let train = load_pair(dir, "train")?;
    let test = load_pair(dir, "t10k")?;
    let (name, classes, norm) = match flavor {
        IdxFlavor::Mnist => (
            "mnist",
            (0..10).map(|d| d.to_string()).collect(),
            Normalization::mnist(),
        ),
        IdxFlavor::FashionMnist => (
            "fashion-mnist",
            FASHION_CLASSES.iter().map(|s| s.to_string()).collect(),
            Normalization::fashion_mnist(),
        ),
    };
    if test.shape() != train.shape() {
        return Err(DataError::value(
            "t10k-images",
            format!(
                "test images are {} but train images are {} in {}",
                test.shape(),
                train.shape(),
                dir.display()
            ),
        ));
    }
    Dataset::new(name, classes, train, test, norm)
}

/// Load `{prefix}-images` and `{prefix}-labels` from `dir` and check they
/// agree.
fn load_pair(dir: &Path, prefix: &str) -> Result<ImageSet> {
    let images_path = find_first(
        dir,
        &format!("{prefix}-images file"),
        &idx_candidates(&format!("{prefix}-images"), "idx3"),
    )?;
    let labels_path = find_first(
        dir,
        &format!("{prefix}-labels file"),
        &idx_candidates(&format!("{prefix}-labels"), "idx1"),
    )?;
    let images = parse_idx_images(&read_idx(&images_path, IDX3_UBYTE_MAGIC)?)
        .map_err(|e| DataError::parse(&images_path, e))?;
    let labels = parse_idx_labels(&read_idx(&labels_path, IDX1_UBYTE_MAGIC)?)
        .map_err(|e| DataError::parse(&labels_path, e))?;
    check_labels(&labels, 10).map_err(|e| DataError::parse(&labels_path, e))?;
    if images.count != labels.len() {
        return Err(DataError::CountMismatch {
            images: images_path,
            n_images: images.count,
            labels: labels_path,
            n_labels: labels.len(),
        });
    }
    if images.count == 0 && prefix == "train" {
        return Err(DataError::Empty {
            path: images_path,
            message: "holds no images (its header's count is 0); training needs at least one"
                .into(),
        });
    }
    if images.rows == 0 || images.cols == 0 {
        return Err(DataError::value(
            "images",
            format!(
                "{}: images are {}x{}",
                images_path.display(),
                images.rows,
                images.cols
            ),
        ));
    }
    let shape = Shape::from([1, images.rows, images.cols]);
    let labels = labels.into_iter().map(u32::from).collect();
    ImageSet::new(shape, Pixels::U8(images.pixels), labels)
}

/// The content of the IDX file `path` with magic `magic`, gunzipped when
/// gzip. A gzip file is decompressed no further than its header declares,
/// plus one byte to tell that more follows: trailing data is never
/// decompressed into memory.
///
/// Reading stops before the end of the stream, where its checksum is, in
/// two cases: a header found wrong, and more data than the header
/// declares. A bit flipped in the compressed data gives either, so both
/// inflate the rest to a sink first and report a damaged stream as
/// [`DataError::Gzip`]; only an intact file is blamed on its content.
fn read_idx(path: &Path, magic: u32) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if !is_gzip(&raw) {
        return Ok(raw);
    }
    let corrupt = |error| DataError::Gzip {
        path: path.to_path_buf(),
        error,
    };
    let gunzip = |limit| gunzip_prefix(&raw, limit).map_err(corrupt);
    // `problem` with content read up to `read` bytes of output.
    let wrong = |problem, read: u64| match gzip_damage(&raw, read.saturating_add(MAX_CHECKED_BYTES))
    {
        Some(error) => corrupt(error),
        None => DataError::parse(path, problem),
    };
    let header_len = idx_header_len(magic) as u64;
    let head = gunzip(header_len)?;
    let header = parse_idx_header(&head, magic).map_err(|e| wrong(e, header_len))?;
    let expected = header.data_bytes();
    let Some(total) = expected
        .and_then(|e| e.checked_add(header.len as u64))
        .filter(|&t| t <= MAX_DECOMPRESSED_BYTES)
    else {
        return Err(wrong(
            ParseError::TooLarge {
                dims: header.dims,
                expected_bytes: expected,
                limit: MAX_DECOMPRESSED_BYTES,
            },
            header_len,
        ));
    };
    let content = gunzip(total + 1)?;
    if content.len() as u64 > total {
        return Err(wrong(
            ParseError::DataLength {
                dims: header.dims,
                expected_bytes: expected,
                actual_bytes: content.len() - header.len - 1,
                more: true,
            },
            total + 1,
        ));
    }
    Ok(content)
}

/// The MNIST directory: `dir` if given, else `$CNN_MNIST_DIR`.
pub fn resolve_mnist_dir(dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = dir {
        return Ok(d.to_path_buf());
    }
    match std::env::var_os(MNIST_DIR_ENV) {
        Some(d) if !d.is_empty() => Ok(PathBuf::from(d)),
        _ => Err(DataError::NoDirectory {
            kind: "mnist".into(),
            hint: format!(" and {MNIST_DIR_ENV} is not set"),
        }),
    }
}
