//! The golden harness: PyTorch's results for the layer ops
//! (`testdata/golden/layers.json`, described in its README) run through a
//! backend, or through the reference kernels to prove the oracle.
//!
//! Every case is parsed strictly: an unknown op, activation kind, config key
//! or array is an error naming the case, never a silent skip. Each case is
//! first turned into a [`LayerOp`] (the typed op and its params); an
//! executor (the backend's ops or the reference kernels) computes the
//! case's outputs from its inputs, and every output array of the case is
//! compared with [`check_close`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::assert::check_close;
use super::host::{ctx, down, filled, up, up_indices, widen};
use super::reference as r;
use cnn_core::backend::{
    Activation, Backend, BatchNormParams, BiasParams, Conv2dGeometry, Conv2dParams,
    CrossEntropyParams, GemmParams, Pool2dGeometry, Pool2dParams,
};

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
    run_cases(dir, GOLDEN_ABS, GOLDEN_REL, |op, case| {
        backend_outputs(backend, op, case)
    })
}

/// Run every case through the reference kernels (the oracle's own check),
/// within [`REFERENCE_GOLDEN_ABS`] + [`REFERENCE_GOLDEN_REL`].
pub fn run_golden_layers_reference(dir: &Path) -> Result<usize, String> {
    run_cases(
        dir,
        REFERENCE_GOLDEN_ABS,
        REFERENCE_GOLDEN_REL,
        |op, case| Ok(reference_outputs(op, case)),
    )
}

/// A case's op with its parameters, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerOp {
    Conv2d {
        p: Conv2dParams,
        bias: bool,
    },
    MaxPool2d(Pool2dParams),
    AvgPool2d(Pool2dParams),
    GlobalAvgPool2d {
        n: usize,
        c: usize,
        hw: usize,
    },
    /// y = x w^T + b with x (n, inputs), w (outputs, inputs).
    Linear {
        n: usize,
        inputs: usize,
        outputs: usize,
        bias: bool,
    },
    Activation(Activation),
    SoftmaxCrossEntropy(CrossEntropyParams),
    MseLoss,
    BatchNorm2d(BatchNormParams),
}

impl LayerOp {
    /// The arrays the op reads.
    fn inputs(&self) -> Vec<&'static str> {
        match self {
            LayerOp::Conv2d { bias: true, .. } | LayerOp::Linear { bias: true, .. } => {
                vec!["x", "w", "b", "gy"]
            }
            LayerOp::Conv2d { .. } | LayerOp::Linear { .. } => vec!["x", "w", "gy"],
            LayerOp::MaxPool2d(_)
            | LayerOp::AvgPool2d(_)
            | LayerOp::GlobalAvgPool2d { .. }
            | LayerOp::Activation(_) => {
                vec!["x", "gy"]
            }
            LayerOp::SoftmaxCrossEntropy(_) => vec!["x", "targets"],
            LayerOp::MseLoss => vec!["x", "target"],
            LayerOp::BatchNorm2d(_) => vec![
                "x",
                "gamma",
                "beta",
                "running_mean_in",
                "running_var_in",
                "gy",
            ],
        }
    }

    /// The arrays the op produces (each compared with the case).
    fn outputs(&self) -> Vec<&'static str> {
        match self {
            LayerOp::Conv2d { bias: true, .. } | LayerOp::Linear { bias: true, .. } => {
                vec!["y", "gx", "gw", "gb"]
            }
            LayerOp::Conv2d { .. } | LayerOp::Linear { .. } => vec!["y", "gx", "gw"],
            LayerOp::MaxPool2d(_)
            | LayerOp::AvgPool2d(_)
            | LayerOp::GlobalAvgPool2d { .. }
            | LayerOp::Activation(_) => {
                vec!["y", "gx"]
            }
            LayerOp::SoftmaxCrossEntropy(_) | LayerOp::MseLoss => vec!["loss", "gx"],
            LayerOp::BatchNorm2d(_) => {
                vec![
                    "y_train",
                    "gx",
                    "ggamma",
                    "gbeta",
                    "running_mean_out",
                    "running_var_out",
                    "y_eval",
                ]
            }
        }
    }
}

