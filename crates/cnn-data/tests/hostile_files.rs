//! Damaged and hostile dataset files, as a user meets them: a bit flipped
//! in a gzip IDX file, an IDX training set with no images, an image too
//! large to decode. Each error names its file and says what is wrong with
//! it, in one line.

mod common;

use std::path::Path;

use cnn_data::idx::{encode_idx_images, encode_idx_labels};
use cnn_data::{DataError, FolderOptions, IdxFlavor, load_folder, load_mnist_dir};
use common::{TempDir, gzip, write, write_mnist};

/// `n` 28x28 images, three pixels in four zero (compressible, as real
/// MNIST is), and their labels.
fn mnist_like(n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut state = 0x2545_f491_u32;
    let pixels = (0..n * 784)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let v = (state >> 24) as u8;
            if v < 192 { 0 } else { v }
        })
        .collect();
    let labels = (0..n).map(|i| (i * 3 % 10) as u8).collect();
    (pixels, labels)
}

/// Every single-bit flip past the gzip magic of a gzip IDX file either
/// leaves the data intact (the header's time stamp, flags that change
/// nothing) or is reported as gzip corruption of that file — never as an
/// IDX header that disagrees with its data, which is what a flip that
/// makes the stream inflate to more bytes used to give (its checksum was
/// never reached).
#[test]
fn gzip_bit_flips_are_named_as_gzip_corruption() {
    let dir = TempDir::new("gz-flip");
    // Small, as each flip writes the file (milliseconds on some disks).
    let (pixels, labels) = mnist_like(3);
    let images = encode_idx_images(3, 28, 28, &pixels);
    write(
        dir.path(),
        "train-labels-idx1-ubyte.gz",
        &encode_idx_labels(&labels),
    );
    write(dir.path(), "t10k-images-idx3-ubyte.gz", &images);
    write(
        dir.path(),
        "t10k-labels-idx1-ubyte.gz",
        &encode_idx_labels(&labels),
    );
    let path = dir.path().join("train-images-idx3-ubyte.gz");
    let clean = gzip(&images);
    let mut other = Vec::new();
    // The two magic bytes decide whether the file is gzip at all.
    for pos in 2..clean.len() {
        let mut bytes = clean.clone();
        bytes[pos] ^= 1 << (pos * 5 % 8);
        std::fs::write(&path, &bytes).unwrap();
        match load_mnist_dir(dir.path(), IdxFlavor::Mnist) {
            Ok(data) => {
                let cnn_data::Pixels::U8(loaded) = data.train.pixels() else {
                    panic!("IDX pixels are bytes");
                };
                assert_eq!(loaded, &pixels, "flip at byte {pos} loaded other pixels");
            }
            Err(err) => {
                let msg = err.to_string();
                if !matches!(&err, DataError::Gzip { .. })
                    || err.path() != Some(path.as_path())
                    || !msg.contains("corrupt gzip data")
                {
                    other.push(format!("byte {pos}: {msg}"));
                }
            }
        }
    }
    assert!(
        other.is_empty(),
        "{} of {} flips not reported as gzip corruption of {}:\n{}",
        other.len(),
        clean.len() - 2,
        path.display(),
        other.join("\n")
    );
}

/// A gzip IDX file that is intact but holds more data than its header
/// declares is still reported as such (not as corruption).
#[test]
fn intact_gzip_with_trailing_data_is_not_called_corrupt() {
    let dir = TempDir::new("gz-trailing");
    write_mnist(dir.path(), false, true, 6, 2);
    let mut images = encode_idx_images(6, 4, 3, &[7; 72]);
    images.extend_from_slice(&[1; 100]);
    let path = write(dir.path(), "train-images-idx3-ubyte.gz", &images);
    let err = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(&err, DataError::Parse { .. }), "{msg}");
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("more than 72 bytes follow the header"),
        "{msg}"
    );
}

