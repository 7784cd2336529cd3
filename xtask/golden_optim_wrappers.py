"""Golden trajectories of Schedule-Free AdamW/SGD, Lookahead, SAM and
adaptive SAM from their reference implementations, for
crates/cnn-optim/tests/golden_wrappers.rs.

usage: /work/torchvenv/bin/python xtask/golden_optim_wrappers.py [OUT.json]
(default testdata/golden/optim_wrappers.json)

References: PyPI `schedulefree` (AdamWScheduleFree, SGDScheduleFree, with
their train()/eval() switching) and PyPI `pytorch-optimizer` (Lookahead,
SAM: Foret et al.'s rule as in davda54/sam, perturb_eps 1e-12). Everything
runs in float64 from float32-exact inputs on the problem of optim.json:

    loss(w) = sum_i c_i (w_i - t_i)^2 + q sum_i w_i^4
    grad_i  = 2 c_i (w_i - t_i) + 4 q w_i^3

Each case: `trajectory[k]` = the weights after step k+1 (for schedule-free,
the training point y, the parameter in train mode), and for schedule-free
`eval_trajectory[k]` = the averaged point x that eval() puts in the
parameter after step k+1. SAM's second gradient is taken at the perturbed
weights, from the same closed-form loss.

Adaptive SAM (ASAM, Kwon et al. 2021) is written out below from
davda54/sam's `adaptive=True` rule (a few lines: the norm of |w| * g over
every parameter, the perturbation w^2 * g * rho / (norm + 1e-12)), and
each of its trajectories is checked against pytorch-optimizer's
`SAM(adaptive=True)` before it is written (within 1e-6 relative: that
implementation sums the squared norms in float32).
"""
import json
import sys

import schedulefree
import torch
from pytorch_optimizer import SAM, Lookahead

torch.set_default_dtype(torch.float64)

PROBLEM = {
    "description": "loss(w) = sum_i c_i*(w_i - t_i)^2 + q*sum_i w_i^4; "
    "grad_i = 2*c_i*(w_i - t_i) + 4*q*w_i^3",
    "c": [0.5, 1.0, 2.0, 0.1, 3.0, 0.7, 1.5, 0.2],
    "t": [1.0, -2.0, 0.5, 3.0, -0.5, 0.0, 2.5, -1.5],
    "q": 0.1,
    "w0": [0.0, 0.5, -1.0, 1.0, 2.0, -2.0, 0.3, 0.8],
}
C = torch.tensor(PROBLEM["c"])
T = torch.tensor(PROBLEM["t"])
Q = PROBLEM["q"]


def grad(w):
    return 2 * C * (w - T) + 4 * Q * w**3


def param():
    return torch.nn.Parameter(torch.tensor(PROBLEM["w0"]))


def set_grad(p):
    with torch.no_grad():
        p.grad = grad(p.detach().clone())


def schedule_free_case(name, kind, hyper, steps):
    p = param()
    cls = {"schedule_free_adamw": schedulefree.AdamWScheduleFree,
           "schedule_free_sgd": schedulefree.SGDScheduleFree}[kind]
    opt = cls([p], foreach=False, **hyper)
    opt.train()
    ys, xs = [], []
    for _ in range(steps):
        set_grad(p)
        opt.step()
        ys.append(p.detach().tolist())
        opt.eval()
        xs.append(p.detach().tolist())
        opt.train()
    return {"name": name, "optimizer": kind, "hyper": hyper, "steps": steps,
            "trajectory": ys, "eval_trajectory": xs}


INNER = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}


def lookahead_case(name, inner, inner_hyper, wrapper, steps):
    p = param()
    opt = Lookahead(INNER[inner]([p], **inner_hyper), k=wrapper["k"], alpha=wrapper["alpha"])
    ws = []
    for _ in range(steps):
        set_grad(p)
        opt.step()
        ws.append(p.detach().tolist())
    return {"name": name, "optimizer": inner, "hyper": inner_hyper,
            "wrapper": dict(kind="lookahead", **wrapper), "steps": steps, "trajectory": ws}


def sam_case(name, inner, inner_hyper, wrapper, steps):
    p = param()
    opt = SAM([p], INNER[inner], rho=wrapper["rho"], foreach=False, **inner_hyper)
    ws = []
    for _ in range(steps):
        set_grad(p)
        opt.first_step(zero_grad=True)
        set_grad(p)  # the gradient at the perturbed weights
        opt.second_step(zero_grad=True)
        ws.append(p.detach().tolist())
    return {"name": name, "optimizer": inner, "hyper": inner_hyper,
            "wrapper": dict(kind="sam", **wrapper), "steps": steps, "trajectory": ws}


