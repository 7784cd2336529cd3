#!/usr/bin/env python3
"""PyTorch twin of `cnn-workloads` (benches/src/bin/cnn-workloads.rs).

Runs one workload per process and prints one JSON object on stdout with the
same shape as cnn-workloads, so `cargo xtask bench --compare-torch` can put
the two side by side:

    python3 xtask/torch_bench.py <sgemm|w1|w2|w3|w5|w6|w7|w5gpu|w8|counts>
                                 [--threads N] [--quick] [--runs R]
                                 [--mnist DIR] [--size N] [--batch N]
                                 [--device cpu|cuda] [--precision f32|tf32|bf16|f16]

The workloads are those of docs/benchmarks.md, implemented identically:
W1 LeNet-5 one shuffled MNIST epoch (batch 64, SGD lr 0.05 momentum 0.9,
pixels/255 then (x - 0.1307) / 0.3081), then test accuracy; W2 the article's
classifier, 200 steps of batch 64 on synthetic 3x32x32; W3 one conv2d
(32x64x32x32, 64 out, 3x3, pad 1) forward and forward + backward (input,
weight and bias gradients); W4 square sgemm; W5 ResNet-20 training steps
(batch 128 of synthetic 3x32x32, SGD lr 0.1 momentum 0.9, batch norm in
training mode); W6 the built-in `vgg`, the same steps at lr 0.01; W7
ResNet-20 in evaluation mode, batch 256; W5-GPU (`w5gpu`) W5 at batch 512;
W8 the airbench94 network (cnn's built-in `airbench94`) at batch 1024,
SGD lr 0.01, Nesterov momentum 0.85. `counts` prints every model's
parameter count and forward MACs (`torch.utils.flop_counter`) instead.

Needs torch and numpy; MNIST is read from the IDX files (raw or gzip).

With `--device cuda` the models and data live on the GPU (each batch is
prepared on the host and copied, as cnn's CUDA backend does), every timing
ends with `torch.cuda.synchronize()`, cudnn.benchmark is on, and the
process reports `peak_device_bytes` (`torch.cuda.max_memory_allocated`).
`--precision` picks the arithmetic: f32 (the default) switches TF32 off
for matrix products and cuDNN convolutions, so both sides compute in full
FP32; tf32 switches it on; bf16 and f16 run forward and loss under
`torch.autocast(device_type="cuda", dtype=...)`, f16 with
`torch.amp.GradScaler`. W3, W5-GPU and W8 on the GPU keep the model and
each batch `channels_last`. Result names carry the mode (`_bf16`) unless it
is f32. On the CPU only f32 runs.
"""

import argparse
import contextlib
import gzip
import json
import os
import resource
import statistics
import sys
import time

BATCH = 64
SEED = 0
DEVICE = "cpu"
PRECISION = "f32"


def amp():
    """The autocast context of --precision (bf16/f16 on the GPU), else none."""
    if DEVICE == "cuda" and PRECISION in ("bf16", "f16"):
        import torch

        dtype = torch.bfloat16 if PRECISION == "bf16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
    return contextlib.nullcontext()


def named(name):
    """A result's name with the precision mode appended unless it is f32."""
    return name if PRECISION == "f32" else f"{name}_{PRECISION}"


def channels_last(t):
    """A model or 4-d tensor in channels_last on the GPU; unchanged on the CPU."""
    if DEVICE != "cuda":
        return t
    import torch

    return t.to(memory_format=torch.channels_last)


def sync():
    if DEVICE == "cuda":
        import torch

        torch.cuda.synchronize()


def peak_rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # ru_maxrss is in kB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def result(name, unit, values, seconds, gflops, extra=None):
    return {
        "name": name,
        "unit": unit,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": values,
        "seconds_median": statistics.median(seconds),
        "gflops_median": statistics.median(gflops) if gflops else None,
        "extra": extra or {},
    }


def time_per_call(fn, min_iters, target_secs):
    fn()
    sync()
    start = time.perf_counter()
    iters = 0
    while iters < min_iters or time.perf_counter() - start < target_secs:
        fn()
        sync()
        iters += 1
    return (time.perf_counter() - start) / iters


