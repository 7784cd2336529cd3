//! IDX label files, raw or gzip (detected by content): a parsed value or a
//! typed error, never a panic or an allocation sized from the header.
#![no_main]

use cnn_fuzz::limited_allocator;
use libfuzzer_sys::fuzz_target;

limited_allocator!();

const GZIP_LIMIT: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    cnn_fuzz::input(data.len(), cnn_fuzz::DEFAULT_FLOOR);
    let Ok(bytes) = cnn_data::decode_maybe_gzip(data, GZIP_LIMIT) else {
        return;
    };
    if let Ok(labels) = cnn_data::parse_idx_labels(&bytes) {
        assert_eq!(labels.len() + 8, bytes.len());
        let _ = cnn_data::idx::check_labels(&labels, 10);
    }
});