/// A case's inputs as the ops take them.
#[derive(Debug, Clone, Default)]
struct Inputs {
    arrays: BTreeMap<&'static str, Vec<f32>>,
    targets: Vec<u32>,
}

impl Inputs {
    fn get(&self, name: &str) -> &[f32] {
        // Presence was checked when the case was parsed.
        self.arrays.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Computed outputs by name (a loss is a one-element array).
type Outputs = BTreeMap<&'static str, Vec<f64>>;

fn run_cases(
    dir: &Path,
    abs: f64,
    rel: f64,
    execute: impl Fn(&LayerOp, &Inputs) -> Result<Outputs, String>,
) -> Result<usize, String> {
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
        if let Err(e) = run_case(case, abs, rel, &execute) {
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

fn run_case(
    case: &Value,
    abs: f64,
    rel: f64,
    execute: &impl Fn(&LayerOp, &Inputs) -> Result<Outputs, String>,
) -> Result<(), String> {
    let obj = case.as_object().ok_or("the case is not a JSON object")?;
    let op = parse_op(obj)?;
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
    for name in inputs {
        if name == "targets" {
            data.targets = targets(obj)?;
        } else {
            data.arrays.insert(name, f32_array(obj, name)?);
        }
    }
    let computed = execute(&op, &data)?;
    let mut mismatches = Vec::new();
    for name in outputs {
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

// ---- parsing ----

fn f64_array(obj: &Map<String, Value>, key: &str) -> Result<Vec<f64>, String> {
    let arr = obj
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("missing array `{key}`"))?;
    arr.iter()
        .map(|v| {
            v.as_f64()
                .ok_or_else(|| format!("`{key}` holds a non-number {v}"))
        })
        .collect()
}

/// An input array. The golden inputs are f32 values printed with 16
/// significant digits, so each must lie within 1e-15 (relative) of an f32;
/// anything else is an error (it would make the comparison unfair).
fn f32_array(obj: &Map<String, Value>, key: &str) -> Result<Vec<f32>, String> {
    f64_array(obj, key)?
        .into_iter()
        .map(|v| {
            let f = v as f32;
            if (f64::from(f) - v).abs() <= 1e-15 * v.abs() {
                Ok(f)
            } else {
                Err(format!("input `{key}` value {v} is not exactly an f32"))
            }
        })
        .collect()
}

fn targets(obj: &Map<String, Value>) -> Result<Vec<u32>, String> {
    let arr = obj
        .get("targets")
        .and_then(Value::as_array)
        .ok_or("missing array `targets`")?;
    arr.iter()
        .map(|v| {
            v.as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| format!("target {v} is not a class index"))
        })
        .collect()
}

fn shape(obj: &Map<String, Value>, key: &str, rank: usize) -> Result<Vec<usize>, String> {
    let arr = obj
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("missing `{key}`"))?;
    let dims: Vec<usize> = arr
        .iter()
        .map(|v| {
            v.as_u64()
                .map(|d| d as usize)
                .ok_or_else(|| format!("`{key}` holds {v}"))
        })
        .collect::<Result<_, _>>()?;
    if dims.len() != rank {
        return Err(format!("`{key}` is {dims:?}, expected rank {rank}"));
    }
    Ok(dims)
}

/// The config object, refusing keys outside `allowed`.
fn config<'a>(
    obj: &'a Map<String, Value>,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    let cfg = match obj.get("config") {
        None => EMPTY.get_or_init(Map::new),
        Some(Value::Object(cfg)) => cfg,
        Some(other) => return Err(format!("config is not an object: {other}")),
    };
    for key in cfg.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(format!(
                "unsupported config key `{key}` (this harness knows {allowed:?})"
            ));
        }
    }
    Ok(cfg)
}