def train_flops_per_sample(model, input_shape):
    """Conv and linear FLOPs x3 (x2 for the first layer), as cnn-benches counts."""
    import torch

    total, first = 0.0, True
    x = torch.zeros((1,) + input_shape)
    for layer in model:
        y = layer(x)
        fwd = None
        if isinstance(layer, torch.nn.Conv2d):
            k = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
            fwd = 2.0 * y.numel() * k
        elif isinstance(layer, torch.nn.Linear):
            fwd = 2.0 * layer.in_features * layer.out_features
        if fwd is not None:
            total += fwd * (2.0 if first else 3.0)
            first = False
        x = y
    return total


def hooked_flops(model, input_shape):
    """Per-sample forward FLOPs of each Conv2d and Linear, in call order."""
    import torch

    flops = []

    def hook(layer, inputs, y):
        if isinstance(layer, torch.nn.Conv2d):
            k = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
            flops.append(2.0 * y.numel() * k)
        else:
            flops.append(2.0 * layer.in_features * layer.out_features)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros((1,) + input_shape))
    model.train(was_training)
    for h in handles:
        h.remove()
    return flops


def lenet5():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def article():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 12, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(768, 256), nn.ReLU(),
        nn.Linear(256, 10),
    )


def vgg():
    """cnn's built-in `vgg` (models.rs `vgg_small`)."""
    import torch.nn as nn

    layers, c = [], 3
    for out in (32, 64, 128):
        for _ in range(2):
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU()]
            c = out
        layers.append(nn.MaxPool2d(2))
    layers += [nn.Flatten(), nn.Linear(128 * 4 * 4, 256), nn.ReLU(), nn.Linear(256, 10)]
    return nn.Sequential(*layers)


def resnet20():
    """cnn's built-in `resnet20` (models.rs): 3x3 stem of 16 channels + BN +
    ReLU, three stages of three basic blocks (16/32/64, stride 2 with a 1x1
    conv + BN shortcut at stages 2-3), global average pool, linear 10."""
    import torch
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            s = x if self.downsample is None else self.downsample(x)
            return torch.relu(y + s)

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            blocks, c = [], 16
            for stage, out in enumerate((16, 32, 64)):
                for b in range(3):
                    blocks.append(Block(c, out, 2 if stage > 0 and b == 0 else 1))
                    c = out
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.blocks(x)
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return ResNet20()


def airbench94():
    """cnn's built-in `airbench94` (models.rs): the network of Jordan 2024's
    airbench94 script. Whitening conv 3->24 2x2 (bias) + GELU; three groups
    (64/256/256) of conv3x3 -> max pool 2 -> BN -> GELU -> conv3x3 -> BN ->
    GELU, BN with eps 1e-12 and momentum 0.4 (the script's 0.6 decay); max
    pool 3; linear 256->10 without bias. As in cnn: the whitening conv and
    the BN weights are trainable and the logits are not scaled by 1/9."""
    from collections import OrderedDict

    import torch.nn as nn

    def group(cin, cout):
        return nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            pool=nn.MaxPool2d(2),
            norm1=nn.BatchNorm2d(cout, eps=1e-12, momentum=0.4),
            act1=nn.GELU(),
            conv2=nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            norm2=nn.BatchNorm2d(cout, eps=1e-12, momentum=0.4),
            act2=nn.GELU(),
        ))

    return nn.Sequential(OrderedDict(
        whiten=nn.Conv2d(3, 24, 2, padding=0, bias=True),
        act=nn.GELU(),
        block1=group(24, 64),
        block2=group(64, 256),
        block3=group(256, 256),
        pool=nn.MaxPool2d(3),
        flatten=nn.Flatten(),
        head=nn.Linear(256, 10, bias=False),
    ))


def read_idx(directory, stems):
    import numpy as np

    for stem in stems:
        for name in (stem, stem + ".gz"):
            path = os.path.join(directory, name)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    data = f.read()
                if data[:2] == b"\x1f\x8b":
                    data = gzip.decompress(data)
                ndim = data[3]
                dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
                return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    raise FileNotFoundError(f"none of {stems} (raw or .gz) in {directory}")


def load_mnist(directory):
    import torch

    def images(stem):
        a = read_idx(directory, [f"{stem}-images-idx3-ubyte", f"{stem}-images.idx3-ubyte"])
        return torch.from_numpy(a.copy()).unsqueeze(1)  # uint8 (N, 1, 28, 28)

    def labels(stem):
        a = read_idx(directory, [f"{stem}-labels-idx1-ubyte", f"{stem}-labels.idx1-ubyte"])
        return torch.from_numpy(a.astype("int64"))

    return images("train"), labels("train"), images("t10k"), labels("t10k")


