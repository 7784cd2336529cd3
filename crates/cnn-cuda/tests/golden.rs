//! The PyTorch golden layer cases (`testdata/golden/layers.json`, or the
//! directory in `$CNN_GOLDEN_DIR`) through the CUDA backend. Skips without
//! a GPU unless `CNN_REQUIRE_CUDA=1`.

mod common;

use cnn_testing::golden::{golden_dir, golden_layer_case_count, run_golden_layers};

#[test]
fn golden_layers_match_pytorch_on_cuda() {
    let Some(be) = common::cuda("golden_layers_match_pytorch_on_cuda") else {
        return;
    };
    let dir = golden_dir();
    let expected = golden_layer_case_count(&dir).unwrap_or_else(|e| panic!("{e}"));
    match run_golden_layers(&be, &dir) {
        Ok(checked) => {
            println!(
                "golden layers on cuda: {checked} cases checked ({})",
                dir.display()
            );
            assert_eq!(
                checked, expected,
                "every case in layers.json must be checked"
            );
        }
        Err(e) => panic!("golden layers on cuda ({}):\n{e}", dir.display()),
    }
}
