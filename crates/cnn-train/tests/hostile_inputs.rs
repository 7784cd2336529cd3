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

#[test]
fn huge_layer_sizes_are_errors_or_sizes_without_overflow() {
    let shape = Shape::from([1, 28, 28]);
    for out in [
        "4611686018427387904",
        "18446744073709551615",
        "0",
        "-1",
        "1e30",
    ] {
        let text = spec_with_linear(out);
        if let Ok(spec) = parse_model_spec(&text, Path::new("net.toml"), &shape) {
            // Counting must not overflow (a panic in debug builds).
            let _ = spec.num_params();
            let _ = spec.activation_elements_per_sample();
        }
    }
}

#[test]
fn conv_with_huge_channels_or_kernels_does_not_panic() {
    let shape = Shape::from([3, 32, 32]);
    for (out, k) in [
        ("18446744073709551615", 3),
        ("8", 1_000_000_000_000usize),
        ("0", 3),
    ] {
        let text = format!(
            "[[nodes]]\nname = \"c\"\ntype = \"conv2d\"\nout_channels = {out}\nkernel = [{k}, {k}]\nstride = [1, 1]\npadding = [{k}, {k}]\ndilation = [1, 1]\ngroups = 1\n"
        );
        if let Ok(spec) = parse_model_spec(&text, Path::new("net.toml"), &shape) {
            let _ = spec.num_params();
            let _ = spec.activation_elements_per_sample();
        }
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
