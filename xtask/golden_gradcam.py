#!/usr/bin/env python3
"""Golden Grad-CAM and saliency maps for `cnn inspect`, from a plain PyTorch
implementation with hooks (as pytorch-grad-cam takes them).

    /work/torchvenv/bin/python xtask/golden_gradcam.py   # from the repository root

Builds LeNet-5 and ResNet-20 the way cnn's built-in models are (same
state_dict names and layout), with seeded weights (ResNet-20's batch norm
with running statistics away from 0 and 1, so that the evaluation mode
matters), writes them as testdata/golden/gradcam_<model>.safetensors, and
for a seeded input image, per case (a layer and a class):

- logits of the evaluation-mode forward (`model.eval()`);
- Grad-CAM (Selvaraju et al. 2017): a forward hook keeps the layer's output
  A and a tensor hook its gradient dS/dA, S the class's logit (before
  softmax); weights = spatial mean of dS/dA per channel; cam = ReLU(sum_k
  w_k A_k); upsampled with F.interpolate(bilinear, align_corners=False) to
  the input's size (no normalisation);
- saliency (Simonyan et al. 2014): max over channels of |dS/dx|.

The class is the predicted one (`"class": null`), a given one, or, where
the predicted class's map is all zeros, the most probable class whose map
is not ("informative").

Writes testdata/golden/gradcam.json, which crates/cnn-train/tests/gradcam.rs
reads. Needs torch and safetensors.
"""

import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

GOLDEN = os.path.join("testdata", "golden")


class LeNet5(nn.Module):
    """cnn's lenet5 on 1x28x28: node names as `cnn summary` prints them."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.relu1 = nn.ReLU()
        self.max_pool2d2 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.relu3 = nn.ReLU()
        self.max_pool2d4 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.max_pool2d2(self.relu1(self.conv1(x)))
        x = self.max_pool2d4(self.relu3(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


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
                nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout)
            )
        # The block's output ReLU as a module, so a hook can see it.
        self.out = nn.ReLU()

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        s = x if self.downsample is None else self.downsample(x)
        return self.out(y + s)


class ResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for stage, cout in [(1, 16), (2, 32), (3, 64)]:
            blocks = []
            for b in range(3):
                stride = 2 if stage > 1 and b == 0 else 1
                blocks.append(Block(cin, cout, stride))
                cin = cout
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def seeded(model, seed):
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.reset_parameters()
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
    return model.eval()


def case(model, x, layer_module, layer_name, cls):
    """Grad-CAM at `layer_module` and saliency for class `cls` (None: the
    predicted one)."""
    kept = {}

    def forward_hook(_module, _inputs, output):
        kept["act"] = output
        output.register_hook(lambda g: kept.__setitem__("grad", g))

    handle = layer_module.register_forward_hook(forward_hook)
    x = x.clone().requires_grad_(True)
    logits = model(x)
    handle.remove()
    target = int(logits[0].argmax()) if cls is None else cls
    model.zero_grad()
    logits[0, target].backward()
    act, grad = kept["act"][0].detach(), kept["grad"][0]
    weights = grad.mean(dim=(1, 2))
    cam = F.relu((weights[:, None, None] * act).sum(0))
    up = F.interpolate(
        cam[None, None], size=x.shape[2:], mode="bilinear", align_corners=False
    )[0, 0]
    saliency = x.grad[0].abs().amax(0)
    flat = lambda t: [float(v) for v in t.detach().reshape(-1)]  # noqa: E731
    return {
        "layer": layer_name,
        "class": cls,
        "target_class": target,
        "logits": flat(logits[0]),
        "cam_shape": list(cam.shape),
        "cam": flat(cam),
        "cam_upsampled": flat(up),
        "saliency": flat(saliency),
    }


def informative(model, x, layer_module, layer_name):
    """The case of the most probable class whose Grad-CAM is positive on at
    least a fifth of the layer (the predicted class's may be all zeros)."""
    order = model(x)[0].argsort(descending=True).tolist()
    for cls in order:
        c = case(model, x, layer_module, layer_name, cls)
        if sum(v > 0 for v in c["cam"]) >= len(c["cam"]) / 5:
            return c
    raise SystemExit(f"no class has an informative Grad-CAM at {layer_name}")


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    models = []
    lenet = seeded(LeNet5(), 1)
    resnet = seeded(ResNet20(), 2)
    for name, model, shape, seed, cases in [
        ("lenet5", lenet, [1, 28, 28], 11, [
            (lenet.conv2, "conv2", None),
            (lenet.max_pool2d2, "max_pool2d2", 7),
        ]),
        ("resnet20", resnet, [3, 32, 32], 12, [
            (resnet.layer3[2].conv2, "layer3.2.conv2", "informative"),
            (resnet.layer3[2].out, "relu19", 3),
        ]),
    ]:
        weights = f"gradcam_{name}.safetensors"
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, os.path.join(GOLDEN, weights))
        torch.manual_seed(seed)
        x = torch.randn(1, *shape)
        models.append({
            "model": name,
            "weights": weights,
            "input_shape": shape,
            "input": [float(v) for v in x.reshape(-1)],
            "cases": [
                informative(model, x, m, n) if c == "informative" else case(model, x, m, n, c)
                for m, n, c in cases
            ],
        })
    out = {
        "generator": "xtask/golden_gradcam.py",
        "torch": torch.__version__,
        "models": models,
    }
    with open(os.path.join(GOLDEN, "gradcam.json"), "w") as f:
        json.dump(out, f)
    for m in models:
        for c in m["cases"]:
            print(m["model"], c["layer"], "class", c["target_class"], "cam max", max(c["cam"]))


if __name__ == "__main__":
    main()
