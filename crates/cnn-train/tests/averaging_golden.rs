//! Weight averaging against PyTorch: `testdata/golden/averaging.json`
//! (written by `xtask/golden_averaging.py`) holds a small batch-norm
//! model's state_dict after each of five SGD steps, and what timm's
//! `ModelEmaV2` (decay 0.9), `ModelEmaV3` with warmup, and torch's
//! `AveragedModel` made of them, then `update_bn` over three batches and
//! SWALR's rates. cnn's averages are fed the same states and must give
//! every value within 1e-6 absolute + 1e-5 relative (float32 arithmetic
//! in another order: timm's `decay * e + (1 - decay) * m` and torch's
//! `lerp` against cnn's `scale` then `axpy`).

use cnn_core::backend::Conv2dGeometry;
use cnn_core::{ArrayData, Graph, GraphBuilder, NamedArray};
use cnn_cpu::CpuBackend;
use cnn_testing::assert::assert_close;
use cnn_train::averaging::swa::swa_lr;
use cnn_train::averaging::{Anneal, Ema, Swa};
use serde_json::Value;

const ABS: f64 = 1e-6;
const REL: f64 = 1e-5;

fn golden() -> Value {
    let path = cnn_testing::golden::golden_dir().join("averaging.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("averaging.json is JSON")
}

fn model(b: &CpuBackend) -> Graph<CpuBackend> {
    GraphBuilder::new([1, 6, 6])
        .conv2d("conv1", Conv2dGeometry::new(2, 3))
        .batch_norm2d("bn1")
        .relu()
        .flatten()
        .linear("fc", 3)
        .build(b, 0)
        .unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// A golden state_dict as cnn's entries.
fn state(v: &Value) -> Vec<NamedArray> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(name, e)| {
            let shape: Vec<usize> = e["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let values = floats(&e["values"]);
            let data = if name.ends_with("num_batches_tracked") {
                ArrayData::I64(values.iter().map(|&x| x as i64).collect())
            } else {
                ArrayData::F32(values.iter().map(|&x| x as f32).collect())
            };
            NamedArray {
                name: name.clone(),
                shape,
                data,
            }
        })
        .collect()
}

/// Every float entry of `actual` against `expected`; counters too when
/// `counters`.
fn check(actual: &[NamedArray], expected: &Value, counters: bool, what: &str) {
    let expected = state(expected);
    assert_eq!(actual.len(), expected.len(), "{what}: entries");
    for e in &expected {
        let a = actual
            .iter()
            .find(|a| a.name == e.name)
            .unwrap_or_else(|| panic!("{what}: no `{}`", e.name));
        match (&a.data, &e.data) {
            (ArrayData::F32(a), ArrayData::F32(e_)) => {
                assert_close(a, e_, ABS, REL, &format!("{what}: {}", e.name));
            }
            (ArrayData::I64(a), ArrayData::I64(e_)) if counters => {
                assert_eq!(a, e_, "{what}: {}", e.name);
            }
            (ArrayData::I64(_), ArrayData::I64(_)) => {}
            _ => panic!("{what}: `{}` has another type", e.name),
        }
    }
}

#[test]
fn ema_and_swa_follow_timm_and_torch_step_by_step() {
    let g = golden();
    let b = CpuBackend::with_threads(1).unwrap();
    let mut m = model(&b);
    m.load_state_dict(&state(&g["initial"])).unwrap();
    let decay = g["ema_decay"].as_f64().unwrap();
    let mut ema = Ema::new(&m, decay, false).unwrap();
    let mut warm = Ema::new(&m, decay, true).unwrap();
    let mut swa = Swa::new(&m).unwrap();
    let steps = g["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 5);
    for (k, step) in steps.iter().enumerate() {
        m.load_state_dict(&state(&step["model"])).unwrap();
        let update = k as u64 + 1;
        ema.update(&m, update).unwrap();
        warm.update(&m, update).unwrap();
        swa.update(&m).unwrap();
        // ModelEmaV2 truncates `num_batches_tracked` through its float
        // formula (it stays 0); cnn copies it as ModelEmaV3 does.
        check(
            &ema.state_dict().unwrap(),
            &step["ema"],
            false,
            &format!("ema, step {update}"),
        );
        check(
            &warm.state_dict().unwrap(),
            &step["ema_warmup"],
            true,
            &format!("ema with warmup, step {update}"),
        );
        check(
            &swa.state_dict().unwrap(),
            &step["swa"],
            true,
            &format!("swa, step {update}"),
        );
    }
    assert_eq!(swa.n_averaged(), g["swa_n_averaged"].as_u64().unwrap());
    // update_bn over three batches of 4, 4 and 2 images.
    assert!(swa.update_bn_begin().unwrap(), "the model has batch norm");
    for batch in g["bn_batches"].as_array().unwrap() {
        let images: Vec<f32> = floats(&batch["values"]).iter().map(|&x| x as f32).collect();
        swa.update_bn_batch(&images, batch["n"].as_u64().unwrap() as usize)
            .unwrap();
    }
    swa.update_bn_end().unwrap();
    check(
        &swa.state_dict().unwrap(),
        &g["swa_after_update_bn"],
        true,
        "swa after update_bn",
    );
}

#[test]
fn swalr_rates_equal_torch() {
    let g = golden();
    let cases = g["swalr"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let anneal = match case["anneal_strategy"].as_str().unwrap() {
            "cos" => Anneal::Cos,
            "linear" => Anneal::Linear,
            other => panic!("unknown anneal strategy {other}"),
        };
        let epochs = case["anneal_epochs"].as_u64().unwrap() as usize;
        let (lr0, target) = (
            case["lr0"].as_f64().unwrap(),
            case["swa_lr"].as_f64().unwrap(),
        );
        // torch's k-th SWALR step (from 1) is the rate of SWA's k-th epoch.
        let ours: Vec<f64> = (0..6)
            .map(|k| swa_lr(4 + k, 4, target, epochs, anneal, lr0).unwrap())
            .collect();
        let torch = floats(&case["lrs"]);
        assert_close(&ours, &torch, 1e-12, 1e-12, &format!("SWALR {case}"));
    }
}
