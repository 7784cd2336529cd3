//! Hostile model specs, configs and safetensors files (the fuzz targets'
//! inputs, `fuzz/`): a value or a typed error, never a panic, and no
//! allocation sized from a declared count.

use std::path::Path;

use cnn_core::Shape;
use cnn_train::TrainConfig;
use cnn_train::checkpoint::parse_safetensors;
use cnn_train::setup::parse_model_spec;

fn spec_with_linear(out_features: &str) -> String {
    format!(
        "[[nodes]]\nname = \"flat\"\ntype = \"flatten\"\n\n[[nodes]]\nname = \"fc\"\ntype = \"linear\"\nout_features = {out_features}\n"
    )
}

/// The one-line error `parse_model_spec` gives for `text` over `shape`.
fn spec_error(text: &str, shape: &Shape) -> String {
    match parse_model_spec(text, Path::new("net.toml"), shape) {
        Ok(spec) => panic!("accepted: {text}\nparams {:?}", spec.num_params()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn huge_or_invalid_layer_sizes_are_typed_errors() {
    let shape = Shape::from([1, 28, 28]);
    for (out, want) in [
        (
            "4611686018427387904",
            "net.toml: node `fc`: 4611686018427387904 channels or features is more than the 1048576 allowed",
        ),
        (
            "18446744073709551615",
            "net.toml: number too large to fit in target type",
        ),
        (
            "0",
            "net.toml: invalid geometry in layer `fc`: out_features must be at least 1",
        ),
        (
            "-1",
            "net.toml: node `fc`: invalid value: integer `-1`, expected usize",
        ),
        (
            "1e30",
            "net.toml: node `fc`: invalid type: floating point `1000000000000000000000000000000.0`, expected usize",
        ),
    ] {
        assert_eq!(spec_error(&spec_with_linear(out), &shape), want, "{out}");
    }
}

/// Sizes that each pass their own cap but whose products overflow `usize`
/// are `SizeOverflow` errors naming the layer or the shape, never wrapped
/// (the release profile the suite runs under has no overflow checks, so a
/// wrapped product would pass silently as a small number).
#[test]
fn size_products_past_64_bits_are_overflow_errors() {
    let cases = [
        (
            Shape::from([1 << 20, 1 << 20, 1 << 20]),
            "1048576",
            "net.toml: layer `fc`: too large: its parameter count (1048576 x 1152921504606846976 + 1048576) overflows 64-bit sizes",
        ),
        (
            Shape::from([1 << 40, 1 << 12, 1 << 12]),
            "1",
            "net.toml: too large: the element count of the input shape [1099511627776, 4096, 4096] overflows 64-bit sizes",
        ),
        (
            Shape::from([8, 1 << 30, 1 << 30]),
            "1",
            // 2^63 input values plus 2^63 flattened: the true sum, 2^64,
            // not the wrapped 0.
            "net.toml: node `flat`: the model reaches 0 parameters and 18446744073709551616 activation values per sample, more than the 1099511627776 allowed",
        ),
    ];
    for (shape, out, want) in cases {
        assert_eq!(spec_error(&spec_with_linear(out), &shape), want, "{shape}");
    }
}

#[test]
fn conv_with_huge_channels_or_kernels_is_a_typed_error() {
    let shape = Shape::from([3, 32, 32]);
    for (out, k, want) in [
        (
            "18446744073709551615",
            3,
            "net.toml: number too large to fit in target type",
        ),
        (
            "8",
            1_000_000_000_000usize,
            "net.toml: node `c`: a kernel, stride, padding, dilation or group count of 1000000000000 is more than the 65536 allowed",
        ),
        (
            "0",
            3,
            "net.toml: invalid geometry in layer `c`: channel counts must be at least 1",
        ),
    ] {
        let text = format!(
            "[[nodes]]\nname = \"c\"\ntype = \"conv2d\"\nout_channels = {out}\nkernel = [{k}, {k}]\nstride = [1, 1]\npadding = [{k}, {k}]\ndilation = [1, 1]\ngroups = 1\n"
        );
        assert_eq!(spec_error(&text, &shape), want, "{out} {k}");
    }
}

#[test]
fn safetensors_with_huge_declared_sizes_are_errors() {
    let origin = Path::new("w.safetensors");
    // Header length 10^12 with two bytes following.
    let mut bytes = 1_000_000_000_000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    assert!(parse_safetensors(&bytes, origin).is_err());
    // A tensor claiming a huge shape over 4 bytes of data.
    let header = br#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 4]);
    let err = parse_safetensors(&bytes, origin).unwrap_err();
    assert!(err.to_string().contains("w.safetensors"), "{err}");
    // Truncated headers of every length.
    let header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut full = (header.len() as u64).to_le_bytes().to_vec();
    full.extend_from_slice(header);
    full.extend_from_slice(&1.5f32.to_le_bytes());
    assert!(parse_safetensors(&full, origin).is_ok());
    for cut in 0..full.len() {
        assert!(
            parse_safetensors(&full[..cut], origin).is_err(),
            "cut {cut}"
        );
    }
}

#[test]
fn hostile_run_configs_are_typed_errors() {
    for text in [
        "batch_size = -1\n",
        "epochs = 18446744073709551616\n",
        "lr = nan\n",
        "lr = inf\n",
        "max_memory = 0\n",
        "schedule = \"cosine\"\nepochs = 0\nmax_steps = 0\n",
        "[model]\n",
        "\u{0}",
    ] {
        assert!(
            TrainConfig::from_toml(text, Path::new("run.toml")).is_err(),
            "{text:?}"
        );
    }
    let ok = TrainConfig::from_toml("max_memory = 1073741824\n", Path::new("run.toml")).unwrap();
    assert_eq!(ok.max_memory, Some(1 << 30));
}
