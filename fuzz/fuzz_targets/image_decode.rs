//! One image file (PNG or JPEG, detected by content) decoded, converted and
//! resized for a model input, as `cnn predict` and image folders do. The
//! first byte picks the target shape.
#![no_main]

use std::path::Path;

use cnn_core::Shape;
use cnn_data::Normalization;
use cnn_fuzz::limited_allocator;
use libfuzzer_sys::fuzz_target;

limited_allocator!();

/// The decoder may allocate up to `cnn_data::folder::MAX_IMAGE_ALLOC`
/// (256 MiB) for one image; a little more for the conversion buffers.
const FLOOR: usize = 300 << 20;

fuzz_target!(|data: &[u8]| {
    cnn_fuzz::input(data.len(), FLOOR);
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let (shape, norm) = if pick & 1 == 0 {
        (Shape::from([1, 28, 28]), Normalization::mnist())
    } else {
        (Shape::from([3, 32, 32]), Normalization::cifar10())
    };
    if let Ok(values) = cnn_data::decode_image_bytes(bytes, Path::new("fuzz"), &shape, &norm) {
        assert_eq!(values.len(), shape.numel());
        assert!(values.iter().all(|v| v.is_finite()));
    }
});
