//! The optimizers beyond torch.optim's classic nine against their
//! reference implementations (`testdata/golden/optim_modern.json`, made by
//! `xtask/golden_optim_modern.py`, or `$CNN_GOLDEN_DIR`): torch.optim's
//! ASGD, Rprop, Adafactor and Muon (its AdamW fallback included),
//! lion-pytorch's Lion, pytorch-optimizer's Lamb and LARS, on vectors,
//! matrices and a 4-D convolution weight, with weight decay and
//! non-default settings.
//!
//! The references ran in float32, as cnn does (Muon's Newton-Schulz
//! iteration in float32 instead of torch's bfloat16, see the script), so
//! every step's weights must agree within 1e-5 abs + 1e-4 rel: what
//! reductions summed in another order (norms, row and column means,
//! matrix products) and fused multiply-adds leave after 12 steps. A case
//! that cannot run (an unknown optimizer or hyperparameter) fails the
//! test, and so does a file that lacks one of the optimizers.

use std::collections::BTreeSet;

use cnn_core::{Param, ParamKind, Tensor};
use cnn_cpu::CpuBackend;
use cnn_optim::{Optimizer, OptimizerConfig};
use cnn_testing::{check_close, golden_dir};
use serde_json::Value;

const ABS: f64 = 1e-5;
const REL: f64 = 1e-4;

use cnn_testing::golden_floats as floats;

fn run_case(backend: &CpuBackend, q: f64, case: &Value) -> Result<(), String> {
    let kind = case["optimizer"].as_str().ok_or("no `optimizer`")?;
    let mut config = case["hyper"]
        .as_object()
        .cloned()
        .ok_or("no `hyper` object")?;
    config.insert("kind".into(), kind.into());
    let config = OptimizerConfig::from_json(&Value::Object(config)).map_err(|e| e.to_string())?;
    let mut opt = Optimizer::<CpuBackend>::new(config).map_err(|e| e.to_string())?;
    let shape: Vec<usize> = floats(&case["shape"], "shape")?
        .into_iter()
        .map(|d| d as usize)
        .collect();
    let (c, t) = (floats(&case["c"], "c")?, floats(&case["t"], "t")?);
    let w0: Vec<f32> = floats(&case["w0"], "w0")?
        .into_iter()
        .map(|x| x as f32)
        .collect();
    let value = Tensor::from_slice(backend, shape, &w0).map_err(|e| e.to_string())?;
    let mut param =
        Param::new(backend, "w", ParamKind::Weight, value).map_err(|e| e.to_string())?;
    let trajectory = case["trajectory"].as_array().ok_or("no `trajectory`")?;
    let steps = case["steps"].as_u64().ok_or("no `steps`")? as usize;
    if trajectory.len() != steps || steps == 0 {
        return Err(format!("{} rows for {steps} steps", trajectory.len()));
    }
    for (k, row) in trajectory.iter().enumerate() {
        let w = param.value.to_vec(backend).map_err(|e| e.to_string())?;
        let g: Vec<f32> = w
            .iter()
            .zip(c.iter().zip(&t))
            .map(|(&w, (&c, &t))| {
                let w = f64::from(w);
                (2.0 * c * (w - t) + 4.0 * q * w * w * w) as f32
            })
            .collect();
        param
            .grad
            .copy_from_slice(backend, &g)
            .map_err(|e| e.to_string())?;
        opt.step(backend, &mut [&mut param])
            .map_err(|e| format!("step {}: {e}", k + 1))?;
        let w = param.value.to_vec(backend).map_err(|e| e.to_string())?;
        check_close(
            &w,
            &floats(row, "trajectory row")?,
            ABS,
            REL,
            &format!("w after step {}", k + 1),
        )?;
    }
    Ok(())
}

#[test]
fn golden_modern_optimizers() {
    let path = golden_dir().join("optim_modern.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("optim_modern.json is JSON");
    let q = doc["q"].as_f64().expect("q");
    let backend = CpuBackend::with_threads(1).expect("cpu backend");
    let mut failures = Vec::new();
    let mut kinds = BTreeSet::new();
    let mut conv = BTreeSet::new();
    let cases = doc["cases"].as_array().expect("cases");
    for case in cases {
        let name = case["name"].as_str().unwrap_or("<unnamed>");
        let kind = case["optimizer"].as_str().unwrap_or("");
        kinds.insert(kind.to_string());
        if case["shape"].as_array().is_some_and(|s| s.len() == 4) {
            conv.insert(kind.to_string());
        }
        if let Err(e) = run_case(&backend, q, case) {
            failures.push(format!("case `{name}`: {e}"));
        }
    }
    println!("golden modern optimizers: {} cases checked", cases.len());
    for kind in ["asgd", "rprop", "adafactor", "muon", "lion", "lamb", "lars"] {
        if !kinds.contains(kind) {
            failures.push(format!("no case of `{kind}`"));
        }
    }
    for kind in ["adafactor", "muon"] {
        if !conv.contains(kind) {
            failures.push(format!("no convolution-weight case of `{kind}`"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
