//! IDX image files, raw or gzip (detected by content, as the MNIST loader
//! does): a parsed value or a typed error, never a panic or an allocation
//! sized from the header.
#![no_main]

use cnn_fuzz::limited_allocator;
use libfuzzer_sys::fuzz_target;

limited_allocator!();

/// Decompression limit: growth of the output buffer stays below the
/// allocation floor.
const GZIP_LIMIT: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    cnn_fuzz::input(data.len(), cnn_fuzz::DEFAULT_FLOOR);
    let Ok(bytes) = cnn_data::decode_maybe_gzip(data, GZIP_LIMIT) else {
        return;
    };
    if let Ok(images) = cnn_data::parse_idx_images(&bytes) {
        assert_eq!(
            images.pixels.len(),
            images.count * images.rows * images.cols
        );
        assert_eq!(images.pixels.len() + 16, bytes.len());
    }
});
