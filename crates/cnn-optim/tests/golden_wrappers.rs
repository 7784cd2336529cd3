//! The reference implementations' trajectories of Schedule-Free AdamW and
//! SGD (`schedulefree`), Lookahead and SAM (`pytorch-optimizer`) and
//! adaptive SAM (davda54/sam's rule, checked against `pytorch-optimizer`)
//! around two inner optimizers each (`testdata/golden/optim_wrappers.json`,
//! written by `xtask/golden_optim_wrappers.py`; `$CNN_GOLDEN_DIR` when it
//! holds the file) replayed through this crate on the CPU backend, within
//! 1e-5 abs + 1e-4 rel at every step: the training weights after each step
//! and, for schedule-free, the evaluation point `x` that the reference's
//! `eval()` gives. Every case must run: an unknown optimizer, wrapper or
//! hyperparameter fails the test.

use std::path::PathBuf;

use cnn_core::{Param, ParamKind, Tensor};
use cnn_cpu::CpuBackend;
use cnn_optim::{LookaheadConfig, Optimizer, OptimizerConfig, SamConfig};
use cnn_testing::{check_close, golden_dir};
use serde_json::Value;

const ABS: f64 = 1e-5;
const REL: f64 = 1e-4;
const FILE: &str = "optim_wrappers.json";

fn path() -> PathBuf {
    let given = golden_dir().join(FILE);
    if given.is_file() {
        return given;
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/golden"
    ))
    .join(FILE)
}

use cnn_testing::golden_floats as floats;

/// loss = sum c (w - t)^2 + q sum w^4, as in optim.json.
struct Problem {
    c: Vec<f64>,
    t: Vec<f64>,
    q: f64,
    w0: Vec<f64>,
}

impl Problem {
    fn grad(&self, w: &[f32]) -> Vec<f32> {
        w.iter()
            .zip(self.c.iter().zip(&self.t))
            .map(|(&w, (&c, &t))| {
                let w = w as f64;
                (2.0 * c * (w - t) + 4.0 * self.q * w * w * w) as f32
            })
            .collect()
    }
}

fn json_config<T: serde::de::DeserializeOwned>(v: &Value, skip: &str) -> Result<T, String> {
    let mut obj = v.as_object().cloned().ok_or("not an object")?;
    obj.remove(skip);
    serde_json::from_value(Value::Object(obj)).map_err(|e| e.to_string())
}

fn run_case(b: &CpuBackend, problem: &Problem, case: &Value) -> Result<usize, String> {
    let kind = case["optimizer"].as_str().ok_or("no `optimizer`")?;
    let mut config = case["hyper"].as_object().cloned().ok_or("no `hyper`")?;
    config.insert("kind".into(), kind.into());
    let config = OptimizerConfig::from_json(&Value::Object(config)).map_err(|e| e.to_string())?;
    let mut opt = Optimizer::<CpuBackend>::new(config).map_err(|e| e.to_string())?;
    let mut sam = false;
    if let Some(w) = case.get("wrapper") {
        match w["kind"].as_str() {
            Some("lookahead") => {
                let c: LookaheadConfig = json_config(w, "kind")?;
                opt = opt.with_lookahead(c).map_err(|e| e.to_string())?;
            }
            Some("sam") => {
                let c: SamConfig = json_config(w, "kind")?;
                opt = opt.with_sam(c).map_err(|e| e.to_string())?;
                sam = true;
            }
            other => return Err(format!("unknown wrapper {other:?}")),
        }
    }
    let trajectory = case["trajectory"].as_array().ok_or("no `trajectory`")?;
    let steps = case["steps"].as_u64().ok_or("no `steps`")? as usize;
    let eval = case.get("eval_trajectory").and_then(Value::as_array);
    if trajectory.len() != steps || eval.is_some_and(|e| e.len() != steps) {
        return Err(format!("trajectory lengths do not match {steps} steps"));
    }
    if eval.is_some() != opt.config().has_eval_point() {
        return Err("an eval_trajectory exactly for the schedule-free cases".into());
    }
    let w0: Vec<f32> = problem.w0.iter().map(|&x| x as f32).collect();
    let value = Tensor::from_slice(b, vec![w0.len()], &w0).map_err(|e| e.to_string())?;
    let mut p = Param::new(b, "w", ParamKind::Weight, value).map_err(|e| e.to_string())?;
    let e = |e: cnn_optim::OptimError| e.to_string();
    let mut checked = 0;
    for (k, row) in trajectory.iter().enumerate() {
        let set_grad = |p: &mut Param<CpuBackend>| -> Result<(), String> {
            let w = p.value.to_vec(b).map_err(|e| e.to_string())?;
            p.grad
                .copy_from_slice(b, &problem.grad(&w))
                .map_err(|e| e.to_string())
        };
        set_grad(&mut p)?;
        if sam {
            opt.sam_perturb(b, &mut [&mut p]).map_err(e)?;
            set_grad(&mut p)?;
        }
        opt.step(b, &mut [&mut p])
            .map_err(|err| format!("step {k}: {err}"))?;
        let y = p.value.to_vec(b).map_err(|e| e.to_string())?;
        check_close(
            &y,
            &floats(row, "trajectory")?,
            ABS,
            REL,
            &format!("w after step {}", k + 1),
        )?;
        checked += 1;
        if let Some(eval) = eval {
            opt.set_eval_point([&mut p], true).map_err(e)?;
            let x = p.value.to_vec(b).map_err(|e| e.to_string())?;
            let what = format!("eval point x after step {}", k + 1);
            check_close(&x, &floats(&eval[k], "eval_trajectory")?, ABS, REL, &what)?;
            opt.set_eval_point([&mut p], false).map_err(e)?;
            let back = p.value.to_vec(b).map_err(|e| e.to_string())?;
            if back != y {
                return Err(format!("step {}: eval() then train() moved y", k + 1));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

#[test]
fn golden_schedule_free_lookahead_and_sam() {
    let path = path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("optim_wrappers.json is JSON");
    let pr = &doc["problem"];
    let problem = Problem {
        c: floats(&pr["c"], "c").unwrap(),
        t: floats(&pr["t"], "t").unwrap(),
        q: pr["q"].as_f64().expect("q"),
        w0: floats(&pr["w0"], "w0").unwrap(),
    };
    let backend = CpuBackend::with_threads(1).expect("cpu backend");
    let cases = doc["cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    let mut points = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap_or("<unnamed>");
        match run_case(&backend, &problem, case) {
            Ok(n) => points += n,
            Err(e) => failures.push(format!("case `{name}`: {e}")),
        }
    }
    println!(
        "golden optimizer wrappers ({}): {} cases, {points} points checked",
        path.display(),
        cases.len()
    );
    assert!(cases.len() >= 11, "expected at least 11 cases");
    let adaptive: Vec<&str> = cases
        .iter()
        .filter(|c| c["wrapper"]["adaptive"] == Value::Bool(true))
        .map(|c| c["optimizer"].as_str().unwrap_or(""))
        .collect();
    assert!(
        adaptive.len() >= 2 && adaptive.iter().any(|o| *o != adaptive[0]),
        "expected adaptive SAM around two inner optimizers, got {adaptive:?}"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
