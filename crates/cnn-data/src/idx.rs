//! The IDX format of MNIST and Fashion-MNIST, parsed from bytes.
//!
//! An IDX file is a big-endian header — magic `0x0000 TT DD` (`TT` = 0x08
//! for unsigned bytes, `DD` = number of dimensions), then one `u32` per
//! dimension — followed by the data, row-major. Images are `idx3`
//! (`[count, rows, cols]`, magic `0x00000803`), labels `idx1` (`[count]`,
//! magic `0x00000801`).
//!
//! The parsers take bytes so fuzzers and tests can call them directly. They
//! check the header against the real data length *before* allocating
//! anything: a header claiming 10^12 images is an error, not an allocation.

use crate::error::ParseError;

/// Magic number of an unsigned-byte, 3-dimensional IDX file (images).
pub const IDX3_UBYTE_MAGIC: u32 = 0x0000_0803;
/// Magic number of an unsigned-byte, 1-dimensional IDX file (labels).
pub const IDX1_UBYTE_MAGIC: u32 = 0x0000_0801;

/// Images parsed from an `idx3-ubyte` buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Height of each image.
    pub rows: usize,
    /// Width of each image.
    pub cols: usize,
    /// `count * rows * cols` bytes, image after image, row-major.
    pub pixels: Vec<u8>,
}

/// Parse an `idx3-ubyte` image buffer (already decompressed).
pub fn parse_idx_images(bytes: &[u8]) -> Result<IdxImages, ParseError> {
    let (dims, data) = parse_idx_u8(bytes, IDX3_UBYTE_MAGIC)?;
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels: data.to_vec(),
    })
}

/// Parse an `idx1-ubyte` label buffer (already decompressed). Labels are
/// not range-checked here; see [`check_labels`].
pub fn parse_idx_labels(bytes: &[u8]) -> Result<Vec<u8>, ParseError> {
    let (_, data) = parse_idx_u8(bytes, IDX1_UBYTE_MAGIC)?;
    Ok(data.to_vec())
}

/// Check that every label is below `classes`; the error names the first
/// offending index.
pub fn check_labels(labels: &[u8], classes: usize) -> Result<(), ParseError> {
    match labels.iter().position(|&l| usize::from(l) >= classes) {
        Some(index) => Err(ParseError::LabelOutOfRange {
            index,
            label: u32::from(labels[index]),
            classes,
        }),
        None => Ok(()),
    }
}

/// A checked unsigned-byte IDX header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxHeader {
    /// Bytes the header takes: 4, plus 4 per dimension.
    pub len: usize,
    /// The declared dimensions, outermost (the count) first.
    pub dims: Vec<u64>,
}

impl IdxHeader {
    /// Bytes of data the dimensions imply; `None` when that overflows.
    pub fn data_bytes(&self) -> Option<u64> {
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }
}

/// Length of the header of an unsigned-byte IDX file with this magic.
pub fn idx_header_len(magic: u32) -> usize {
    4 + 4 * (magic & 0xff) as usize
}

/// Check the header of an unsigned-byte IDX buffer against `magic`
/// ([`IDX3_UBYTE_MAGIC`] or [`IDX1_UBYTE_MAGIC`]). Only the header is
/// read, so `bytes` may be just the first [`idx_header_len`] bytes.
pub fn parse_idx_header(bytes: &[u8], magic: u32) -> Result<IdxHeader, ParseError> {
    let len = idx_header_len(magic);
    if bytes.len() < len {
        return Err(ParseError::TruncatedHeader {
            len: bytes.len(),
            needed: len,
        });
    }
    let found = read_u32_be(bytes, 0);
    if found != magic {
        return Err(ParseError::BadMagic {
            found,
            expected: magic,
            what: match magic {
                IDX3_UBYTE_MAGIC => "idx3-ubyte images",
                IDX1_UBYTE_MAGIC => "idx1-ubyte labels",
                _ => "unsigned-byte idx",
            },
        });
    }
    let dims = (0..(len - 4) / 4)
        .map(|i| u64::from(read_u32_be(bytes, 4 + 4 * i)))
        .collect();
    Ok(IdxHeader { len, dims })
}

/// Validate the header of an unsigned-byte IDX buffer with the given magic
/// and return its dimensions and data slice. Nothing is allocated until the
/// header's byte count matches the data actually present.
fn parse_idx_u8(bytes: &[u8], magic: u32) -> Result<(Vec<usize>, &[u8]), ParseError> {
    let header = parse_idx_header(bytes, magic)?;
    let data = &bytes[header.len..];
    let expected = header.data_bytes();
    if expected != Some(data.len() as u64) {
        return Err(ParseError::DataLength {
            dims: header.dims,
            expected_bytes: expected,
            actual_bytes: data.len(),
            more: false,
        });
    }
    // The product equals a slice length, so every dimension fits in usize.
    let dims = header.dims.iter().map(|&d| d as usize).collect();
    Ok((dims, data))
}

fn read_u32_be(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Encode images as an `idx3-ubyte` buffer (for tests and tools).
pub fn encode_idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + pixels.len());
    for v in [IDX3_UBYTE_MAGIC, count, rows, cols] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// Encode labels as an `idx1-ubyte` buffer (for tests and tools).
pub fn encode_idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&IDX1_UBYTE_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let px: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let img = parse_idx_images(&encode_idx_images(2, 3, 4, &px)).unwrap();
        assert_eq!((img.count, img.rows, img.cols), (2, 3, 4));
        assert_eq!(img.pixels, px);
        assert_eq!(
            parse_idx_labels(&encode_idx_labels(&[1, 9])).unwrap(),
            vec![1, 9]
        );
    }

    #[test]
    fn header_errors() {
        assert!(matches!(
            parse_idx_images(&[0, 0, 8]),
            Err(ParseError::TruncatedHeader { len: 3, needed: 16 })
        ));
        let labels = encode_idx_labels(&[1, 2]);
        assert!(matches!(
            parse_idx_images(&labels),
            Err(ParseError::TruncatedHeader { .. })
        ));
        let mut img = encode_idx_images(1, 1, 1, &[0]);
        img[3] = 0x01;
        assert!(matches!(
            parse_idx_images(&img),
            Err(ParseError::BadMagic { found: 0x801, .. })
        ));
        // u32::MAX^3 overflows u64: still an error, not a panic.
        let huge = encode_idx_images(u32::MAX, u32::MAX, u32::MAX, &[0; 8]);
        assert!(matches!(
            parse_idx_images(&huge),
            Err(ParseError::DataLength {
                expected_bytes: None,
                actual_bytes: 8,
                ..
            })
        ));
    }

    #[test]
    fn label_range() {
        assert!(check_labels(&[0, 9], 10).is_ok());
        assert_eq!(
            check_labels(&[0, 10, 11], 10),
            Err(ParseError::LabelOutOfRange {
                index: 1,
                label: 10,
                classes: 10
            })
        );
    }
}
