//! The PyTorch golden cases (`testdata/golden/layers.json`, or the directory
//! in `$CNN_GOLDEN_DIR`) through the CPU backend.

use cnn_cpu::CpuBackend;
use cnn_testing::golden::{golden_dir, golden_layer_case_count, run_golden_layers};

#[test]
fn golden_layers_match_pytorch() {
    let dir = golden_dir();
    let expected = golden_layer_case_count(&dir).unwrap_or_else(|e| panic!("{e}"));
    match run_golden_layers(&CpuBackend::new(), &dir) {
        Ok(checked) => {
            println!("golden layers: {checked} cases checked ({})", dir.display());
            assert_eq!(
                checked, expected,
                "every case in layers.json must be checked"
            );
        }
        Err(e) => panic!("golden layers ({}):\n{e}", dir.display()),
    }
}
