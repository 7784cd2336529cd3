//! The typed errors of cnn-data.
//!
//! Two levels: [`ParseError`] is what a byte-level parser
//! ([`parse_idx_images`](crate::idx::parse_idx_images),
//! [`parse_cifar_batch`](crate::cifar::parse_cifar_batch)) reports about a
//! buffer, with no idea where the bytes came from; [`DataError`] is what the
//! loaders return, and every variant that concerns a file names it.

use std::fmt;
use std::path::{Path, PathBuf};

/// Result alias for cnn-data.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// A problem found in a buffer by a byte-level parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer bytes than the fixed-size header needs.
    #[error("truncated header: {len} bytes, the header alone needs {needed}")]
    TruncatedHeader { len: usize, needed: usize },
    /// The first four bytes are not the expected magic number.
    #[error("wrong magic number 0x{found:08x}, expected 0x{expected:08x} ({what})")]
    BadMagic {
        found: u32,
        expected: u32,
        what: &'static str,
    },
    /// The header's dimensions disagree with the number of data bytes
    /// (a wrong count, a truncated file, or trailing garbage).
    #[error("{}", DataLengthMsg { dims, expected_bytes: *expected_bytes, actual_bytes: *actual_bytes, more: *more })]
    DataLength {
        /// The dimensions the header declares, outermost (the count) first.
        dims: Vec<u64>,
        /// Bytes of data the header implies; `None` when that overflows.
        expected_bytes: Option<u64>,
        /// Bytes of data actually present after the header (with `more`,
        /// only those read before reading stopped).
        actual_bytes: usize,
        /// More data follows `actual_bytes`, left unread: a gzip file is
        /// decompressed no further than its header declares.
        more: bool,
    },
    /// A gzip file whose header declares more data than a gzip file may
    /// decompress to; rejected before its data is decompressed into memory.
    #[error(
        "header declares dimensions {dims:?}{}, more than the {limit} bytes a gzip file may decompress to",
        declared_bytes(*expected_bytes)
    )]
    TooLarge {
        /// The dimensions the header declares, outermost (the count) first.
        dims: Vec<u64>,
        /// Bytes of data the header implies; `None` when that overflows.
        expected_bytes: Option<u64>,
        /// The decompression limit.
        limit: u64,
    },
    /// A record-based file whose length is not a whole number of records.
    #[error("{len} bytes is not a whole, non-zero number of {record}-byte records")]
    RecordLength { len: usize, record: usize },
    /// A label that is not a valid class index.
    #[error("label {label} at index {index} is out of range for {classes} classes")]
    LabelOutOfRange {
        index: usize,
        label: u32,
        classes: usize,
    },
}

struct DataLengthMsg<'a> {
    dims: &'a [u64],
    expected_bytes: Option<u64>,
    actual_bytes: usize,
    more: bool,
}

fn decoded_size(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!(" = {:.1} MiB decoded", b as f64 / f64::from(1 << 20)),
        None => String::new(),
    }
}

fn declared_bytes(expected: Option<u64>) -> String {
    match expected {
        Some(e) => format!(" = {e} bytes of data"),
        None => " whose byte count overflows".to_string(),
    }
}

impl fmt::Display for DataLengthMsg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "header declares dimensions {:?}", self.dims)?;
        let actual = self.actual_bytes;
        match self.expected_bytes {
            Some(e) if self.more => write!(
                f,
                " = {e} bytes of data, but more than {actual} bytes follow the header (trailing bytes or wrong count)"
            ),
            None if self.more => write!(
                f,
                " whose byte count overflows, and more than {actual} bytes follow the header"
            ),
            Some(e) => {
                let kind = if (self.actual_bytes as u64) < e {
                    "truncated or wrong count"
                } else {
                    "trailing bytes or wrong count"
                };
                write!(
                    f,
                    " = {e} bytes of data, but {} bytes follow the header ({kind})",
                    self.actual_bytes
                )
            }
            None => write!(
                f,
                " whose byte count overflows, but only {} bytes follow the header",
                self.actual_bytes
            ),
        }
    }
}

