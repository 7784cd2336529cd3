"""Golden values for mixup and CutMix: timm's own `Mixup` (mode "batch"),
`cutmix_bbox_and_lam`, `mixup_target` and `SoftTargetCrossEntropy`.

usage: /work/torchvenv/bin/python xtask/golden_mixup.py [OUT.json]
(default testdata/golden/mixup.json)

A fixed float32 batch x of shape (5, 2, 6, 8) (odd: the middle image is
its own partner), labels over 5 classes and float32 logits (5, 5):
- "mixup": `Mixup(mixup_alpha=1.0, cutmix_alpha=0)._mix_batch(x)` with
  numpy seeded; the lam it drew and the mixed batch;
- "cutmix": `Mixup(mixup_alpha=0, cutmix_alpha=1.0)._mix_batch(x)`; the box
  `cutmix_bbox_and_lam` gave, the corrected lam and the mixed batch;
- for each, with label smoothing 0.1 and 0: `mixup_target(labels, 5, lam,
  smoothing)` (torch's default dtype float64 while it runs) and
  `SoftTargetCrossEntropy()(logits, target)` in float64 with its gradient
  by autograd;
- "boxes": `cutmix_bbox_and_lam((h, w), lam)` with the centre (cy, cx)
  fixed (numpy's randint replaced), for constructed cases.
Every array is flat, row-major; float32 values written exactly.
"""
import json
import sys

import numpy as np
import torch
import timm.data.mixup as tm
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy

SHAPE = (5, 2, 6, 8)
CLASSES = 5


def floats(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def losses(logits, labels, lam):
    out = []
    for smoothing in (0.1, 0.0):
        # timm's one-hot rows take torch's default dtype: float64 here, so
        # the targets carry no float32 rounding.
        torch.set_default_dtype(torch.float64)
        try:
            target = tm.mixup_target(labels, CLASSES, lam, smoothing)
        finally:
            torch.set_default_dtype(torch.float32)
        assert target.dtype == torch.float64
        z = logits.double().clone().requires_grad_(True)
        loss = SoftTargetCrossEntropy()(z, target)
        loss.backward()
        out.append({
            "smoothing": smoothing,
            "target": floats(target),
            "loss": loss.detach().item(),
            "grad": floats(z.grad),
        })
    return out


def mixed(x, labels, logits, seed, **kwargs):
    boxes = []
    real = tm.cutmix_bbox_and_lam

    def spy(*a, **k):
        box, lam = real(*a, **k)
        boxes.append([int(v) for v in box])
        return box, lam

    tm.cutmix_bbox_and_lam = spy
    try:
        np.random.seed(seed)
        mixer = Mixup(num_classes=CLASSES, label_smoothing=0.0, **kwargs)
        out = x.clone()
        lam = float(mixer._mix_batch(out))
    finally:
        tm.cutmix_bbox_and_lam = real
    return {
        "lam": lam,
        "box": boxes[0] if boxes else None,
        "x": floats(out),
        "losses": losses(logits, labels, lam),
    }


def box_case(h, w, lam, cy, cx):
    centres = iter([cy, cx])
    real = np.random.randint
    np.random.randint = lambda lo, hi, size=None: next(centres)
    try:
        box, corrected = tm.cutmix_bbox_and_lam((1, 1, h, w), lam)
    finally:
        np.random.randint = real
    return {"h": h, "w": w, "lam": lam, "cy": cy, "cx": cx,
            "box": [int(v) for v in box], "corrected": float(corrected)}


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "testdata/golden/mixup.json"
    g = torch.Generator().manual_seed(23)
    x = torch.randn(SHAPE, generator=g, dtype=torch.float32)
    labels = torch.tensor([0, 3, 1, 4, 2])
    logits = torch.randn((SHAPE[0], CLASSES), generator=g, dtype=torch.float32) * 3
    doc = {
        "source": "timm " + __import__("timm").__version__ + ", torch " + torch.__version__,
        "shape": list(SHAPE),
        "classes": CLASSES,
        "x": floats(x),
        "labels": labels.tolist(),
        "logits": floats(logits),
        "mixup": mixed(x, labels, logits, 6, mixup_alpha=1.0, cutmix_alpha=0.0),
        "cutmix": mixed(x, labels, logits, 3, mixup_alpha=0.0, cutmix_alpha=1.0),
        "boxes": [
            box_case(8, 8, 0.75, 4, 4),
            box_case(8, 8, 0.75, 0, 0),
            box_case(5, 7, 0.5, 2, 6),
            box_case(6, 8, 0.3, 5, 1),
            box_case(32, 32, 0.9, 31, 16),
            box_case(28, 28, 0.0, 13, 14),
            box_case(7, 9, 1.0, 3, 3),
        ],
    }
    with open(out_path, "w") as f:
        json.dump(doc, f)
        f.write("\n")


if __name__ == "__main__":
    main()