def normalize(u8):
    return (u8.float() / 255.0 - 0.1307) / 0.3081


def sgd(model):
    import torch

    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def time_training(model, opt, loss_fn, xs, ys, batch, warmup, steps, cl=False, scaler=None):
    """`warmup` untimed training steps, then `steps` timed ones, cycling
    the batches of `batch` images in xs/ys and copying each to the device
    (as cnn's trainer uploads each batch): (seconds, last loss). `cl` puts
    each batch in channels_last; forward and loss run under `amp()`; with
    `scaler` (f16) the loss is scaled and the step goes through it."""
    pool = len(xs) // batch

    def step(s):
        b = s % pool
        x = xs[b * batch:(b + 1) * batch].to(DEVICE)
        if cl:
            x = channels_last(x)
        y = ys[b * batch:(b + 1) * batch].to(DEVICE)
        opt.zero_grad()
        with amp():
            loss = loss_fn(model(x), y)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        return loss

    for s in range(warmup):
        step(s)
    sync()
    start = time.perf_counter()
    for s in range(steps):
        loss = step(s)
    sync()
    return time.perf_counter() - start, loss


def w1(args, runs):
    import torch

    if not args.mnist:
        raise SystemExit("torch_bench w1: no MNIST directory (--mnist DIR or CNN_MNIST_DIR)")
    xtr, ytr, xte, yte = load_mnist(args.mnist)
    limit = 5000 if args.quick else len(ytr)
    loss_fn = torch.nn.CrossEntropyLoss()
    flops = train_flops_per_sample(lenet5(), (1, 28, 28))
    values, seconds, gflops, extra = [], [], [], {}
    for r in range(runs):
        torch.manual_seed(SEED + r)
        model = lenet5().to(DEVICE)
        opt = sgd(model)
        g = torch.Generator().manual_seed(SEED)
        order = torch.randperm(len(ytr), generator=g)[:limit]
        sync()
        start = time.perf_counter()
        model.train()
        for i in range(0, limit, BATCH):
            idx = order[i:i + BATCH]
            x, y = normalize(xtr[idx]).to(DEVICE), ytr[idx].to(DEVICE)
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        sync()
        secs = time.perf_counter() - start
        eval_start = time.perf_counter()
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(yte), BATCH):
                x = normalize(xte[i:i + BATCH]).to(DEVICE)
                correct += (model(x).argmax(1).cpu() == yte[i:i + BATCH]).sum().item()
        values.append(limit / secs)
        seconds.append(secs)
        gflops.append(flops * limit / secs / 1e9)
        extra = {
            "images": float(limit),
            "test_accuracy": correct / len(yte),
            "final_loss": float(loss.item()),
            "eval_seconds": time.perf_counter() - eval_start,
        }
    return [result("w1_lenet_mnist", "img/s", values, seconds, gflops, extra)]


def w2(args, runs):
    import torch

    steps = 50 if args.quick else 200
    pool = 16
    xs, ys = synthetic_pool(BATCH, pool)
    # cnn's trainer uploads each batch from the host, so this side copies too.
    loss_fn = torch.nn.CrossEntropyLoss()
    flops = train_flops_per_sample(article(), (3, 32, 32))
    values, seconds, gflops, extra = [], [], [], {}

    for _ in range(runs):
        torch.manual_seed(SEED)
        model = article().to(DEVICE)
        opt = sgd(model)

        # One untimed warm-up step, as in cnn-workloads.
        secs, loss = time_training(model, opt, loss_fn, xs, ys, BATCH, 1, steps)
        images = steps * BATCH
        values.append(images / secs)
        seconds.append(secs)
        gflops.append(flops * images / secs / 1e9)
        extra = {"images": float(images), "final_loss": float(loss.item())}
    return [result("w2_article", "img/s", values, seconds, gflops, extra)]


