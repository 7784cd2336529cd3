//! PyTorch's optimizer trajectories and schedule rates
//! (`testdata/golden/{optim,schedules}.json`, or `$CNN_GOLDEN_DIR`) replayed
//! through this crate on the CPU backend, within 1e-5 abs + 1e-4 rel at
//! every step. Every case must run: an unknown optimizer, hyperparameter or
//! schedule kind fails the test.

use std::path::Path;

use cnn_core::{Param, ParamKind, Tensor};
use cnn_cpu::CpuBackend;
use cnn_optim::{Optimizer, OptimizerConfig, ScheduleConfig, Scheduler};
use cnn_testing::{check_close, golden_dir};
use serde_json::Value;

const ABS: f64 = 1e-5;
const REL: f64 = 1e-4;

fn load(dir: &Path, file: &str) -> Value {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

use cnn_testing::golden_floats as floats;

/// The optim.json problem: loss = sum c (w - t)^2 + q sum w^4.
struct Problem {
    c: Vec<f64>,
    t: Vec<f64>,
    q: f64,
    w0: Vec<f64>,
}

impl Problem {
    fn parse(v: &Value) -> Result<Self, String> {
        Ok(Problem {
            c: floats(&v["c"], "c")?,
            t: floats(&v["t"], "t")?,
            q: v["q"].as_f64().ok_or("`q` is not a number")?,
            w0: floats(&v["w0"], "w0")?,
        })
    }

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

fn run_optim_case(backend: &CpuBackend, problem: &Problem, case: &Value) -> Result<(), String> {
    let class = case["optimizer"].as_str().ok_or("no `optimizer`")?;
    let mut config = case["hyper"]
        .as_object()
        .cloned()
        .ok_or("no `hyper` object")?;
    config.insert("kind".into(), class.into());
    let config = OptimizerConfig::from_json(&Value::Object(config)).map_err(|e| e.to_string())?;
    let mut opt = Optimizer::<CpuBackend>::new(config).map_err(|e| e.to_string())?;

    let steps = case["steps"].as_u64().ok_or("no `steps`")? as usize;
    let trajectory = case["trajectory"].as_array().ok_or("no `trajectory`")?;
    if trajectory.len() != steps {
        return Err(format!(
            "{} trajectory rows for {steps} steps",
            trajectory.len()
        ));
    }
    let w0: Vec<f32> = problem.w0.iter().map(|&x| x as f32).collect();
    let n = w0.len();
    let value = Tensor::from_slice(backend, vec![n], &w0).map_err(|e| e.to_string())?;
    let mut param =
        Param::new(backend, "w", ParamKind::Weight, value).map_err(|e| e.to_string())?;
    for (k, row) in trajectory.iter().enumerate() {
        let w = param.value.to_vec(backend).map_err(|e| e.to_string())?;
        let g = problem.grad(&w);
        param
            .grad
            .copy_from_slice(backend, &g)
            .map_err(|e| e.to_string())?;
        opt.step(backend, &mut [&mut param])
            .map_err(|e| format!("step {k}: {e}"))?;
        let w = param.value.to_vec(backend).map_err(|e| e.to_string())?;
        let expected = floats(row, "trajectory row")?;
        check_close(&w, &expected, ABS, REL, &format!("w after step {}", k + 1))?;
    }
    Ok(())
}

fn run_schedule_case(case: &Value) -> Result<(), String> {
    let base_lr = case["base_lr"].as_f64().ok_or("no `base_lr`")?;
    let config = ScheduleConfig::from_json(&case["schedule"]).map_err(|e| e.to_string())?;
    let mut scheduler = Scheduler::new(config).map_err(|e| e.to_string())?;
    let expected = floats(&case["lr_per_step"], "lr_per_step")?;
    let metrics = match case.get("metric_per_step") {
        Some(m) => Some(floats(m, "metric_per_step")?),
        None => None,
    };
    let mut got = Vec::with_capacity(expected.len());
    for k in 0..expected.len() {
        got.push(scheduler.lr(base_lr));
        match &metrics {
            Some(m) => scheduler.step_with_metric(*m.get(k).ok_or("metric_per_step too short")?),
            None => scheduler.step(),
        }
    }
    check_close(&got, &expected, ABS, REL, "lr per step")
}

#[test]
fn golden_optim_and_schedules() {
    let dir = golden_dir();
    let backend = CpuBackend::with_threads(1).expect("cpu backend");
    let mut failures = Vec::new();

    let optim = load(&dir, "optim.json");
    let problem = Problem::parse(&optim["problem"]).expect("optim.json problem");
    let cases = optim["cases"].as_array().expect("optim.json cases");
    for case in cases {
        let name = case["name"].as_str().unwrap_or("<unnamed>");
        if let Err(e) = run_optim_case(&backend, &problem, case) {
            failures.push(format!("optim case `{name}`: {e}"));
        }
    }
    println!("golden optim: {} cases checked", cases.len());

    let schedules = load(&dir, "schedules.json");
    let cases = schedules["cases"].as_array().expect("schedules.json cases");
    for case in cases {
        let name = case["name"].as_str().unwrap_or("<unnamed>");
        if let Err(e) = run_schedule_case(case) {
            failures.push(format!("schedule case `{name}`: {e}"));
        }
    }
    println!("golden schedules: {} cases checked", cases.len());

    assert!(
        failures.is_empty(),
        "{} golden failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The options and schedule modes optim.json and schedules.json leave out
/// (`testdata/golden/optim_gaps.json`, from `xtask/golden_option_gaps.py`):
/// mutation testing found their branches reached by no test. Read from
/// `$CNN_GOLDEN_DIR` when it holds the file, else from the repository's
/// `testdata/golden/` (the file is this repository's, not the shared set's).
#[test]
fn golden_option_gaps() {
    let mut dir = golden_dir();
    if !dir.join("optim_gaps.json").is_file() {
        dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden");
    }
    let backend = CpuBackend::with_threads(1).expect("cpu backend");
    let gaps = load(&dir, "optim_gaps.json");
    let problem = Problem::parse(&gaps["problem"]).expect("optim_gaps.json problem");
    let mut failures = Vec::new();
    let cases = gaps["cases"].as_array().expect("optim_gaps.json cases");
    for case in cases {
        let name = case["name"].as_str().unwrap_or("<unnamed>");
        if let Err(e) = run_optim_case(&backend, &problem, case) {
            failures.push(format!("optim case `{name}`: {e}"));
        }
    }
    let schedules = gaps["schedule_cases"]
        .as_array()
        .expect("optim_gaps.json schedule_cases");
    for case in schedules {
        let name = case["name"].as_str().unwrap_or("<unnamed>");
        if let Err(e) = run_schedule_case(case) {
            failures.push(format!("schedule case `{name}`: {e}"));
        }
    }
    assert_eq!(
        cases.len() + schedules.len(),
        24,
        "cases in optim_gaps.json"
    );
    assert!(
        failures.is_empty(),
        "{} golden failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