class AdaptiveSAM:
    """davda54/sam's SAM with adaptive=True (Kwon et al.'s ASAM), its
    first_step/second_step as there, around any inner optimizer."""

    def __init__(self, params, base, rho, **inner):
        self.params = list(params)
        self.rho = rho
        self.base = base(self.params, **inner)
        self.old = {}

    @torch.no_grad()
    def grad_norm(self):
        return torch.norm(torch.stack([(torch.abs(p) * p.grad).norm(p=2)
                                       for p in self.params if p.grad is not None]), p=2)

    @torch.no_grad()
    def first_step(self):
        scale = self.rho / (self.grad_norm() + 1e-12)
        for p in self.params:
            self.old[p] = p.data.clone()
            p.add_(torch.pow(p, 2) * p.grad * scale.to(p))

    @torch.no_grad()
    def second_step(self):
        for p in self.params:
            p.data = self.old[p]
        self.base.step()


def asam_case(name, inner, inner_hyper, wrapper, steps):
    p = param()
    opt = AdaptiveSAM([p], INNER[inner], rho=wrapper["rho"], **inner_hyper)
    ws = []
    for _ in range(steps):
        set_grad(p)
        opt.first_step()
        set_grad(p)  # the gradient at the perturbed weights
        opt.second_step()
        ws.append(p.detach().tolist())
    # The same steps through pytorch-optimizer's SAM(adaptive=True).
    q = param()
    ref = SAM([q], INNER[inner], rho=wrapper["rho"], adaptive=True, foreach=False, **inner_hyper)
    for k in range(steps):
        set_grad(q)
        ref.first_step(zero_grad=True)
        set_grad(q)
        ref.second_step(zero_grad=True)
        # pytorch-optimizer squares and sums the norms in float32 (its
        # get_global_gradient_norm), so the two agree to float32 rounding
        # of the scale, not to float64's.
        diff = max(abs(a - b) / (1 + abs(b)) for a, b in zip(q.detach().tolist(), ws[k]))
        assert diff < 1e-6, f"{name}: step {k + 1} differs from pytorch-optimizer by {diff}"
    return {"name": name, "optimizer": inner, "hyper": inner_hyper,
            "wrapper": dict(kind="sam", adaptive=True, **wrapper), "steps": steps,
            "trajectory": ws}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "testdata/golden/optim_wrappers.json"
    cases = [
        schedule_free_case("schedule_free_adamw_defaults", "schedule_free_adamw",
                           {"lr": 0.05}, 15),
        schedule_free_case("schedule_free_adamw_warmup_decay", "schedule_free_adamw",
                           {"lr": 0.05, "betas": [0.8, 0.99], "eps": 1e-6,
                            "weight_decay": 0.05, "warmup_steps": 4}, 15),
        schedule_free_case("schedule_free_adamw_r_power", "schedule_free_adamw",
                           {"lr": 0.03, "warmup_steps": 3, "r": 1.0,
                            "weight_lr_power": 1.0}, 12),
        schedule_free_case("schedule_free_sgd_defaults", "schedule_free_sgd",
                           {"lr": 0.05}, 15),
        schedule_free_case("schedule_free_sgd_warmup_decay", "schedule_free_sgd",
                           {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.01,
                            "warmup_steps": 5, "r": 0.5, "weight_lr_power": 1.5}, 15),
        lookahead_case("lookahead_sgd_momentum", "SGD", {"lr": 0.05, "momentum": 0.9},
                       {"k": 5, "alpha": 0.5}, 17),
        lookahead_case("lookahead_adam", "Adam", {"lr": 0.05},
                       {"k": 3, "alpha": 0.6}, 14),
        sam_case("sam_sgd_momentum", "SGD", {"lr": 0.05, "momentum": 0.9},
                 {"rho": 0.05}, 15),
        sam_case("sam_adam", "Adam", {"lr": 0.05, "weight_decay": 0.01},
                 {"rho": 0.2}, 15),
        asam_case("asam_sgd_momentum", "SGD", {"lr": 0.05, "momentum": 0.9},
                  {"rho": 0.5}, 15),
        asam_case("asam_adamw", "AdamW", {"lr": 0.05, "weight_decay": 0.05},
                  {"rho": 1.0}, 15),
    ]
    doc = {
        "generator": f"xtask/golden_optim_wrappers.py, torch {torch.__version__}, "
        "schedulefree and pytorch-optimizer, float64",
        "problem": PROBLEM,
        "cases": cases,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