def w3(args, runs):
    import torch

    secs_per_run = 0.3 if args.quick else 1.0
    conv = channels_last(torch.nn.Conv2d(64, 64, 3, padding=1).to(DEVICE))
    x = channels_last((torch.rand((32, 64, 32, 32)) * 2 - 1).to(DEVICE))
    xg = x.clone().requires_grad_(True)
    dy = channels_last((torch.rand((32, 64, 32, 32)) * 2 - 1).to(DEVICE))
    fwd_flops = 2.0 * 32 * 64 * 32 * 32 * 64 * 9

    def forward():
        with torch.no_grad(), amp():
            conv(x)

    def forward_backward():
        conv.zero_grad(set_to_none=False)
        xg.grad = None
        with amp():
            y = conv(xg)
        y.backward(dy.to(y.dtype))

    out = []
    for name, fn, flops in (
        ("w3_conv_fwd", forward, fwd_flops),
        ("w3_conv_fwd_bwd", forward_backward, 3 * fwd_flops),
    ):
        secs = [time_per_call(fn, 3, secs_per_run) for _ in range(runs)]
        vals = [flops / s / 1e9 for s in secs]
        out.append(result(named(name), "GFLOP/s", vals, secs, vals,
                          {"gflop_per_call": flops / 1e9}))
    return out


REAL_TRAIN_BATCH = 128
REAL_INFER_BATCH = 256


def synthetic_pool(batch, pool):
    """`pool` batches of `batch` synthetic 3x32x32 images in [-1, 1) and
    their labels (i * 7 % 10), cycled as cnn-workloads cycles its own."""
    import torch

    g = torch.Generator().manual_seed(1)
    xs = torch.rand((pool * batch, 3, 32, 32), generator=g) * 2 - 1
    ys = torch.tensor([(i * 7) % 10 for i in range(pool * batch)])
    return xs, ys


def real_size_train(args, runs, model_fn, name, lr, batch=REAL_TRAIN_BATCH, momentum=0.9,
                    nesterov=False, cl=False):
    """W5/W6 (and W5-GPU, W8): two untimed steps, then `steps` timed ones,
    as cnn-workloads; `cl`: channels_last on the GPU."""
    import torch

    steps = 3 if args.quick else 20
    pool = 4
    xs, ys = synthetic_pool(batch, pool)
    loss_fn = torch.nn.CrossEntropyLoss()
    fwd = hooked_flops(model_fn(), (3, 32, 32))
    flops = 2.0 * fwd[0] + 3.0 * sum(fwd[1:])
    values, seconds, gflops, extra = [], [], [], {}
    for _ in range(runs):
        torch.manual_seed(SEED)
        model = model_fn().to(DEVICE)
        if cl:
            model = channels_last(model)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov)
        scaler = None
        if DEVICE == "cuda" and PRECISION == "f16":
            # GradScaler's defaults: initial scale 65536, x2 after 2000
            # clean steps, x0.5 and the step skipped on inf/NaN.
            scaler = torch.amp.GradScaler("cuda")

        secs, loss = time_training(model, opt, loss_fn, xs, ys, batch, 2, steps, cl, scaler)
        images = steps * batch
        values.append(images / secs)
        seconds.append(secs)
        gflops.append(flops * images / secs / 1e9)
        extra = {"images": float(images), "final_loss": float(loss.item()),
                 "mflop_per_image": flops / 1e6}
        if name.startswith("w8"):
            extra["epoch_50k_seconds"] = 50_000 * secs / images
    return [result(named(name), "img/s", values, seconds, gflops, extra)]


def w5(args, runs):
    return real_size_train(args, runs, resnet20, "w5_resnet20_train", 0.1)


def w6(args, runs):
    return real_size_train(args, runs, vgg, "w6_vgg_train", 0.01)


W5GPU_BATCH = 512
W8_BATCH = 1024


def w5gpu(args, runs):
    """W5-GPU: W5's steps at batch 512 (channels_last on the GPU)."""
    return real_size_train(args, runs, resnet20, "w5gpu_resnet20_train", 0.1,
                           batch=args.batch or W5GPU_BATCH, cl=True)


def w8(args, runs):
    """W8: airbench94's network, batch 1024, SGD lr 0.01 with Nesterov
    momentum 0.85 (airbench's kind of update, without its weight decay and
    schedule), channels_last on the GPU."""
    return real_size_train(args, runs, airbench94, "w8_airbench94_train", 0.01,
                           batch=args.batch or W8_BATCH, momentum=0.85, nesterov=True, cl=True)


