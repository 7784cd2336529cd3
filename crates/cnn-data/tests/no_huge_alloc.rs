//! A header claiming 10^12 images must give an error without allocating
//! anything near that size. A counting global allocator (this test binary
//! only) records the largest single allocation made while parsing, on the
//! measuring thread only (tests run in parallel threads of one process).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use cnn_data::idx::{encode_idx_images, encode_idx_labels};
use cnn_data::{
    IdxFlavor, ParseError, load_mnist_dir, parse_cifar_batch, parse_idx_images, parse_idx_labels,
};
use common::{TempDir, write, write_mnist};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread's allocations are being measured.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn record(size: usize) {
    if MEASURING.with(Cell::get) {
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}

/// The largest single allocation `f` makes on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.store(0, Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    let out = f();
    MEASURING.with(|m| m.set(false));
    (out, LARGEST.load(Ordering::Relaxed))
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn huge_header_counts_are_errors_without_allocation() {
    // 10^12 images of 28x28 and 10^12 labels, with a few bytes of data.
    let mut images = encode_idx_images(0, 28, 28, &[0; 784]);
    let mut labels = encode_idx_labels(&[1, 2, 3]);
    let huge: u64 = 1_000_000_000_000;
    // The count field is 32 bits; the largest the format can claim is
    // u32::MAX images (about 3.4 TB of pixels at 28x28).
    images[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    labels[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    // And a 3-D header whose product is 10^12 bytes.
    let big3 = encode_idx_images(1_000_000, 1000, 1000, &[0; 16]);
    assert_eq!(1_000_000u64 * 1000 * 1000, huge);

    let ((e1, e2, e3, e4), largest) = largest_allocation(|| {
        (
            parse_idx_images(&images).unwrap_err(),
            parse_idx_labels(&labels).unwrap_err(),
            parse_idx_images(&big3).unwrap_err(),
            parse_cifar_batch(&[0; 3072]).unwrap_err(),
        )
    });
    for e in [&e1, &e2, &e3] {
        assert!(matches!(e, ParseError::DataLength { .. }), "{e}");
    }
    assert!(matches!(e4, ParseError::RecordLength { .. }));
    assert!(e3.to_string().contains("1000000000000"), "{e3}");
    assert!(
        largest < 1 << 16,
        "an allocation of {largest} bytes was made while parsing"
    );
}

/// A PNG header claiming a 100000 x 100000 image, and a gzip bomb: typed
/// errors, with no allocation near the claimed or decompressed size.
#[test]
fn huge_image_headers_and_gzip_bombs_are_bounded() {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&[0; 4]); // CRC not checked before the size
        out
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IEND", &[]));

    let mut bomb_src = Vec::new();
    {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(&mut bomb_src, flate2::Compression::best());
        enc.write_all(&vec![0u8; 8 << 20]).unwrap();
        enc.finish().unwrap();
    }

    let shape = cnn_core::Shape::from([3, 32, 32]);
    let norm = cnn_data::Normalization::cifar10();
    let ((err, bomb), largest) = largest_allocation(|| {
        (
            cnn_data::decode_image_bytes(&png, std::path::Path::new("big.png"), &shape, &norm)
                .unwrap_err(),
            cnn_data::decode_maybe_gzip(&bomb_src, 1 << 20).unwrap_err(),
        )
    });
    assert!(err.to_string().contains("big.png"), "{err}");
    assert!(
        bomb.to_string().contains("more than 1048576 bytes"),
        "{bomb}"
    );
    assert!(
        largest < 4 << 20,
        "an allocation of {largest} bytes was made while decoding"
    );
    // Within the limit the bytes come back whole.
    let ok = cnn_data::decode_maybe_gzip(&bomb_src, 8 << 20).unwrap();
    assert_eq!(ok.len(), 8 << 20);
}

/// A small gzip IDX file whose header declares one 28x28 image (784 bytes)
/// but which inflates to 4 MiB more: the error says more data follows, and
/// decompression stops just past the declared size instead of inflating
/// the rest. Likewise a header declaring more than a gzip file may
/// decompress to is refused before its data is inflated.
#[test]
fn gzip_idx_is_decompressed_no_further_than_its_header_declares() {
    let dir = TempDir::new("idx-bomb");
    write_mnist(dir.path(), false, true, 6, 2);
    let mut trailing = encode_idx_images(1, 28, 28, &[0; 784]);
    trailing.resize(trailing.len() + (4 << 20), 0);
    let path = write(dir.path(), "train-images-idx3-ubyte.gz", &trailing);
    let (err, largest) =
        largest_allocation(|| load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err());
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("[1, 28, 28] = 784 bytes of data, but more than 784 bytes follow"),
        "{msg}"
    );
    assert!(
        largest < 1 << 20,
        "an allocation of {largest} bytes was made while loading"
    );

    let mut huge = trailing;
    huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    write(dir.path(), "train-images-idx3-ubyte.gz", &huge);
    let (err, largest) =
        largest_allocation(|| load_mnist_dir(dir.path(), IdxFlavor::Mnist).unwrap_err());
    let msg = err.to_string();
    assert!(
        msg.contains("= 3367254359280 bytes of data, more than the 17179869184 bytes"),
        "{msg}"
    );
    assert!(
        largest < 1 << 20,
        "an allocation of {largest} bytes was made while loading"
    );
}