/// `[a, b]` or a single number `a` (meaning `[a, a]`).
fn pair(
    cfg: &Map<String, Value>,
    key: &str,
    default: Option<[usize; 2]>,
) -> Result<[usize; 2], String> {
    match cfg.get(key) {
        None => default.ok_or_else(|| format!("config `{key}` is missing")),
        Some(Value::Number(n)) => {
            let v = n.as_u64().ok_or_else(|| format!("config `{key}` = {n}"))? as usize;
            Ok([v, v])
        }
        Some(Value::Array(a)) if a.len() == 2 => {
            let get = |v: &Value| {
                v.as_u64()
                    .map(|x| x as usize)
                    .ok_or_else(|| format!("config `{key}` holds {v}"))
            };
            Ok([get(&a[0])?, get(&a[1])?])
        }
        Some(other) => Err(format!("config `{key}` = {other} is not a size or a pair")),
    }
}

fn boolean(cfg: &Map<String, Value>, key: &str, default: bool) -> Result<bool, String> {
    match cfg.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| format!("config `{key}` = {v} is not a boolean")),
    }
}

fn number(cfg: &Map<String, Value>, key: &str, default: f64) -> Result<f64, String> {
    match cfg.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| format!("config `{key}` = {v} is not a number")),
    }
}

fn mean_reduction(cfg: &Map<String, Value>) -> Result<(), String> {
    match cfg.get("reduction").map(|v| v.as_str()) {
        None | Some(Some("mean")) => Ok(()),
        Some(other) => Err(format!("unsupported reduction {other:?} (only mean)")),
    }
}

fn geometry_error(e: cnn_core::CnnError) -> String {
    format!("the case's geometry is rejected: {e}")
}

