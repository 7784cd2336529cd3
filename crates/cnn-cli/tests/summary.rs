//! `cnn summary`: the layer table and its totals, as text and JSON, for a
//! built-in model and a model spec file.

mod common;
use common::{assert_one_line_error, cnn, stderr};

fn json(args: &[&str]) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(args, tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn resnet20_summary_has_pytorchs_counts_and_adds_up() {
    let v = json(&[
        "summary",
        "--model",
        "resnet20",
        "--batch-size",
        "128",
        "--threads",
        "1",
        "--json",
    ]);
    let totals = &v["totals"];
    assert_eq!(totals["params"], 272_474);
    assert_eq!(totals["trainable_params"], 272_474);
    assert_eq!(totals["non_trainable_params"], 0);
    assert_eq!(totals["macs"], 40_813_184);
    assert_eq!(totals["forward_flops"], 2 * 40_813_184u64);
    assert_eq!(totals["training_flops"], 243_994_368);
    assert_eq!(totals["buffers"], 1_568);
    assert_eq!(v["batch_size"], 128);
    assert_eq!(v["input_shape"], serde_json::json!([3, 32, 32]));
    let layers = v["layers"].as_array().unwrap();
    let sum = |key: &str| layers.iter().map(|l| l[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("params"), 272_474);
    assert_eq!(sum("macs"), 40_813_184);
    // Each layer's activations are its output at batch 128, in f32 bytes.
    let stem = &layers[0];
    assert_eq!(stem["name"], "conv1");
    assert_eq!(stem["type"], "conv2d");
    assert_eq!(stem["output_shape"], serde_json::json!([16, 32, 32]));
    assert_eq!(stem["activation_bytes"], 16 * 32 * 32 * 128 * 4);
    assert_eq!(
        sum("activation_bytes"),
        totals["activation_bytes"].as_u64().unwrap()
    );
    let m = &v["memory_estimate"];
    assert_eq!(m["threads"], 1);
    let parts: u64 = ["params", "activations", "conv_workspace", "data"]
        .iter()
        .map(|k| m[*k].as_u64().unwrap())
        .sum();
    assert_eq!(m["total"].as_u64().unwrap(), parts);
    // Parameters, gradients and three optimizer slots, f32 (no replicas:
    // one thread, and batch norm keeps the step unsplit).
    assert_eq!(m["params"], 272_474 * 4 * 5);
}

#[test]
fn text_summary_names_every_layer_and_the_totals() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(&["summary", "--model", "vgg"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "features.3.2 (conv2d)",
        "[64, 128, 8, 8]",
        "147,584",
        "9,437,184",
        "parameters: 814,122 (trainable 814,122, non-trainable 0)",
        "forward MACs per image: 39,160,320",
        "training FLOPs per image: 233,192,448",
        "memory estimate of `cnn train` at batch 64",
    ] {
        assert!(text.contains(needle), "`{needle}` not in:\n{text}");
    }
}

#[test]
fn a_model_spec_file_is_summarised_on_the_datas_shape() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("net.toml"),
        "[[nodes]]\nname = \"flat\"\ntype = \"flatten\"\n\n\
         [[nodes]]\nname = \"fc\"\ntype = \"linear\"\nout_features = 10\n",
    )
    .unwrap();
    let out = cnn(&["summary", "--model", "net.toml", "--json"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The synthetic set's 3x32x32 images: 3,072 features into 10 outputs.
    assert_eq!(v["totals"]["params"], 3_072 * 10 + 10);
    assert_eq!(v["totals"]["macs"], 30_720);
    // The only layer with parameters reads the input: no input gradient.
    assert_eq!(v["totals"]["training_flops"], 2 * 2 * 30_720);
    assert_eq!(v["layers"][1]["input_grad"], false);
}

#[test]
fn bad_summary_arguments_are_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cnn(&["summary", "--batch-size", "0"], tmp.path());
    assert_one_line_error(&out, "batch_size must be at least 1");
    let out = cnn(&["summary", "--model", "alexnet"], tmp.path());
    assert_one_line_error(&out, "unknown model `alexnet`");
}