/// Everything that can go wrong while loading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or directory could not be read.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A gzip-compressed file could not be decompressed.
    #[error("{}: corrupt gzip data: {error}", path.display())]
    Gzip {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A file's contents are malformed.
    #[error("{}: {problem}", path.display())]
    Parse { path: PathBuf, problem: ParseError },
    /// An image file and its label file hold different numbers of items.
    #[error(
        "{} holds {n_images} images but {} holds {n_labels} labels",
        images.display(),
        labels.display()
    )]
    CountMismatch {
        images: PathBuf,
        n_images: usize,
        labels: PathBuf,
        n_labels: usize,
    },
    /// None of the accepted names for a file exists.
    #[error("no {what} found in {}; tried {}", dir.display(), list_paths(tried))]
    NotFound {
        what: String,
        dir: PathBuf,
        tried: Vec<PathBuf>,
    },
    /// A directory that should exist does not.
    #[error("directory {} does not exist or is not a directory", path.display())]
    MissingDir { path: PathBuf },
    /// No directory was given for a dataset that needs one.
    #[error("no data directory given for {kind}{hint}")]
    NoDirectory { kind: String, hint: String },
    /// A file in an image folder that is not a decodable PNG/JPEG image.
    #[error("{}: not an image ({reason})", path.display())]
    NotAnImage { path: PathBuf, reason: String },
    /// An image file larger than an image may be: more pixels a side than
    /// [`MAX_IMAGE_SIDE`](crate::folder::MAX_IMAGE_SIDE), or more bytes
    /// decoded than [`MAX_IMAGE_ALLOC`](crate::folder::MAX_IMAGE_ALLOC).
    /// Refused from its header, before its pixels are decoded.
    #[error(
        "{}: image is {width}x{height} (WxH){}, too large to load: at most {max_side} pixels a side and {} MiB decoded; shrink the file",
        path.display(),
        decoded_size(*decoded_bytes),
        max_bytes >> 20
    )]
    ImageTooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        /// Bytes the decoded image takes (`None` when that overflows).
        decoded_bytes: Option<u64>,
        max_side: u32,
        max_bytes: u64,
    },
    /// An image whose size differs from the first image of the folder.
    #[error(
        "{}: image is {}x{} (WxH) but {} is {}x{}; all images must have one size, or give a target size (`--image-size HxW`)",
        path.display(), found.0, found.1, first.display(), expected.0, expected.1
    )]
    SizeMismatch {
        path: PathBuf,
        first: PathBuf,
        expected: (u32, u32),
        found: (u32, u32),
    },
    /// A folder with nothing to load.
    #[error("{}: {message}", path.display())]
    Empty { path: PathBuf, message: String },
    /// An option or argument out of its domain.
    #[error("invalid value for `{name}`: {message}")]
    InvalidValue { name: String, message: String },
}

impl DataError {
    /// Shorthand for [`DataError::InvalidValue`].
    pub fn value(name: impl Into<String>, message: impl Into<String>) -> Self {
        DataError::InvalidValue {
            name: name.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`DataError::Io`].
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    /// Shorthand for [`DataError::Parse`].
    pub fn parse(path: &Path, problem: ParseError) -> Self {
        DataError::Parse {
            path: path.to_path_buf(),
            problem,
        }
    }

    /// The file this error is about, when it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            DataError::Io { path, .. }
            | DataError::Gzip { path, .. }
            | DataError::Parse { path, .. }
            | DataError::MissingDir { path }
            | DataError::NotAnImage { path, .. }
            | DataError::ImageTooLarge { path, .. }
            | DataError::SizeMismatch { path, .. }
            | DataError::Empty { path, .. } => Some(path),
            DataError::CountMismatch { labels, .. } => Some(labels),
            DataError::NotFound { dir, .. } => Some(dir),
            DataError::NoDirectory { .. } | DataError::InvalidValue { .. } => None,
        }
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