fn parse_op(obj: &Map<String, Value>) -> Result<LayerOp, String> {
    let op = obj
        .get("op")
        .and_then(Value::as_str)
        .ok_or("missing `op`")?;
    match op {
        "conv2d" => {
            let cfg = config(obj, &["stride", "padding", "dilation", "groups", "bias"])?;
            let [n, c_in, h, w] = shape(obj, "x_shape", 4)?[..] else {
                unreachable!()
            };
            let [c_out, _, kh, kw] = shape(obj, "w_shape", 4)?[..] else {
                unreachable!()
            };
            let geom = Conv2dGeometry {
                out_channels: c_out,
                kernel: [kh, kw],
                stride: pair(cfg, "stride", Some([1, 1]))?,
                padding: pair(cfg, "padding", Some([0, 0]))?,
                dilation: pair(cfg, "dilation", Some([1, 1]))?,
                groups: number(cfg, "groups", 1.0)? as usize,
            };
            let p = Conv2dParams::new(n, c_in, h, w, &geom).map_err(geometry_error)?;
            let y_shape = shape(obj, "y_shape", 4)?;
            if y_shape != [n, c_out, p.h_out, p.w_out] {
                return Err(format!(
                    "y_shape {y_shape:?} differs from the computed [{n}, {c_out}, {}, {}]",
                    p.h_out, p.w_out
                ));
            }
            let w_shape = shape(obj, "w_shape", 4)?;
            if w_shape[1] != c_in / geom.groups {
                return Err(format!(
                    "w_shape {w_shape:?} does not fit {c_in} input channels in {} groups",
                    geom.groups
                ));
            }
            Ok(LayerOp::Conv2d {
                p,
                bias: boolean(cfg, "bias", false)?,
            })
        }
        "max_pool2d" | "avg_pool2d" => {
            let cfg = config(
                obj,
                &[
                    "kernel",
                    "stride",
                    "padding",
                    "count_include_pad",
                    "ceil_mode",
                ],
            )?;
            let [n, c, h, w] = shape(obj, "x_shape", 4)?[..] else {
                unreachable!()
            };
            let kernel = pair(cfg, "kernel", None)?;
            let geom = Pool2dGeometry {
                kernel,
                stride: pair(cfg, "stride", Some(kernel))?,
                padding: pair(cfg, "padding", Some([0, 0]))?,
                ceil_mode: boolean(cfg, "ceil_mode", false)?,
                count_include_pad: boolean(cfg, "count_include_pad", true)?,
            };
            let p = Pool2dParams::new(n, c, h, w, &geom).map_err(geometry_error)?;
            let y_shape = shape(obj, "y_shape", 4)?;
            if y_shape != [n, c, p.h_out, p.w_out] {
                return Err(format!(
                    "y_shape {y_shape:?} differs from the computed [{n}, {c}, {}, {}]",
                    p.h_out, p.w_out
                ));
            }
            Ok(if op == "max_pool2d" {
                LayerOp::MaxPool2d(p)
            } else {
                LayerOp::AvgPool2d(p)
            })
        }
        "global_avg_pool2d" => {
            config(obj, &[])?;
            let [n, c, h, w] = shape(obj, "x_shape", 4)?[..] else {
                unreachable!()
            };
            Ok(LayerOp::GlobalAvgPool2d { n, c, hw: h * w })
        }
        "linear" => {
            let cfg = config(obj, &["bias"])?;
            let [n, inputs] = shape(obj, "x_shape", 2)?[..] else {
                unreachable!()
            };
            let [outputs, w_in] = shape(obj, "w_shape", 2)?[..] else {
                unreachable!()
            };
            if w_in != inputs {
                return Err(format!(
                    "w_shape [{outputs}, {w_in}] does not fit {inputs} input features"
                ));
            }
            Ok(LayerOp::Linear {
                n,
                inputs,
                outputs,
                bias: boolean(cfg, "bias", false)?,
            })
        }
        "activation" => {
            let kind = obj
                .get("config")
                .and_then(|c| c.get("kind"))
                .and_then(Value::as_str)
                .ok_or("activation config has no `kind`")?;
            let act = match kind {
                "relu" => {
                    config(obj, &["kind"])?;
                    Activation::Relu
                }
                "leaky_relu" => {
                    let cfg = config(obj, &["kind", "negative_slope"])?;
                    Activation::LeakyRelu {
                        negative_slope: number(cfg, "negative_slope", 0.01)? as f32,
                    }
                }
                "sigmoid" | "tanh" | "silu" => {
                    config(obj, &["kind"])?;
                    Activation::from_name(kind).map_err(|e| e.to_string())?
                }
                "gelu" | "gelu_tanh" => {
                    let cfg = config(obj, &["kind", "approximate"])?;
                    let approximate = cfg.get("approximate").map(|v| v.as_str());
                    let want = if kind == "gelu" { "none" } else { "tanh" };
                    if !(approximate.is_none() || approximate == Some(Some(want))) {
                        return Err(format!(
                            "{kind} with approximate {approximate:?} (expected {want:?})"
                        ));
                    }
                    if kind == "gelu" {
                        Activation::Gelu
                    } else {
                        Activation::GeluTanh
                    }
                }
                "elu" => {
                    let cfg = config(obj, &["kind", "alpha"])?;
                    Activation::Elu {
                        alpha: number(cfg, "alpha", 1.0)? as f32,
                    }
                }
                "softplus" => {
                    let cfg = config(obj, &["kind", "beta", "threshold"])?;
                    Activation::Softplus {
                        beta: number(cfg, "beta", 1.0)? as f32,
                        threshold: number(cfg, "threshold", 20.0)? as f32,
                    }
                }
                other => return Err(format!("unknown activation kind `{other}`")),
            };
            Ok(LayerOp::Activation(act))
        }
        "softmax_cross_entropy" => {
            let cfg = config(obj, &["label_smoothing", "reduction"])?;
            mean_reduction(cfg)?;
            let [n, classes] = shape(obj, "x_shape", 2)?[..] else {
                unreachable!()
            };
            let label_smoothing = number(cfg, "label_smoothing", 0.0)? as f32;
            Ok(LayerOp::SoftmaxCrossEntropy(CrossEntropyParams {
                n,
                classes,
                label_smoothing,
            }))
        }
        "mse_loss" => {
            let cfg = config(obj, &["reduction"])?;
            mean_reduction(cfg)?;
            Ok(LayerOp::MseLoss)
        }
        "batch_norm2d" => {
            let cfg = config(obj, &["momentum", "eps"])?;
            let [n, c, h, w] = shape(obj, "x_shape", 4)?[..] else {
                unreachable!()
            };
            Ok(LayerOp::BatchNorm2d(BatchNormParams {
                n,
                c,
                hw: h * w,
                eps: number(cfg, "eps", 1e-5)? as f32,
                momentum: number(cfg, "momentum", 0.1)? as f32,
            }))
        }
        other => Err(format!("unknown op `{other}`")),
    }
}

