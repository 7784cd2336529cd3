#!/usr/bin/env python3
"""Golden trajectories of the optimizers beyond torch.optim's classic nine,
from their reference implementations, for crates/cnn-optim/tests/
golden_modern.rs:

    /work/torchvenv/bin/python xtask/golden_optim_modern.py [OUT]

writes testdata/golden/optim_modern.json (or OUT). References:
torch.optim.ASGD, Rprop, Adafactor, Muon (and AdamW, Muon's documented
fallback for parameters that are not matrices); lion_pytorch.Lion;
pytorch_optimizer.Lamb and LARS. Every case runs in float32 (cnn's storage
type; Adafactor's default eps1 is float32's machine epsilon only there) on
one parameter of a given shape, for the loss

    loss(w) = sum_i c_i (w_i - t_i)^2 + q sum_i w_i^4

whose gradient is computed in float64 from the float32 weights and rounded
to float32, as the Rust test does. Each case lists the weights after every
step, flat in row-major order.

Muon: torch runs its Newton-Schulz iteration in bfloat16; cnn runs it in
float32. The reference here is torch's Muon with that one function
replaced by the same iteration in float32 (_zeropower_via_newtonschulz
below, torch's code without the bfloat16 cast). A convolution weight
(out, in, kh, kw), which torch's Muon refuses, is given to it as the
(out, in * kh * kw) matrix it is in memory, as cnn takes it.
"""

import importlib.metadata
import json
import sys

import lion_pytorch
import pytorch_optimizer
import torch
import torch.optim._muon as muon_module

STEPS = 12
Q = 0.1


def _zeropower_via_newtonschulz(grad, ns_coefficients, ns_steps, eps):
    """torch.optim._muon's iteration without the bfloat16 cast."""
    a, b, c = ns_coefficients
    ortho_grad = grad.clone()
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    ortho_grad.div_(ortho_grad.norm().clamp(min=eps))
    for _ in range(ns_steps):
        gram_matrix = ortho_grad @ ortho_grad.T
        gram_update = torch.addmm(gram_matrix, gram_matrix, gram_matrix, beta=b, alpha=c)
        ortho_grad = torch.addmm(ortho_grad, gram_update, ortho_grad, beta=a)
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    return ortho_grad


muon_module._zeropower_via_newtonschulz = _zeropower_via_newtonschulz


def problem(n, seed):
    """Deterministic c, t, w0 for n elements (no random generator needed)."""
    c = [0.1 + ((i * 7 + seed * 3) % 11) / 4.0 for i in range(n)]
    t = [((i * 5 + seed) % 13) / 3.0 - 2.0 for i in range(n)]
    w0 = [((i * 3 + seed * 5) % 17) / 8.0 - 1.0 for i in range(n)]
    return c, t, w0


def grad_of(w, c, t):
    w64 = w.detach().double()
    return (2.0 * c * (w64 - t) + 4.0 * Q * w64**3).float()


def trajectory(make, shape, ref_shape, seed):
    n = 1
    for d in shape:
        n *= d
    c, t, w0 = problem(n, seed)
    c64 = torch.tensor(c, dtype=torch.float64).reshape(ref_shape)
    t64 = torch.tensor(t, dtype=torch.float64).reshape(ref_shape)
    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float32).reshape(ref_shape))
    opt = make([p])
    rows = []
    for _ in range(STEPS):
        p.grad = grad_of(p, c64, t64)
        opt.step()
        rows.append([float(x) for x in p.detach().reshape(-1)])
    return {"c": c, "t": t, "w0": w0, "trajectory": rows}