/// An IDX training set whose header says 0 images: an error naming the
/// file, not a message about the configuration after loading.
#[test]
fn idx_training_set_without_images_names_the_file() {
    for gz in [false, true] {
        let dir = TempDir::new("idx-zero");
        write_mnist(dir.path(), false, gz, 6, 2);
        let ext = if gz { ".gz" } else { "" };
        let path = write(
            dir.path(),
            &format!("train-images-idx3-ubyte{ext}"),
            &encode_idx_images(0, 4, 3, &[]),
        );
        write(
            dir.path(),
            &format!("train-labels-idx1-ubyte{ext}"),
            &encode_idx_labels(&[]),
        );
        let err = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.path(), Some(path.as_path()), "{msg}");
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("no images"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
    // A test set without images stays allowed (a validation fraction
    // above 0 validates on training data).
    let dir = TempDir::new("idx-zero-test");
    write_mnist(dir.path(), false, false, 6, 0);
    let data = load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (6, 0));
}

/// A PNG file of `width x height` pixels (8-bit `color_type`: 0 gray, 2
/// RGB), all zero. `rows` of them are in its data: all `height` make a
/// complete, valid file; fewer, one whose data ends early.
fn png_file(width: u32, height: u32, color_type: u8, rows: u32) -> Vec<u8> {
    use std::io::Write;
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, color_type, 0, 0, 0]);
    let channels = if color_type == 2 { 3 } else { 1 };
    // Each row: filter type 0, then its bytes.
    let row = vec![0u8; 1 + width as usize * channels];
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..rows {
        z.write_all(&row).unwrap();
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &z.finish().unwrap());
    chunk(&mut png, b"IEND", &[]);
    png
}

fn assert_too_large(err: &DataError, path: &Path, size: &str) {
    let msg = err.to_string();
    assert!(!matches!(err, DataError::NotAnImage { .. }), "{msg}");
    assert!(!msg.contains("not an image"), "{msg}");
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(msg.contains("too large"), "{msg}");
    assert!(msg.contains(size), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

/// A complete 20000x20000 PNG (more pixels a side than the decoder
/// accepts) and a 16000x16000 RGB one (a side it accepts, but more memory
/// than one image may take; only its first row is in the file, as the size
/// is refused from the header) are images too large to load — said with
/// their size — not "not an image": in a folder, from a path (`cnn
/// predict`) and from bytes.
#[test]
fn huge_png_is_too_large_not_an_image() {
    for (w, h, color, rows, size) in [
        (20_000, 20_000, 0, 20_000, "20000x20000"),
        (16_000, 16_000, 2, 1, "16000x16000"),
    ] {
        let dir = TempDir::new("huge-png");
        let d = dir.path();
        let png = png_file(w, h, color, rows);
        let small = image::GrayImage::from_pixel(2, 2, image::Luma([9]));
        std::fs::create_dir_all(d.join("a")).unwrap();
        small.save(d.join("a/1.png")).unwrap();
        let path = write(d, "b/huge.png", &png);
        let err = load_folder(d, &FolderOptions::default()).unwrap_err();
        assert_too_large(&err, &path, size);

        let shape = cnn_core::Shape::from([1, 28, 28]);
        let norm = cnn_data::Normalization::mnist();
        let err = cnn_data::load_image(&path, &shape, &norm).unwrap_err();
        assert_too_large(&err, &path, size);
        let err = cnn_data::decode_image_bytes(&png, &path, &shape, &norm).unwrap_err();
        assert_too_large(&err, &path, size);
    }
}

/// A PNG whose pixel data ends early is still "not an image"; a complete
/// one of the same size decodes.
#[test]
fn truncated_png_is_still_not_an_image() {
    let shape = cnn_core::Shape::from([1, 4, 4]);
    let norm = cnn_data::Normalization::mnist();
    let whole = png_file(4, 4, 0, 4);
    cnn_data::decode_image_bytes(&whole, Path::new("t.png"), &shape, &norm).unwrap();
    let png = png_file(4, 4, 0, 1);
    let err = cnn_data::decode_image_bytes(&png, Path::new("t.png"), &shape, &norm).unwrap_err();
    assert!(matches!(&err, DataError::NotAnImage { .. }), "{err}");
}