// ---- executors ----

/// Linear y = x w^T (+ b): x (n, inputs), w (outputs, inputs), y (n, outputs).
fn linear_y_params(n: usize, inputs: usize, outputs: usize) -> GemmParams {
    GemmParams {
        trans_b: true,
        ..GemmParams::new(n, outputs, inputs)
    }
}
/// gx = gy w: gy (n, outputs), w (outputs, inputs), gx (n, inputs).
fn linear_gx_params(n: usize, inputs: usize, outputs: usize) -> GemmParams {
    GemmParams::new(n, inputs, outputs)
}
/// gw += gy^T x: gy stored (n, outputs), x (n, inputs), gw (outputs, inputs).
fn linear_gw_params(n: usize, inputs: usize, outputs: usize) -> GemmParams {
    GemmParams {
        trans_a: true,
        beta: 1.0,
        ..GemmParams::new(outputs, inputs, n)
    }
}

fn reference_outputs(op: &LayerOp, d: &Inputs) -> Outputs {
    let mut out = Outputs::new();
    let (x, gy) = (d.get("x"), d.get("gy"));
    match op {
        LayerOp::Conv2d { p, bias } => {
            let b = bias.then(|| d.get("b"));
            out.insert("y", r::conv2d_forward(p, x, d.get("w"), b));
            out.insert("gx", r::conv2d_backward_input(p, gy, d.get("w")));
            out.insert("gw", r::conv2d_backward_weight(p, x, gy));
            if *bias {
                out.insert("gb", r::conv2d_backward_bias(p, gy));
            }
        }
        LayerOp::MaxPool2d(p) => {
            let (y, argmax) = r::max_pool2d_forward(p, x);
            out.insert("y", widen(&y));
            out.insert("gx", r::max_pool2d_backward(p, gy, &argmax));
        }
        LayerOp::AvgPool2d(p) => {
            out.insert("y", r::avg_pool2d_forward(p, x));
            out.insert("gx", r::avg_pool2d_backward(p, gy));
        }
        LayerOp::GlobalAvgPool2d { n, c, hw } => {
            out.insert("y", r::global_avg_pool_forward(*n, *c, *hw, x));
            out.insert("gx", r::global_avg_pool_backward(*n, *c, *hw, gy));
        }
        &LayerOp::Linear {
            n,
            inputs,
            outputs,
            bias,
        } => {
            let w = d.get("w");
            let mut y = r::gemm(
                &linear_y_params(n, inputs, outputs),
                x,
                w,
                &vec![0.0; n * outputs],
            );
            if bias {
                let b = d.get("b");
                for (i, v) in y.iter_mut().enumerate() {
                    *v += f64::from(b[i % outputs]);
                }
                out.insert(
                    "gb",
                    r::bias_backward(
                        &BiasParams {
                            outer: n,
                            channels: outputs,
                            inner: 1,
                        },
                        gy,
                    ),
                );
            }
            out.insert("y", y);
            out.insert(
                "gx",
                r::gemm(
                    &linear_gx_params(n, inputs, outputs),
                    gy,
                    w,
                    &vec![0.0; n * inputs],
                ),
            );
            out.insert(
                "gw",
                r::gemm(
                    &linear_gw_params(n, inputs, outputs),
                    gy,
                    x,
                    &vec![0.0; outputs * inputs],
                ),
            );
        }
        LayerOp::Activation(act) => {
            out.insert("y", r::activation_forward(*act, x));
            out.insert("gx", r::activation_backward(*act, x, gy));
        }
        LayerOp::SoftmaxCrossEntropy(p) => {
            let (loss, gx) = r::softmax_cross_entropy(p, x, &d.targets);
            out.insert("loss", vec![loss]);
            out.insert("gx", gx);
        }
        LayerOp::MseLoss => {
            let (loss, gx) = r::mse_loss(x, d.get("target"));
            out.insert("loss", vec![loss]);
            out.insert("gx", gx);
        }
        LayerOp::BatchNorm2d(p) => {
            let (gamma, beta) = (d.get("gamma"), d.get("beta"));
            let t = r::batch_norm2d_forward_train(
                p,
                x,
                gamma,
                beta,
                d.get("running_mean_in"),
                d.get("running_var_in"),
            );
            let g = r::batch_norm2d_backward(p, x, gamma, gy);
            // Eval mode reads the running stats as the f32 buffers hold them.
            let (rm, rv) = (r::to_f32(&t.running_mean), r::to_f32(&t.running_var));
            out.insert(
                "y_eval",
                r::batch_norm2d_forward_eval(p, x, gamma, beta, &rm, &rv),
            );
            out.insert("y_train", t.y);
            out.insert("running_mean_out", t.running_mean);
            out.insert("running_var_out", t.running_var);
            out.insert("gx", g.dx);
            out.insert("ggamma", g.dgamma);
            out.insert("gbeta", g.dbeta);
        }
    }
    out
}

