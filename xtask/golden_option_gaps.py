#!/usr/bin/env python3
"""Golden trajectories for the optimizer options and schedule modes that
testdata/golden/{optim,schedules}.json leave out, found by mutation testing
(docs/validation.md, "Mutation testing"): mutants of these branches lived
because no test reached them. Read by crates/cnn-optim/tests/golden.rs
(`golden_option_gaps`):

    /work/torchvenv/bin/python xtask/golden_option_gaps.py [OUT]

writes testdata/golden/optim_gaps.json (or OUT), in optim.json's and
schedules.json's formats: the same problem as optim.json (read from it),

    loss(w) = sum_i c_i (w_i - t_i)^2 + q sum_i w_i^4,

run in float64 by torch.optim for 40 steps per case (the weights after
every step), and torch.optim.lr_scheduler's rate before every step for 30
steps (ReduceLROnPlateau stepped with the listed metric).
"""

import json
import pathlib
import sys

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
STEPS = 40
SCHEDULE_STEPS = 30
# The Rust test's tolerance (crates/cnn-optim/tests/golden.rs).
ABS = 1e-5
REL = 1e-4

OPTIMIZERS = [
    ("sgd_nesterov_decay", "SGD",
     {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("adam_amsgrad_decay_betas", "Adam",
     {"lr": 0.03, "betas": [0.8, 0.95], "weight_decay": 0.05, "amsgrad": True}),
    ("adamw_amsgrad", "AdamW", {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True}),
    ("rmsprop_momentum", "RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ("rmsprop_centered_decay", "RMSprop",
     {"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.1, "centered": True}),
    ("adagrad_initial_accumulator", "Adagrad",
     {"lr": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-6}),
    ("adadelta_rho_decay", "Adadelta",
     {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.1}),
    ("nadam_decay_momentum_decay", "NAdam",
     {"lr": 0.02, "betas": [0.8, 0.95], "momentum_decay": 0.01, "weight_decay": 0.1}),
    ("nadam_decoupled", "NAdam",
     {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("radam_decay_betas", "RAdam",
     {"lr": 0.05, "betas": [0.8, 0.95], "weight_decay": 0.1}),
    ("radam_decoupled", "RAdam",
     {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("adamax_decay_betas", "Adamax",
     {"lr": 0.05, "betas": [0.8, 0.95], "eps": 1e-6, "weight_decay": 0.1}),
]

S = torch.optim.lr_scheduler
SCHEDULES = [
    ("constant", {"kind": "constant", "factor": 1.0 / 3.0, "total_iters": 5},
     lambda o: S.ConstantLR(o, factor=1.0 / 3.0, total_iters=5)),
    ("linear_decay", {"kind": "linear", "start_factor": 1.0, "end_factor": 0.1, "total_iters": 8},
     lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=8)),
    ("polynomial_linear", {"kind": "polynomial", "total_iters": 10, "power": 1.0},
     lambda o: S.PolynomialLR(o, total_iters=10, power=1.0)),
    ("multistep_repeated", {"kind": "multistep", "milestones": [3, 3, 8], "gamma": 0.5},
     lambda o: S.MultiStepLR(o, milestones=[3, 3, 8], gamma=0.5)),
    ("cosine_restarts_constant_period",
     {"kind": "cosine_warm_restarts", "t_0": 4, "t_mult": 1, "eta_min": 0.01},
     lambda o: S.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=1, eta_min=0.01)),
    ("cyclic_asymmetric",
     {"kind": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 3,
      "step_size_down": 6, "mode": "triangular"},
     lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=6,
                          mode="triangular", cycle_momentum=False)),
    ("cyclic_exp_range",
     {"kind": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 4,
      "mode": "exp_range", "gamma": 0.9},
     lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4, mode="exp_range",
                          gamma=0.9, cycle_momentum=False)),
    ("onecycle_linear",
     {"kind": "one_cycle", "max_lr": 1.0, "total_steps": 30, "pct_start": 0.25,
      "anneal": "linear", "div_factor": 10.0, "final_div_factor": 100.0},
     lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=30, pct_start=0.25,
                            anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0,
                            cycle_momentum=False)),
    ("onecycle_three_phase",
     {"kind": "one_cycle", "max_lr": 1.0, "total_steps": 30, "pct_start": 0.3,
      "anneal": "cos", "three_phase": True},
     lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=30, pct_start=0.3,
                            three_phase=True, cycle_momentum=False)),
]

# ReduceLROnPlateau: (name, config, metrics); torch takes the same keywords.
PLATEAU_METRICS_UP = [0.1, 0.2, 0.25, 0.24, 0.26, 0.26, 0.255, 0.3, 0.3, 0.3,
                      0.31, 0.305, 0.3, 0.3, 0.35, 0.35, 0.35, 0.35, 0.35, 0.35,
                      0.36, 0.36, 0.36, 0.36, 0.36, 0.36, 0.36, 0.36, 0.36, 0.36]
PLATEAU_METRICS_DOWN = [1.0, 0.9, 0.85, 0.86, 0.84, 0.84, 0.845, 0.85, 0.85, 0.83,
                        0.83, 0.84, 0.84, 0.84, 0.84, 0.8, 0.81, 0.81, 0.81, 0.81,
                        0.795, 0.81, 0.81, 0.81, 0.81, 0.81, 0.81, 0.81, 0.81, 0.81]
PLATEAUS = [
    ("plateau_max_rel",
     {"mode": "max", "factor": 0.5, "patience": 1, "threshold": 0.01,
      "threshold_mode": "rel", "cooldown": 0, "min_lr": 0.002},
     PLATEAU_METRICS_UP),
    ("plateau_max_abs",
     {"mode": "max", "factor": 0.3, "patience": 2, "threshold": 0.02,
      "threshold_mode": "abs", "cooldown": 2, "min_lr": 0.0},
     PLATEAU_METRICS_UP),
    ("plateau_min_abs",
     {"mode": "min", "factor": 0.5, "patience": 0, "threshold": 0.02,
      "threshold_mode": "abs", "cooldown": 1, "min_lr": 0.01},
     PLATEAU_METRICS_DOWN),
]


def grad(problem, w):
    c = torch.tensor(problem["c"], dtype=torch.float64)
    t = torch.tensor(problem["t"], dtype=torch.float64)
    # The Rust test computes the gradient in float64 from the float32
    # weights and rounds it to float32, as the float32 check below does.
    return 2.0 * c * (w - t) + 4.0 * problem["q"] * w ** 3


def trajectory(problem, cls, hyper, dtype):
    w = torch.tensor(problem["w0"], dtype=dtype, requires_grad=True)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()}
    opt = getattr(torch.optim, cls)([w], **kwargs)
    rows = []
    for _ in range(STEPS):
        opt.zero_grad()
        w.grad = grad(problem, w.detach().double()).to(dtype)
        opt.step()
        rows.append(w.detach().double().clone())
    return rows


def optimizer_case(problem, name, cls, hyper):
    rows = trajectory(problem, cls, hyper, torch.float64)
    # The test runs in float32: a case whose float32 trajectory (torch's
    # own) leaves the test's tolerance of the float64 one is too sensitive
    # to rounding to be a reference (NAdam at lr 0.05 with momentum_decay
    # 0.01 drifts 1.8e-4 by step 30; cnn follows torch's float32 exactly).
    for k, (a, b) in enumerate(zip(rows, trajectory(problem, cls, hyper, torch.float32))):
        excess = ((a - b).abs() - ABS - REL * a.abs()).max().item()
        if excess > 0:
            raise SystemExit(f"{name}: float32 leaves the tolerance at step {k + 1}")
    return {"name": name, "optimizer": cls, "hyper": hyper, "steps": STEPS,
            "trajectory": [r.tolist() for r in rows]}


def rates(make, metrics=None):
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    sched = make(opt)
    out = []
    for k in range(SCHEDULE_STEPS):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[k])
    return out


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "testdata/golden/optim_gaps.json"
    problem = json.loads((ROOT / "testdata/golden/optim.json").read_text())["problem"]
    cases = [optimizer_case(problem, *c) for c in OPTIMIZERS]
    schedules = [
        {"name": name, "base_lr": 0.1, "schedule": config, "lr_per_step": rates(make)}
        for name, config, make in SCHEDULES
    ]
    for name, config, metrics in PLATEAUS:
        def make(o, config=config):
            return S.ReduceLROnPlateau(o, **config)
        schedules.append({
            "name": name,
            "base_lr": 0.1,
            "schedule": {"kind": "reduce_on_plateau", **config},
            "lr_per_step": rates(make, metrics),
            "metric_per_step": metrics,
        })
    doc = {
        "generator": f"torch.optim {torch.__version__}, float64 (xtask/golden_option_gaps.py)",
        "problem": problem,
        "cases": cases,
        "schedule_cases": schedules,
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}: {len(cases)} optimizer cases, {len(schedules)} schedule cases")


if __name__ == "__main__":
    main()
