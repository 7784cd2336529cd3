//! The golden harness: PyTorch's results for the layer ops
//! (`testdata/golden/layers.json`, described in its README) run through a
//! backend, or through the reference kernels to prove the oracle.
//!
//! Every case is parsed strictly: an unknown op, activation kind, config key
//! or array is an error naming the case, never a silent skip. Each op is
//! described once, as a `GoldenOp` in its own module (its name in
//! `layers.json`, how to read its params, the arrays it reads and writes,
//! how to run it on a backend and on the reference kernels), and the table
//! `ops` lists them, one entry per op. An executor (the backend's ops or the reference
//! kernels) computes each case's outputs from its inputs, and every output
//! array of the case is compared with [`check_close`](crate::check_close).
//!
//! - `op`: the `GoldenOp` trait, the two executors, one case's check.
//! - `json`: strict reading of a case's arrays, shapes and config.
//! - `conv`, `pool`, `linear`, `activation`, `loss`, `norm`:
//!   the ops, one file per family as in `cnn_core::backend`.

mod activation;
mod conv;
mod json;
mod linear;
mod loss;
mod norm;
mod op;
mod pool;

use std::path::{Path, PathBuf};

use cnn_core::backend::Backend;
use serde_json::{Map, Value};

use crate::golden::activation::ActivationOp;
use crate::golden::conv::Conv2d;
use crate::golden::linear::Linear;
use crate::golden::loss::{MseLoss, SoftmaxCrossEntropy};
use crate::golden::norm::BatchNorm2d;
use crate::golden::op::{Executor, GoldenOp, OnBackend, OnReference, check_case};
use crate::golden::pool::{AvgPool2d, GlobalAvgPool2d, MaxPool2d};

/// Absolute tolerance of a backend against PyTorch: f32 arithmetic on
/// values of order 1 with sums of up to a few hundred terms.
pub const GOLDEN_ABS: f64 = 1e-5;
/// Relative tolerance of a backend against PyTorch.
pub const GOLDEN_REL: f64 = 1e-4;
/// Tolerances of the f64 reference kernels against PyTorch's f64 results.
/// Not 1e-15: the ops take their hyper-parameters as f32 (a leaky slope or
/// label smoothing of 0.1 is off by up to 6e-8 relative) and eval-mode
/// batch norm reads running statistics rounded to f32 buffers.
pub const REFERENCE_GOLDEN_ABS: f64 = 1e-8;
/// See [`REFERENCE_GOLDEN_ABS`].
pub const REFERENCE_GOLDEN_REL: f64 = 2e-7;

/// Checks one case of a known op on an executor, within `abs + rel`.
type CheckCase<E> = fn(&Map<String, Value>, &E, f64, f64) -> Result<(), String>;

/// The table of golden ops, one entry per op of `layers.json`: its name
/// there and the check built from its [`GoldenOp`] description.
fn ops<E: Executor>() -> [(&'static str, CheckCase<E>); 9] {
    fn entry<O: GoldenOp, E: Executor>() -> (&'static str, CheckCase<E>) {
        (O::NAME, check_case::<O, E>)
    }
    [
        entry::<Conv2d, E>(),
        entry::<MaxPool2d, E>(),
        entry::<AvgPool2d, E>(),
        entry::<GlobalAvgPool2d, E>(),
        entry::<Linear, E>(),
        entry::<ActivationOp, E>(),
        entry::<SoftmaxCrossEntropy, E>(),
        entry::<MseLoss, E>(),
        entry::<BatchNorm2d, E>(),
    ]
}

/// The directory holding `layers.json`: `$CNN_GOLDEN_DIR` when set, else the
/// repository's `testdata/golden`.
pub fn golden_dir() -> PathBuf {
    match std::env::var_os("CNN_GOLDEN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/golden"
        )),
    }
}

/// A golden JSON array of numbers (`what` names it in the error).
pub fn golden_floats(v: &Value, what: &str) -> Result<Vec<f64>, String> {
    v.as_array()
        .ok_or_else(|| format!("`{what}` is not an array"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .ok_or_else(|| format!("`{what}` holds a non-number"))
        })
        .collect()
}

/// The cases of `dir/layers.json`.
pub fn load_layer_cases(dir: &Path) -> Result<Vec<Value>, String> {
    let path = dir.join("layers.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let root: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    match root.get("cases") {
        Some(Value::Array(cases)) => Ok(cases.clone()),
        _ => Err(format!("{} has no `cases` array", path.display())),
    }
}

