#!/usr/bin/env python3
"""What PyTorch itself achieves on two of the training issue's acceptance
numbers, measured on this machine (docs/validation.md quotes the results).

    python3 xtask/torch_acceptance.py golden [--mnist DIR]
    python3 xtask/torch_acceptance.py sweep --first S --seeds N [--mnist DIR]

golden: replays testdata/golden/lenet5_sgd_steps.json (LeNet-5 from
lenet5_init_seed0.safetensors, the first 6400 MNIST training images in file
order, batch 64, SGD lr 0.05 momentum 0.9) in PyTorch under several thread
counts and kernel libraries, and prints how far each run's per-step loss is
from the golden curve, which PyTorch computed in float32 on another CPU.

sweep: one shuffled epoch of all 60,000 training images (batch 64, SGD lr
0.05 momentum 0.9, PyTorch's default initialisation) per seed, then test
accuracy; prints one line per seed and the summary. The same recipe in cnn
is `cnn train --model lenet5 --data mnist --epochs 1 --optimizer sgd --lr
0.05 --momentum 0.9 --val-fraction 0 --seed S`.

Needs torch, numpy and safetensors; run from the repository root.
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_bench as tb  # noqa: E402

GOLDEN = os.path.join("testdata", "golden")
BATCH = 64
# nn.Sequential's parameter names for the state_dict names of the golden file.
SEQUENTIAL_NAMES = {"conv1": "0", "conv2": "3", "fc1": "7", "fc2": "9", "fc3": "11"}


def sgd_step(model, opt, x, y):
    import torch

    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def golden(args):
    import torch
    from safetensors.torch import load_file

    xtr, ytr, _, _ = tb.load_mnist(args.mnist)
    init = load_file(os.path.join(GOLDEN, "lenet5_init_seed0.safetensors"))
    with open(os.path.join(GOLDEN, "lenet5_sgd_steps.json")) as f:
        want = json.load(f)["loss_per_step"]
    state = {f"{SEQUENTIAL_NAMES[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in init.items()}
    runs = [
        ("float32, 1 thread", 1, True, torch.float32),
        ("float32, 2 threads", 2, True, torch.float32),
        ("float32, oneDNN off", 2, False, torch.float32),
        ("float64", 2, True, torch.float64),
    ]
    for label, threads, onednn, dtype in runs:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = onednn
        model = tb.lenet5()
        model.load_state_dict(state)
        model = model.to(dtype)
        opt = tb.sgd(model)
        rel = []
        for k, w in enumerate(want):
            x = tb.normalize(xtr[k * BATCH:(k + 1) * BATCH]).to(dtype)
            got = sgd_step(model, opt, x, ytr[k * BATCH:(k + 1) * BATCH])
            rel.append(abs(got - w) / abs(w))
        over = [k for k, r in enumerate(rel) if r > 2e-3]
        print(
            f"{label:22s} worst rel. difference: steps 0-59 {max(rel[:60]):.2e}, "
            f"all {len(rel)} {max(rel):.2e}; steps over 2e-3: {len(over)}"
            + (f" (first: step {over[0]})" if over else "")
        )


def sweep(args):
    import torch

    torch.set_num_threads(args.threads)
    xtr, ytr, xte, yte = tb.load_mnist(args.mnist)
    accs = []
    for seed in range(args.first, args.first + args.seeds):
        torch.manual_seed(seed)
        model = tb.lenet5()
        opt = tb.sgd(model)
        order = torch.randperm(len(ytr))
        for i in range(0, len(ytr), BATCH):
            idx = order[i:i + BATCH]
            sgd_step(model, opt, tb.normalize(xtr[idx]), ytr[idx])
        model.eval()
        with torch.no_grad():
            correct = sum(
                (model(tb.normalize(xte[i:i + 1000])).argmax(1) == yte[i:i + 1000]).sum().item()
                for i in range(0, len(yte), 1000)
            )
        accs.append(100.0 * correct / len(yte))
        print(f"seed {seed}: test accuracy {accs[-1]:.2f}%", flush=True)
    print(
        f"{len(accs)} seeds: mean {statistics.mean(accs):.2f}%, median "
        f"{statistics.median(accs):.2f}%, min {min(accs):.2f}%, max {max(accs):.2f}%, "
        f">= 97.5%: {sum(a >= 97.5 for a in accs)}/{len(accs)}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=["golden", "sweep"])
    parser.add_argument("--mnist", default=os.environ.get("CNN_MNIST_DIR", "../shared/data/mnist"))
    parser.add_argument("--first", type=int, default=0, help="first seed of the sweep")
    parser.add_argument("--seeds", type=int, default=8, help="seeds in the sweep")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    golden(args) if args.check == "golden" else sweep(args)


if __name__ == "__main__":
    main()