fn backend_outputs<B: Backend>(be: &B, op: &LayerOp, d: &Inputs) -> Result<Outputs, String> {
    let mut out = Outputs::new();
    let x = up(be, d.get("x"))?;
    let gy = if d.arrays.contains_key("gy") {
        Some(up(be, d.get("gy"))?)
    } else {
        None
    };
    let gy_buf = || gy.as_ref().ok_or_else(|| "no gy".to_string());
    // Outputs start as NaN (overwritten ones) or zero (accumulated ones).
    match op {
        LayerOp::Conv2d { p, bias } => {
            let w = up(be, d.get("w"))?;
            let b = if *bias {
                Some(up(be, d.get("b"))?)
            } else {
                None
            };
            let mut y = filled(be, p.y_len(), f32::NAN)?;
            ctx(
                be.conv2d_forward(p, &x, &w, b.as_ref(), &mut y),
                "conv2d_forward",
            )?;
            let mut gx = filled(be, p.x_len(), f32::NAN)?;
            ctx(
                be.conv2d_backward_input(p, gy_buf()?, &w, &mut gx),
                "conv2d_backward_input",
            )?;
            let mut gw = filled(be, p.w_len(), 0.0)?;
            ctx(
                be.conv2d_backward_weight(p, &x, gy_buf()?, &mut gw),
                "conv2d_backward_weight",
            )?;
            out.insert("y", widen(&down(be, &y)?));
            out.insert("gx", widen(&down(be, &gx)?));
            out.insert("gw", widen(&down(be, &gw)?));
            if *bias {
                let mut gb = filled(be, p.c_out, 0.0)?;
                ctx(
                    be.conv2d_backward_bias(p, gy_buf()?, &mut gb),
                    "conv2d_backward_bias",
                )?;
                out.insert("gb", widen(&down(be, &gb)?));
            }
        }
        LayerOp::MaxPool2d(p) => {
            let mut y = filled(be, p.y_len(), f32::NAN)?;
            let mut argmax = ctx(be.alloc_indices(p.y_len()), "alloc_indices")?;
            ctx(
                be.max_pool2d_forward(p, &x, &mut y, &mut argmax),
                "max_pool2d_forward",
            )?;
            let mut gx = filled(be, p.x_len(), f32::NAN)?;
            ctx(
                be.max_pool2d_backward(p, gy_buf()?, &argmax, &mut gx),
                "max_pool2d_backward",
            )?;
            out.insert("y", widen(&down(be, &y)?));
            out.insert("gx", widen(&down(be, &gx)?));
        }
        LayerOp::AvgPool2d(p) => {
            let mut y = filled(be, p.y_len(), f32::NAN)?;
            ctx(be.avg_pool2d_forward(p, &x, &mut y), "avg_pool2d_forward")?;
            let mut gx = filled(be, p.x_len(), f32::NAN)?;
            ctx(
                be.avg_pool2d_backward(p, gy_buf()?, &mut gx),
                "avg_pool2d_backward",
            )?;
            out.insert("y", widen(&down(be, &y)?));
            out.insert("gx", widen(&down(be, &gx)?));
        }
        &LayerOp::GlobalAvgPool2d { n, c, hw } => {
            let mut y = filled(be, n * c, f32::NAN)?;
            ctx(
                be.global_avg_pool_forward(n, c, hw, &x, &mut y),
                "global_avg_pool_forward",
            )?;
            let mut gx = filled(be, n * c * hw, f32::NAN)?;
            ctx(
                be.global_avg_pool_backward(n, c, hw, gy_buf()?, &mut gx),
                "global_avg_pool_backward",
            )?;
            out.insert("y", widen(&down(be, &y)?));
            out.insert("gx", widen(&down(be, &gx)?));
        }
        &LayerOp::Linear {
            n,
            inputs,
            outputs,
            bias,
        } => {
            let w = up(be, d.get("w"))?;
            let mut y = filled(be, n * outputs, f32::NAN)?;
            ctx(
                be.gemm(&linear_y_params(n, inputs, outputs), &x, &w, &mut y),
                "gemm (linear forward)",
            )?;
            if bias {
                let b = up(be, d.get("b"))?;
                let bp = BiasParams {
                    outer: n,
                    channels: outputs,
                    inner: 1,
                };
                ctx(be.bias_add(&bp, &b, &mut y), "bias_add")?;
                let mut gb = filled(be, outputs, 0.0)?;
                ctx(be.bias_backward(&bp, gy_buf()?, &mut gb), "bias_backward")?;
                out.insert("gb", widen(&down(be, &gb)?));
            }
            let mut gx = filled(be, n * inputs, f32::NAN)?;
            ctx(
                be.gemm(
                    &linear_gx_params(n, inputs, outputs),
                    gy_buf()?,
                    &w,
                    &mut gx,
                ),
                "gemm (linear dx)",
            )?;
            let mut gw = filled(be, outputs * inputs, 0.0)?;
            ctx(
                be.gemm(
                    &linear_gw_params(n, inputs, outputs),
                    gy_buf()?,
                    &x,
                    &mut gw,
                ),
                "gemm (linear dw)",
            )?;
            out.insert("y", widen(&down(be, &y)?));
            out.insert("gx", widen(&down(be, &gx)?));
            out.insert("gw", widen(&down(be, &gw)?));
        }
        LayerOp::Activation(act) => {
            let len = d.get("x").len();
            let mut y = filled(be, len, f32::NAN)?;
            ctx(
                be.activation_forward(*act, &x, &mut y),
                "activation_forward",
            )?;
            let mut gx = filled(be, len, f32::NAN)?;
            ctx(
                be.activation_backward(*act, &x, &y, gy_buf()?, &mut gx),
                "activation_backward",
            )?;
            out.insert("y", widen(&down(be, &y)?));
            out.insert("gx", widen(&down(be, &gx)?));
        }
        LayerOp::SoftmaxCrossEntropy(p) => {
            let targets = up_indices(be, &d.targets)?;
            let mut gx = filled(be, p.n * p.classes, f32::NAN)?;
            let loss = ctx(
                be.softmax_cross_entropy(p, &x, &targets, &mut gx),
                "softmax_cross_entropy",
            )?;
            out.insert("loss", vec![f64::from(loss)]);
            out.insert("gx", widen(&down(be, &gx)?));
        }
        LayerOp::MseLoss => {
            let target = up(be, d.get("target"))?;
            let mut gx = filled(be, d.get("x").len(), f32::NAN)?;
            let loss = ctx(be.mse_loss(&x, &target, &mut gx), "mse_loss")?;
            out.insert("loss", vec![f64::from(loss)]);
            out.insert("gx", widen(&down(be, &gx)?));
        }
        LayerOp::BatchNorm2d(p) => {
            let len = d.get("x").len();
            let gamma = up(be, d.get("gamma"))?;
            let beta = up(be, d.get("beta"))?;
            let mut running_mean = up(be, d.get("running_mean_in"))?;
            let mut running_var = up(be, d.get("running_var_in"))?;
            let mut y = filled(be, len, f32::NAN)?;
            let mut save_mean = filled(be, p.c, f32::NAN)?;
            let mut save_invstd = filled(be, p.c, f32::NAN)?;
            ctx(
                be.batch_norm2d_forward_train(
                    p,
                    &x,
                    &gamma,
                    &beta,
                    &mut running_mean,
                    &mut running_var,
                    &mut y,
                    &mut save_mean,
                    &mut save_invstd,
                ),
                "batch_norm2d_forward_train",
            )?;
            let mut gx = filled(be, len, f32::NAN)?;
            let mut ggamma = filled(be, p.c, 0.0)?;
            let mut gbeta = filled(be, p.c, 0.0)?;
            ctx(
                be.batch_norm2d_backward(
                    p,
                    &x,
                    &gamma,
                    &save_mean,
                    &save_invstd,
                    gy_buf()?,
                    &mut gx,
                    &mut ggamma,
                    &mut gbeta,
                ),
                "batch_norm2d_backward",
            )?;
            let mut y_eval = filled(be, len, f32::NAN)?;
            ctx(
                be.batch_norm2d_forward_eval(
                    p,
                    &x,
                    &gamma,
                    &beta,
                    &running_mean,
                    &running_var,
                    &mut y_eval,
                ),
                "batch_norm2d_forward_eval",
            )?;
            out.insert("y_train", widen(&down(be, &y)?));
            out.insert("gx", widen(&down(be, &gx)?));
            out.insert("ggamma", widen(&down(be, &ggamma)?));
            out.insert("gbeta", widen(&down(be, &gbeta)?));
            out.insert("running_mean_out", widen(&down(be, &running_mean)?));
            out.insert("running_var_out", widen(&down(be, &running_var)?));
            out.insert("y_eval", widen(&down(be, &y_eval)?));
        }
    }
    Ok(out)
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

    fn one_case(op: &str, config: Value) -> Value {
        serde_json::json!({ "name": "t", "op": op, "config": config })
    }

    #[test]
    fn unknown_ops_kinds_and_keys_are_errors() {
        let bad = [
            one_case("conv3d", serde_json::json!({})),
            one_case("activation", serde_json::json!({ "kind": "mish" })),
            one_case(
                "activation",
                serde_json::json!({ "kind": "relu", "inplace": true }),
            ),
            one_case("mse_loss", serde_json::json!({ "reduction": "sum" })),
            one_case(
                "linear",
                serde_json::json!({ "bias": true, "dtype": "f16" }),
            ),
        ];
        for case in bad {
            let obj = case.as_object().unwrap();
            assert!(parse_op(obj).is_err(), "{case}");
        }
        let extra = serde_json::json!({
            "name": "t", "op": "mse_loss", "config": {}, "x_shape": [1, 1],
            "x": [1.0], "target": [0.0], "loss": 1.0, "gx": [2.0], "gx_extra": [0.0]
        });
        let e = run_case(&extra, 0.0, 0.0, &|op, d| Ok(reference_outputs(op, d))).unwrap_err();
        assert!(e.contains("gx_extra"), "{e}");
    }
}
