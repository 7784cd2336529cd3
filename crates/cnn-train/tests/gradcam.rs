//! `cnn inspect`'s Grad-CAM and saliency maps against PyTorch's
//! (testdata/golden/gradcam.json, from xtask/golden_gradcam.py: hooks on
//! the same layer of LeNet-5 and ResNet-20 with the same weights and
//! image, evaluation mode, the gradient of the class's logit).
//!
//! Tolerances, absolute + relative: logits 1e-5 + 1e-4; every map 1e-4 x
//! the golden map's largest value + 1e-3 (the maps are weighted sums with
//! cancellation; f32 in both, summed in different orders).

mod common;

use cnn_core::Graph;
use cnn_core::models::{ModelOptions, lenet5, resnet20};
use cnn_cpu::CpuBackend;
use cnn_testing::assert::assert_close;
use cnn_train::inspect::{InspectOptions, inspect_image};
use cnn_train::setup::load_weights;
use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0.0f64, |m, &x| m.max(f64::from(x).abs()))
}

/// Check every case of `model` in the golden file; returns how many ran.
fn check_model(model: &str) -> usize {
    let dir = common::golden_dir();
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("gradcam.json")).unwrap()).unwrap();
    let entry = golden["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == model)
        .unwrap_or_else(|| panic!("no {model} in gradcam.json"));
    let shape: Vec<usize> = entry["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let opts = ModelOptions::new(shape.clone(), 10);
    let spec = match model {
        "lenet5" => lenet5(&opts),
        _ => resnet20(&opts),
    }
    .unwrap();
    let backend = CpuBackend::with_threads(2).unwrap();
    let mut graph = Graph::new(&backend, spec, 0).unwrap();
    load_weights(&mut graph, &dir.join(entry["weights"].as_str().unwrap())).unwrap();
    let input = floats(&entry["input"]);
    let cases = entry["cases"].as_array().unwrap();
    for case in cases {
        let layer = case["layer"].as_str().unwrap().to_string();
        let class = case["class"].as_u64().map(|c| c as usize);
        let options = InspectOptions {
            class,
            layer: Some(layer.clone()),
        };
        let ins = inspect_image(&mut graph, &input, &options).unwrap();
        let what = |map: &str| format!("{model} {layer} {map}");
        assert_eq!(ins.layer, layer);
        assert_eq!(ins.class as u64, case["target_class"].as_u64().unwrap());
        // The probabilities are the softmax of PyTorch's logits.
        let logits = floats(&case["logits"]);
        let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z: f64 = logits.iter().map(|&l| f64::from(l - m).exp()).sum();
        let probs: Vec<f64> = logits.iter().map(|&l| f64::from(l - m).exp() / z).collect();
        assert_close(
            &ins.probabilities,
            &probs,
            1e-5,
            1e-4,
            &what("probabilities"),
        );
        let cam_shape: Vec<usize> = case["cam_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(ins.layer_shape[1..], cam_shape[..]);
        for (name, ours) in [
            ("cam", &ins.cam),
            ("cam_upsampled", &ins.cam_upsampled),
            ("saliency", &ins.saliency),
        ] {
            let expected = floats(&case[name]);
            let scale = max_abs(&expected);
            assert!(scale > 0.0, "{}: the golden map is all zeros", what(name));
            assert_close(ours, &expected, 1e-4 * scale, 1e-3, &what(name));
        }
        // A map that is not flat: the check compares something.
        let positive = ins.cam.iter().filter(|&&v| v > 0.0).count();
        assert!(
            positive * 10 >= ins.cam.len(),
            "{}: {positive} positive",
            what("cam")
        );
    }
    cases.len()
}

#[test]
fn lenet5_gradcam_and_saliency_match_pytorch() {
    assert_eq!(check_model("lenet5"), 2);
}

#[test]
fn resnet20_gradcam_and_saliency_match_pytorch_in_evaluation_mode() {
    assert_eq!(check_model("resnet20"), 2);
}

/// The default layer is the last convolution and the default class the
/// predicted one; the same maps as naming them.
#[test]
fn defaults_are_the_last_convolution_and_the_predicted_class() {
    let opts = ModelOptions::new([1, 28, 28], 10);
    let backend = CpuBackend::with_threads(2).unwrap();
    let mut graph = Graph::new(&backend, lenet5(&opts).unwrap(), 3).unwrap();
    let input: Vec<f32> = (0..784)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let by_default = inspect_image(&mut graph, &input, &InspectOptions::default()).unwrap();
    assert_eq!(by_default.layer, "conv2");
    assert_eq!(by_default.class, by_default.predicted);
    let p = &by_default.probabilities;
    assert!(p.iter().all(|&q| q <= p[by_default.predicted]));
    assert!((p.iter().map(|&q| f64::from(q)).sum::<f64>() - 1.0).abs() < 1e-5);
    let named = InspectOptions {
        class: Some(by_default.predicted),
        layer: Some("conv2".into()),
    };
    let again = inspect_image(&mut graph, &input, &named).unwrap();
    assert_eq!(again.cam, by_default.cam);
    assert_eq!(again.saliency, by_default.saliency);
    // Feature maps: both convolutions and both poolings, in order.
    let nodes: Vec<&str> = by_default
        .feature_maps
        .iter()
        .map(|m| m.node.as_str())
        .collect();
    assert_eq!(nodes, ["conv1", "max_pool2d2", "conv2", "max_pool2d4"]);
    assert_eq!(by_default.feature_maps[3].shape, [16, 5, 5]);
    // A bad layer or class is a typed error.
    let bad = InspectOptions {
        class: Some(10),
        layer: None,
    };
    assert!(
        inspect_image(&mut graph, &input, &bad)
            .unwrap_err()
            .to_string()
            .contains("--class 10")
    );
    let bad = InspectOptions {
        class: None,
        layer: Some("fc1".into()),
    };
    let e = inspect_image(&mut graph, &input, &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an image"), "{e}");
}
