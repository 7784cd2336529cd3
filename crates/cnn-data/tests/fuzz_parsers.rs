//! The byte-level parsers never panic, whatever the input, and accept
//! exactly the well-formed buffers.

use cnn_data::idx::{encode_idx_images, encode_idx_labels};
use cnn_data::{parse_cifar_batch, parse_idx_images, parse_idx_labels};
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let _ = parse_idx_images(&bytes);
        let _ = parse_idx_labels(&bytes);
        let _ = parse_cifar_batch(&bytes);
    }

    #[test]
    fn mutated_headers_never_panic(
        n in 0u32..5, r in 0u32..5, c in 0u32..5,
        at in 0usize..16, byte in any::<u8>(), cut in 0usize..200,
    ) {
        let px = vec![7u8; (n * r * c) as usize];
        let mut img = encode_idx_images(n, r, c, &px);
        prop_assert!(parse_idx_images(&img).is_ok());
        img[at] = byte;
        let img = &img[..img.len().min(cut)];
        if let Ok(parsed) = parse_idx_images(img) {
            prop_assert_eq!(parsed.pixels.len(), parsed.count * parsed.rows * parsed.cols);
        }
        let lab = encode_idx_labels(&px);
        let _ = parse_idx_labels(&lab[..lab.len().min(cut)]);
    }
}
