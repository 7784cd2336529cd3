//! Every kernel source compiles with NVRTC. Needs only libnvrtc (no GPU, no
//! driver): PyPI's `nvidia-cuda-nvrtc` wheel provides it; put its `lib`
//! folder on `LD_LIBRARY_PATH`. Skips (and says so) when libnvrtc cannot be
//! loaded, unless `CNN_REQUIRE_NVRTC=1`, which turns the skip into a failure.

use cnn_cuda::{KernelSource, compile_all_kernels, nvrtc_version};

/// Architectures checked: Ampere and Hopper (the lent H100/H200 are sm_90).
const ARCHS: [&str; 2] = ["sm_80", "sm_90"];

#[test]
fn nvrtc_compiles_all_kernels() {
    let Some((major, minor)) = nvrtc_version() else {
        cnn_testing::skip(
            "nvrtc_compiles_all_kernels",
            "CNN_REQUIRE_NVRTC",
            "libnvrtc cannot be loaded (set LD_LIBRARY_PATH to a folder with libnvrtc.so.13)",
        );
        return;
    };
    for arch in ARCHS {
        let compiled = compile_all_kernels(arch).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(compiled.len(), KernelSource::ALL.len());
        for (file, bytes) in &compiled {
            assert!(*bytes > 0, "{file}: empty image for {arch}");
            println!("NVRTC {major}.{minor}: {file} -> {bytes} bytes of {arch} CUBIN");
        }
    }
}