def case(name, kind, hyper, reference, make, shape, ref_shape=None, seed=0):
    out = {
        "name": name,
        "optimizer": kind,
        "hyper": hyper,
        "reference": reference,
        "shape": shape,
        "steps": STEPS,
    }
    out.update(trajectory(make, shape, ref_shape or shape, seed))
    return out


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "testdata/golden/optim_modern.json"
    vec, mat, conv = [8], [4, 6], [3, 2, 3, 3]
    conv_2d = [3, 18]
    cases = []
    # torch.optim.ASGD
    cases.append(case("asgd", "asgd", {}, "torch.optim.ASGD()",
                      lambda p: torch.optim.ASGD(p, foreach=False), vec))
    cases.append(case("asgd_t0_wd", "asgd",
                      {"lr": 0.05, "lambd": 1e-2, "alpha": 0.5, "t0": 3, "weight_decay": 0.1},
                      "torch.optim.ASGD(lr=0.05, lambd=1e-2, alpha=0.5, t0=3, weight_decay=0.1)",
                      lambda p: torch.optim.ASGD(p, lr=0.05, lambd=1e-2, alpha=0.5, t0=3,
                                                 weight_decay=0.1, foreach=False), mat, seed=1))
    # torch.optim.Rprop
    cases.append(case("rprop", "rprop", {}, "torch.optim.Rprop()",
                      lambda p: torch.optim.Rprop(p, foreach=False), vec))
    cases.append(case("rprop_custom", "rprop",
                      {"lr": 0.2, "etas": [0.3, 1.5], "step_sizes": [0.01, 0.25]},
                      "torch.optim.Rprop(lr=0.2, etas=(0.3, 1.5), step_sizes=(0.01, 0.25))",
                      lambda p: torch.optim.Rprop(p, lr=0.2, etas=(0.3, 1.5),
                                                  step_sizes=(0.01, 0.25), foreach=False),
                      mat, seed=2))
    # torch.optim.Adafactor: a vector, a matrix, a conv weight (factored
    # over its last two dimensions), weight decay, non-default settings.
    cases.append(case("adafactor_vector", "adafactor", {}, "torch.optim.Adafactor()",
                      lambda p: torch.optim.Adafactor(p, foreach=False), vec))
    cases.append(case("adafactor_matrix", "adafactor", {}, "torch.optim.Adafactor()",
                      lambda p: torch.optim.Adafactor(p, foreach=False), mat, seed=3))
    cases.append(case("adafactor_conv_wd", "adafactor",
                      {"lr": 0.05, "beta2_decay": -0.5, "eps": [1e-6, 1e-2], "d": 1.5,
                       "weight_decay": 0.1},
                      "torch.optim.Adafactor(lr=0.05, beta2_decay=-0.5, eps=(1e-6, 1e-2), d=1.5, "
                      "weight_decay=0.1)",
                      lambda p: torch.optim.Adafactor(p, lr=0.05, beta2_decay=-0.5,
                                                      eps=(1e-6, 1e-2), d=1.5, weight_decay=0.1,
                                                      foreach=False), conv, seed=4))
    # torch.optim.Muon (Newton-Schulz in float32, see above)
    cases.append(case("muon_matrix", "muon", {"lr": 0.02}, "torch.optim.Muon(lr=0.02)",
                      lambda p: torch.optim.Muon(p, lr=0.02), mat, seed=5))
    cases.append(case("muon_tall_plain", "muon",
                      {"lr": 0.05, "weight_decay": 0.0, "momentum": 0.9, "nesterov": False,
                       "ns_steps": 3, "adjust_lr_fn": "match_rms_adamw"},
                      "torch.optim.Muon(lr=0.05, weight_decay=0, momentum=0.9, nesterov=False, "
                      "ns_steps=3, adjust_lr_fn='match_rms_adamw')",
                      lambda p: torch.optim.Muon(p, lr=0.05, weight_decay=0.0, momentum=0.9,
                                                 nesterov=False, ns_steps=3,
                                                 adjust_lr_fn="match_rms_adamw"),
                      [6, 4], seed=6))
    cases.append(case("muon_conv", "muon",
                      {"lr": 0.02, "weight_decay": 0.05, "adjust_lr_fn": "spectral_unclamped"},
                      "torch.optim.Muon(lr=0.02, weight_decay=0.05, "
                      "adjust_lr_fn='spectral_unclamped') on the (3, 18) view",
                      lambda p: torch.optim.Muon(p, lr=0.02, weight_decay=0.05,
                                                 adjust_lr_fn="spectral_unclamped"),
                      conv, conv_2d, seed=7))
    cases.append(case("muon_vector_adamw_fallback", "muon",
                      {"lr": 0.02, "adamw_lr": 0.01, "adamw_betas": [0.8, 0.99],
                       "adamw_eps": 1e-6, "adamw_weight_decay": 0.05},
                      "torch.optim.AdamW(lr=0.01, betas=(0.8, 0.99), eps=1e-6, "
                      "weight_decay=0.05), Muon's documented fallback",
                      lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6,
                                                  weight_decay=0.05, foreach=False), vec, seed=8))
    # lion_pytorch.Lion
    cases.append(case("lion", "lion", {"lr": 0.01}, "lion_pytorch.Lion(lr=0.01)",
                      lambda p: lion_pytorch.Lion(p, lr=0.01), vec))
    cases.append(case("lion_wd_decoupled", "lion",
                      {"lr": 0.02, "betas": [0.8, 0.95], "weight_decay": 0.01,
                       "decoupled_weight_decay": True},
                      "lion_pytorch.Lion(lr=0.02, betas=(0.8, 0.95), weight_decay=0.01, "
                      "decoupled_weight_decay=True)",
                      lambda p: lion_pytorch.Lion(p, lr=0.02, betas=(0.8, 0.95),
                                                  weight_decay=0.01,
                                                  decoupled_weight_decay=True), mat, seed=9))
    # pytorch_optimizer.Lamb
    cases.append(case("lamb", "lamb", {"lr": 0.01}, "pytorch_optimizer.Lamb(lr=0.01)",
                      lambda p: pytorch_optimizer.Lamb(p, lr=0.01, foreach=False), mat, seed=10))
    cases.append(case("lamb_coupled_wd", "lamb",
                      {"lr": 0.02, "betas": [0.8, 0.99], "weight_decay": 0.05,
                       "weight_decouple": False, "grad_averaging": False, "eps": 1e-5},
                      "pytorch_optimizer.Lamb(lr=0.02, betas=(0.8, 0.99), weight_decay=0.05, "
                      "weight_decouple=False, grad_averaging=False, eps=1e-5)",
                      lambda p: pytorch_optimizer.Lamb(p, lr=0.02, betas=(0.8, 0.99),
                                                       weight_decay=0.05, weight_decouple=False,
                                                       grad_averaging=False, eps=1e-5,
                                                       foreach=False), conv, seed=11))
    cases.append(case("lamb_decoupled_wd_vector", "lamb",
                      {"lr": 0.01, "weight_decay": 0.1},
                      "pytorch_optimizer.Lamb(lr=0.01, weight_decay=0.1)",
                      lambda p: pytorch_optimizer.Lamb(p, lr=0.01, weight_decay=0.1,
                                                       foreach=False), vec, seed=12))
    # pytorch_optimizer.LARS
    cases.append(case("lars", "lars", {"lr": 0.5}, "pytorch_optimizer.LARS(lr=0.5)",
                      lambda p: pytorch_optimizer.LARS(p, lr=0.5, foreach=False), mat, seed=13))
    cases.append(case("lars_nesterov_wd_conv", "lars",
                      {"lr": 0.5, "weight_decay": 0.01, "momentum": 0.8, "dampening": 0.1,
                       "trust_coefficient": 0.02, "nesterov": True},
                      "pytorch_optimizer.LARS(lr=0.5, weight_decay=0.01, momentum=0.8, "
                      "dampening=0.1, trust_coefficient=0.02, nesterov=True)",
                      lambda p: pytorch_optimizer.LARS(p, lr=0.5, weight_decay=0.01, momentum=0.8,
                                                       dampening=0.1, trust_coefficient=0.02,
                                                       nesterov=True, foreach=False),
                      conv, seed=14))
    cases.append(case("lars_vector_no_momentum", "lars",
                      {"lr": 0.05, "weight_decay": 0.1, "momentum": 0.0},
                      "pytorch_optimizer.LARS(lr=0.05, weight_decay=0.1, momentum=0)",
                      lambda p: pytorch_optimizer.LARS(p, lr=0.05, weight_decay=0.1, momentum=0.0,
                                                       foreach=False), vec, seed=15))
    doc = {
        "generator": f"xtask/golden_optim_modern.py: torch {torch.__version__}, "
        f"lion-pytorch {importlib.metadata.version('lion-pytorch')}, "
        f"pytorch-optimizer {importlib.metadata.version('pytorch-optimizer')}, float32",
        "loss": "loss(w) = sum_i c_i*(w_i - t_i)^2 + q*sum_i w_i^4; grad in float64 from "
        "the float32 weights, rounded to float32",
        "q": Q,
        "cases": cases,
    }
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {out_path}")


if __name__ == "__main__":
    main()
