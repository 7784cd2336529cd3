"""Check that a LeNet-5 model.safetensors written by `cnn train` loads into
the equivalent PyTorch module and gives the same predictions as `cnn eval`.

usage: python torch_interop.py MODEL.safetensors MNIST_DIR CNN_EVAL_JSON

CNN_EVAL_JSON is the output of `cnn eval --model lenet5 --data mnist
--val-fraction 0 --split test --json --weights MODEL.safetensors`.
Prints the comparison and exits non-zero on any difference.
"""
import gzip
import json
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    weights, mnist, eval_json = sys.argv[1:4]
    model = LeNet5()
    model.load_state_dict(load_file(weights), strict=True)
    model.eval()
    images = idx(f"{mnist}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = torch.from_numpy(idx(f"{mnist}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    x = (torch.from_numpy(images).unsqueeze(1) - 0.1307) / 0.3081
    with torch.no_grad():
        preds = model(x).argmax(1)
    ours = json.load(open(eval_json))
    correct = int((preds == labels).sum().item())
    acc = correct / len(labels)
    per_class = []
    for c in range(10):
        tp = ((preds == c) & (labels == c)).sum().item()
        predicted = (preds == c).sum().item()
        support = (labels == c).sum().item()
        per_class.append((tp / predicted if predicted else 0.0, tp / support if support else 0.0))
    print(f"pytorch accuracy {acc:.6f}, cnn accuracy {ours['accuracy']:.6f}")
    ok = correct == round(ours["accuracy"] * ours["n"]) and ours["n"] == len(labels)
    for c, (p, r) in enumerate(per_class):
        theirs = ours["per_class"][c]
        same = abs(p - theirs["precision"]) < 1e-9 and abs(r - theirs["recall"]) < 1e-9
        ok &= same
        if not same:
            print(f"class {c}: pytorch precision {p} recall {r}, cnn {theirs['precision']} {theirs['recall']}")
    print("same predictions" if ok else "PREDICTIONS DIFFER")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
