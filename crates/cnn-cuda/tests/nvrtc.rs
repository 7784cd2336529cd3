//! Every kernel source compiles with NVRTC. Needs only libnvrtc (no GPU, no
//! driver): PyPI's `nvidia-cuda-nvrtc` wheel provides it; put its `lib`
//! folder on `LD_LIBRARY_PATH`. Skips (and says so) when libnvrtc cannot be
//! loaded, unless `CNN_REQUIRE_NVRTC=1`, which turns the skip into a failure.

use cnn_cuda::{KernelSource, compile_all_kernels, kernel_image, nvrtc_version};

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
        // Every variant: each `extern "C"` kernel of each source (the
        // `_u32` index variants, the bf16 and f16 conversions) is a symbol
        // of its image.
        for src in KernelSource::ALL {
            let image = kernel_image(src, arch).unwrap_or_else(|e| panic!("{e}"));
            let names = kernel_names(src.body());
            assert!(!names.is_empty(), "{}: no kernels found", src.file_name());
            for name in names {
                let symbol = format!("{name}\0");
                assert!(
                    image.windows(symbol.len()).any(|w| w == symbol.as_bytes()),
                    "{}: kernel `{name}` missing from the {arch} CUBIN",
                    src.file_name()
                );
            }
        }
    }
}

/// The names of the `extern "C"` kernels of a `.cu` source: those written
/// out, and the first argument of each use of a `#define` that declares
/// one (conv.cu's `COL_KERNEL(im2col_f32, ...)`).
fn kernel_names(body: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut macros = Vec::new();
    let mut in_define: Option<String> = None;
    for line in body.lines() {
        let t = line.trim();
        if in_define.is_none()
            && let Some(rest) = t.strip_prefix("#define ")
        {
            in_define = Some(String::new());
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            macros.push((name, false));
        }
        if let Some(text) = in_define.as_mut() {
            text.push_str(t);
            if t.contains("__global__") {
                macros.last_mut().expect("pushed above").1 = true;
            }
            if !t.ends_with('\\') {
                in_define = None;
            }
            continue;
        }
        plain.push_str(t);
        plain.push(' ');
    }
    let text = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut names: Vec<String> = text
        .split("extern \"C\" __global__ void ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .map(|name| name.trim().to_string())
        .collect();
    for (name, declares_kernel) in macros {
        if !declares_kernel {
            continue;
        }
        for rest in text.split(&format!("{name}(")).skip(1) {
            if let Some(arg) = rest.split(',').next() {
                names.push(arg.trim().to_string());
            }
        }
    }
    names
}

#[test]
fn kernel_names_are_read_from_the_sources() {
    let names = kernel_names(KernelSource::Gemm.body());
    assert_eq!(names, ["f32_to_bf16", "f32_to_f16"]);
    let conv = kernel_names(KernelSource::Conv.body());
    for name in [
        "im2col_f32",
        "im2col_f32_u32",
        "col2im_f32",
        "col2im_f32_u32",
        "sum_images_into_f32",
    ] {
        assert!(conv.contains(&name.to_string()), "{name} not in {conv:?}");
    }
    assert_eq!(conv.len(), 5, "{conv:?}");
    // The resident training set's batch gather lives beside fill.
    assert_eq!(
        kernel_names(KernelSource::Memory.body()),
        ["fill_f32", "gather_batch"]
    );
}