def model_counts():
    """Every model's parameter count (all parameters, as
    `sum(p.numel() for p in model.parameters())`) and forward MACs per image
    (`torch.utils.flop_counter.FlopCounterMode`'s FLOPs / 2), for the test
    that cnn's built-ins and these twins are the same networks."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    out = {}
    for name, fn, shape in (("lenet5", lenet5, (1, 28, 28)), ("article", article, (3, 32, 32)),
                            ("vgg", vgg, (3, 32, 32)), ("resnet20", resnet20, (3, 32, 32)),
                            ("airbench94", airbench94, (3, 32, 32))):
        model = fn().eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros((1,) + shape))
        out[name] = {"input": list(shape),
                     "params": sum(p.numel() for p in model.parameters()),
                     "macs": counter.get_total_flops() // 2}
    return out


def w7(args, runs):
    """ResNet-20 in evaluation mode, batch 256: logits to the host, arg-max."""
    import torch

    batches = 2 if args.quick else 10
    xs, ys = synthetic_pool(REAL_INFER_BATCH, 2)
    flops = sum(hooked_flops(resnet20(), (3, 32, 32)))
    torch.manual_seed(SEED)
    model = resnet20().to(DEVICE)
    model.eval()
    n = REAL_INFER_BATCH

    def forward(s):
        b = s % 2
        with torch.no_grad():
            pred = model(xs[b * n:(b + 1) * n].to(DEVICE)).argmax(1).cpu()
        return int((pred == ys[b * n:(b + 1) * n]).sum().item())

    values, seconds, gflops, extra = [], [], [], {}
    for _ in range(runs):
        forward(0)
        sync()
        start = time.perf_counter()
        correct = sum(forward(s) for s in range(batches))
        sync()
        secs = time.perf_counter() - start
        images = batches * n
        values.append(images / secs)
        seconds.append(secs)
        gflops.append(flops * images / secs / 1e9)
        extra = {"images": float(images), "correct": float(correct),
                 "mflop_per_image": flops / 1e6}
    return [result("w7_resnet20_infer", "img/s", values, seconds, gflops, extra)]


def sgemm(args, runs):
    import torch

    n = args.size
    secs_per_run = 0.3 if args.quick else 1.0
    a = torch.rand((n, n), device=DEVICE)
    b = torch.rand((n, n), device=DEVICE)
    c = torch.empty((n, n), device=DEVICE)
    flops = 2.0 * n ** 3
    secs = [time_per_call(lambda: torch.mm(a, b, out=c), 3, secs_per_run) for _ in range(runs)]
    vals = [flops / s / 1e9 for s in secs]
    return [result(f"sgemm_{n}", "GFLOP/s", vals, secs, vals)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["sgemm", "w1", "w2", "w3", "w5", "w6", "w7",
                                             "w5gpu", "w8", "counts"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--mnist", default=os.environ.get("CNN_MNIST_DIR") or None)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["f32", "tf32", "bf16", "f16"], default="f32")
    parser.add_argument("--batch", type=int, help="batch size of w5gpu and w8")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("torch_bench: torch is not installed for " + sys.executable, file=sys.stderr)
        return 3
    if args.workload == "counts":
        print(json.dumps({"framework": "torch " + torch.__version__, "models": model_counts()}))
        return 0
    global DEVICE, PRECISION
    DEVICE = args.device
    PRECISION = args.precision
    if DEVICE == "cpu" and PRECISION != "f32":
        print(f"torch_bench: --precision {PRECISION} runs on the GPU only (cnn's CPU backend "
              "computes in f32)", file=sys.stderr)
        return 2
    if DEVICE == "cuda":
        if not torch.cuda.is_available():
            print("torch_bench: torch sees no CUDA device", file=sys.stderr)
            return 3
        tf32 = PRECISION == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    default_runs = 5 if args.workload in ("sgemm", "w3") else 3
    runs = 1 if args.quick else (args.runs or default_runs)
    fn = {"sgemm": sgemm, "w1": w1, "w2": w2, "w3": w3, "w5": w5, "w6": w6, "w7": w7,
          "w5gpu": w5gpu, "w8": w8}[args.workload]
    results = fn(args, runs)
    print(json.dumps({
        "framework": "torch " + torch.__version__,
        "workload": args.workload,
        "backend": DEVICE,
        "precision": PRECISION,
        "threads": args.threads,
        "quick": args.quick,
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_device_bytes": torch.cuda.max_memory_allocated() if DEVICE == "cuda" else None,
        "gpu": torch.cuda.get_device_name() if DEVICE == "cuda" else None,
        "results": results,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
