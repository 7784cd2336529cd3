"""GradScaler reference sequences for cnn-train's loss scaler.

Runs torch.amp.GradScaler (on the CPU) over fixed patterns of clean and
overflowing steps and writes, after each step, the scale, the growth
tracker and whether the optimizer stepped, to
testdata/golden/grad_scaler.json (read by crates/cnn-train/tests/loss_scale.rs).

    /path/to/venv-with-torch/bin/python scripts/golden_grad_scaler.py
"""

import json
import os

import torch

CASES = [
    # (init_scale, growth_interval, pattern: 1 = a non-finite gradient)
    (1024.0, 3, [1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0]),
    (65536.0, 2000, [0] * 1999 + [1] + [0] * 2001),
    (2.0 ** 125, 1, [0, 0, 0, 1, 0, 0]),
    (1.0, 2, [1, 1, 1, 0, 0, 0, 0, 0]),
]


def run(init_scale, growth_interval, pattern):
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.5)
    scaler = torch.amp.GradScaler(
        "cpu", init_scale=init_scale, growth_interval=growth_interval
    )
    scales, trackers, stepped = [], [], []
    for bad in pattern:
        opt.zero_grad()
        before = w.detach().clone()
        scaler.scale((w * torch.tensor([0.0625, 0.125, 0.1875])).sum()).backward()
        if bad:
            w.grad[1] = float("inf")
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        trackers.append(int(scaler._growth_tracker.item()))
        stepped.append(not torch.equal(before, w.detach()))
    return {
        "init_scale": init_scale,
        "growth_interval": growth_interval,
        "overflow": pattern,
        "scale_after_step": scales,
        "growth_tracker_after_step": trackers,
        "stepped": stepped,
    }


def main():
    out = os.path.join(
        os.path.dirname(os.path.abspath(__file__)),
        "..",
        "testdata",
        "golden",
        "grad_scaler.json",
    )
    doc = {
        "generator": f"scripts/golden_grad_scaler.py, torch {torch.__version__}",
        "cases": [run(*c) for c in CASES],
    }
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {out}: {len(doc['cases'])} cases")


if __name__ == "__main__":
    main()