/// The number of cases in `dir/layers.json`.
pub fn golden_layer_case_count(dir: &Path) -> Result<usize, String> {
    load_layer_cases(dir).map(|cases| cases.len())
}

/// Run every case of `dir/layers.json` through `backend`'s ops and compare
/// every array within [`GOLDEN_ABS`] + [`GOLDEN_REL`]. Returns the number of
/// cases checked, or an error listing each case that could not be run or
/// did not match.
pub fn run_golden_layers<B: Backend>(backend: &B, dir: &Path) -> Result<usize, String> {
    run_cases(dir, GOLDEN_ABS, GOLDEN_REL, &OnBackend(backend))
}

/// Run every case through the reference kernels (the oracle's own check),
/// within [`REFERENCE_GOLDEN_ABS`] + [`REFERENCE_GOLDEN_REL`].
pub fn run_golden_layers_reference(dir: &Path) -> Result<usize, String> {
    run_cases(
        dir,
        REFERENCE_GOLDEN_ABS,
        REFERENCE_GOLDEN_REL,
        &OnReference,
    )
}

fn run_cases<E: Executor>(dir: &Path, abs: f64, rel: f64, exec: &E) -> Result<usize, String> {
    let cases = load_layer_cases(dir)?;
    if cases.is_empty() {
        return Err(format!(
            "{} holds no cases",
            dir.join("layers.json").display()
        ));
    }
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let name = case
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{index}"), str::to_string);
        if let Err(e) = run_case(case, abs, rel, exec) {
            failures.push(format!("case `{name}`: {e}"));
        }
    }
    if failures.is_empty() {
        Ok(cases.len())
    } else {
        Err(format!(
            "{} of {} golden layer cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        ))
    }
}

/// Look the case's op up in [`ops`] and check the case with it.
fn run_case<E: Executor>(case: &Value, abs: f64, rel: f64, exec: &E) -> Result<(), String> {
    let obj = case.as_object().ok_or("the case is not a JSON object")?;
    let op = obj
        .get("op")
        .and_then(Value::as_str)
        .ok_or("missing `op`")?;
    let (_, check) = ops::<E>()
        .into_iter()
        .find(|(name, _)| *name == op)
        .ok_or_else(|| format!("unknown op `{op}`"))?;
    check(obj, exec, abs, rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_kernels_match_pytorch_golden_values() {
        let dir = golden_dir();
        let expected = golden_layer_case_count(&dir).unwrap();
        match run_golden_layers_reference(&dir) {
            Ok(n) => assert_eq!(n, expected),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn every_op_has_one_entry_and_every_entry_has_cases() {
        let names: Vec<&str> = ops::<OnReference>().iter().map(|(n, _)| *n).collect();
        let mut distinct = names.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        let cases = load_layer_cases(&golden_dir()).unwrap();
        for name in names {
            assert!(
                cases
                    .iter()
                    .any(|c| c.get("op") == Some(&Value::from(name))),
                "no golden case exercises `{name}`"
            );
        }
    }

    fn one_case(op: &str, config: Value) -> Value {
        serde_json::json!({ "name": "t", "op": op, "config": config })
    }

    #[test]
    fn unknown_ops_kinds_and_keys_are_errors() {
        let bad = [
            (one_case("conv3d", serde_json::json!({})), "unknown op"),
            (
                one_case("activation", serde_json::json!({ "kind": "mish" })),
                "unknown activation kind",
            ),
            (
                one_case(
                    "activation",
                    serde_json::json!({ "kind": "relu", "inplace": true }),
                ),
                "unsupported config key `inplace`",
            ),
            (
                one_case("mse_loss", serde_json::json!({ "reduction": "sum" })),
                "unsupported reduction",
            ),
            (
                one_case(
                    "linear",
                    serde_json::json!({ "bias": true, "dtype": "f16" }),
                ),
                "unsupported config key `dtype`",
            ),
        ];
        for (case, why) in bad {
            let e = run_case(&case, 0.0, 0.0, &OnReference).unwrap_err();
            assert!(e.contains(why), "{case}: {e}");
        }
        let extra = serde_json::json!({
            "name": "t", "op": "mse_loss", "config": {}, "x_shape": [1, 1],
            "x": [1.0], "target": [0.0], "loss": 1.0, "gx": [2.0], "gx_extra": [0.0]
        });
        let e = run_case(&extra, 0.0, 0.0, &OnReference).unwrap_err();
        assert!(e.contains("gx_extra"), "{e}");
    }
}
