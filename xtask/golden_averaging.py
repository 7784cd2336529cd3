"""Golden values for weight averaging: timm's ModelEmaV2 (and ModelEmaV3's
warmup), torch.optim.swa_utils' AveragedModel, update_bn and SWALR.

usage: /work/torchvenv/bin/python xtask/golden_averaging.py [OUT.json]
(default testdata/golden/averaging.json)

A small model with batch norm (conv1 3x3 1->2 on 1x6x6, bn1, relu,
flatten, fc 32->3) takes K SGD steps (lr 0.1, momentum 0.9) on fixed
batches in float32. Recorded, per step: the model's state_dict after the
step, the EMA (decay 0.9) after its update, the warmed-up EMA
(ModelEmaV3, use_warmup, decay 0.9) after update(model, step=k), and the
SWA average after update_parameters(model); then the SWA average after
update_bn over three batches (4, 4 and 2 images); and SWALR's rates
over six steps for several anneal settings. Every array is flat,
row-major, with its shape; float32 values written exactly.
"""
import json
import sys

import torch
import torch.nn as nn
from timm.utils.model_ema import ModelEmaV2, ModelEmaV3
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

K = 5


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.bn1 = nn.BatchNorm2d(2)
        self.fc = nn.Linear(32, 3)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.bn1(self.conv1(x))), 1))


def state(module):
    out = {}
    for name, v in module.state_dict().items():
        out[name] = {"shape": list(v.shape), "values": v.detach().reshape(-1).tolist()}
    return out


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "testdata/golden/averaging.json"
    torch.manual_seed(0)
    model = Net()
    ema = ModelEmaV2(model, decay=0.9)
    ema_warm = ModelEmaV3(model, decay=0.9, use_warmup=True)
    swa = AveragedModel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    initial = state(model)
    steps = []
    for k in range(1, K + 1):
        x = torch.randn(4, 1, 6, 6, generator=g)
        y = torch.randint(0, 3, (4,), generator=g)
        model.train()
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(model)
        ema_warm.update(model, step=k)
        swa.update_parameters(model)
        steps.append({
            "model": state(model),
            "ema": state(ema.module),
            "ema_warmup": state(ema_warm.module),
            "swa": state(swa.module),
        })
    bn_batches = [torch.randn(n, 1, 6, 6, generator=g) for n in (4, 4, 2)]
    update_bn([(b,) for b in bn_batches], swa)
    swalr = []
    for anneal_epochs, strategy in [(3, "cos"), (3, "linear"), (0, "cos"), (10, "cos")]:
        p = torch.nn.Parameter(torch.zeros(1))
        o = torch.optim.SGD([p], lr=0.1)
        s = SWALR(o, swa_lr=0.01, anneal_epochs=anneal_epochs, anneal_strategy=strategy)
        lrs = []
        for _ in range(6):
            o.step()
            s.step()
            lrs.append(o.param_groups[0]["lr"])
        swalr.append({"lr0": 0.1, "swa_lr": 0.01, "anneal_epochs": anneal_epochs,
                      "anneal_strategy": strategy, "lrs": lrs})
    doc = {
        "generator": f"xtask/golden_averaging.py, torch {torch.__version__}",
        "ema_decay": 0.9,
        "initial": initial,
        "steps": steps,
        "bn_batches": [{"n": b.shape[0], "values": b.reshape(-1).tolist()} for b in bn_batches],
        "swa_after_update_bn": state(swa.module),
        "swa_n_averaged": int(swa.n_averaged.item()),
        "swalr": swalr,
    }
    with open(out_path, "w") as f:
        json.dump(doc, f)
        f.write("\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
