//! What every golden op provides ([`GoldenOp`]), the two ways to run one
//! ([`OnBackend`], [`OnReference`]) and the check of one case of a known
//! op ([`check_case`]): refuse unknown fields, read the inputs, compute the
//! outputs, compare each with the case.

use std::collections::BTreeMap;

use cnn_core::backend::Backend;
use serde_json::{Map, Value};

use crate::assert::check_close;
use crate::golden::json::{f32_array, f64_array, targets};

/// A case's inputs as the ops take them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Inputs {
    pub(crate) arrays: BTreeMap<&'static str, Vec<f32>>,
    pub(crate) targets: Vec<u32>,
}

impl Inputs {
    pub(crate) fn get(&self, name: &str) -> &[f32] {
        // Presence was checked when the case was parsed.
        self.arrays.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Computed outputs by name (a loss is a one-element array).
pub(crate) type Outputs = BTreeMap<&'static str, Vec<f64>>;

/// One op of `layers.json`, described once: its name there, how to read a
/// case of it (config and shapes into typed params), the arrays it reads
/// and produces, and how to compute its outputs on a backend and with the
/// reference kernels.
pub(crate) trait GoldenOp: Sized {
    /// The op's `op` value in `layers.json`.
    const NAME: &'static str;
    /// The op with its parameters, parsed and validated from the case.
    fn parse(case: &Map<String, Value>) -> Result<Self, String>;
    /// The arrays the op reads (`targets` is read as class indices).
    fn inputs(&self) -> &'static [&'static str];
    /// The arrays the op produces (each compared with the case).
    fn outputs(&self) -> &'static [&'static str];
    /// The outputs from the f64 reference kernels.
    fn reference(&self, d: &Inputs) -> Outputs;
    /// The outputs from a backend's ops. Outputs start as NaN (overwritten
    /// ones) or zero (accumulated ones).
    fn backend<B: Backend>(&self, be: &B, d: &Inputs) -> Result<Outputs, String>;
}

/// Where a case's outputs are computed.
pub(crate) trait Executor {
    /// The outputs of `op` on the inputs `d`.
    fn outputs<O: GoldenOp>(&self, op: &O, d: &Inputs) -> Result<Outputs, String>;
}

/// A backend's ops.
#[derive(Debug)]
pub(crate) struct OnBackend<'a, B>(pub(crate) &'a B);

impl<B: Backend> Executor for OnBackend<'_, B> {
    fn outputs<O: GoldenOp>(&self, op: &O, d: &Inputs) -> Result<Outputs, String> {
        op.backend(self.0, d)
    }
}

/// The reference kernels (the oracle's own check).
#[derive(Debug)]
pub(crate) struct OnReference;

impl Executor for OnReference {
    fn outputs<O: GoldenOp>(&self, op: &O, d: &Inputs) -> Result<Outputs, String> {
        Ok(op.reference(d))
    }
}

/// Check one case of op `O` on `exec`: every output within `abs + rel`.
pub(crate) fn check_case<O: GoldenOp, E: Executor>(
    obj: &Map<String, Value>,
    exec: &E,
    abs: f64,
    rel: f64,
) -> Result<(), String> {
    let op = O::parse(obj)?;
    let (inputs, outputs) = (op.inputs(), op.outputs());
    // Refuse arrays the harness would ignore: an unchecked output is a silent skip.
    for key in obj.keys() {
        let known = ["name", "op", "config", "x_shape", "w_shape", "y_shape"]
            .contains(&key.as_str())
            || inputs.contains(&key.as_str())
            || outputs.contains(&key.as_str());
        if !known {
            return Err(format!("unknown field `{key}` for this op"));
        }
    }
    let mut data = Inputs::default();
    for &name in inputs {
        if name == "targets" {
            data.targets = targets(obj)?;
        } else {
            data.arrays.insert(name, f32_array(obj, name)?);
        }
    }
    let computed = exec.outputs(&op, &data)?;
    let mut mismatches = Vec::new();
    for &name in outputs {
        let expected = match obj.get(name) {
            Some(Value::Number(v)) => vec![v.as_f64().ok_or("a non-finite scalar")?],
            Some(_) => f64_array(obj, name)?,
            None => return Err(format!("missing output array `{name}`")),
        };
        let actual = computed
            .get(name)
            .ok_or_else(|| format!("the executor produced no `{name}`"))?;
        if let Err(e) = check_close(actual, &expected, abs, rel, name) {
            mismatches.push(e);
        }
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(mismatches.join("\n"))
    }
}
