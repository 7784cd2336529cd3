#!/bin/sh
# Learning curves of docs/validation.md's "Winograd from 32 channels"
# section: ResNet-20 and VGG with batch norm on 1,024 synthetic images,
# 3 epochs, batch 64, seeds 0-4 (SEEDS overrides), with a build before
# performance.md entry 41 (OLD: Winograd from 64 channels, the
# output-channel-lane weight gradient at 32) and with entry 41's (NEW:
# Winograd from 32),
# then per model the table of each epoch's mean and standard deviation
# over the seeds. Usage: sh docs/runs/winograd32-curves.sh OLD_CNN
# NEW_CNN [OUT] from the repository root (NEW_CNN is usually
# target/release/cnn).
set -eu
old=$1
new=$2
out=${3:-runs/winograd32-curves}
seeds=${SEEDS:-0 1 2 3 4}
for model in resnet20 vgg; do
  for seed in $seeds; do
    for build in old new; do
      dir=$out/$model-$build-$seed
      [ -f "$dir/metrics.csv" ] && continue
      if [ "$build" = old ]; then bin=$old; else bin=$new; fi
      "$bin" train --model "$model" --batch-norm on --data synthetic \
        --limit-train 1024 --epochs 3 --batch-size 64 --seed "$seed" \
        --threads 2 --out "$dir" --quiet
    done
  done
done
python3 - "$out" $seeds <<'PY'
import csv, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
seeds = [int(s) for s in sys.argv[2:]]
def rows(model, build, seed):
    with open(out / f"{model}-{build}-{seed}" / "metrics.csv") as f:
        return list(csv.DictReader(f))
for model in ("resnet20", "vgg"):
    runs = {b: [rows(model, b, s) for s in seeds] for b in ("old", "new")}
    print(f"\n{model}\n")
    print("| metric | epoch | old mean (std) | new mean (std) | difference / larger std |")
    print("|---|---|---|---|---|")
    for metric in ("train_loss", "val_loss", "val_accuracy"):
        for e in range(len(runs["old"][0])):
            o = [float(r[e][metric]) for r in runs["old"]]
            n = [float(r[e][metric]) for r in runs["new"]]
            mo, mn = statistics.mean(o), statistics.mean(n)
            so, sn = statistics.stdev(o), statistics.stdev(n)
            ratio = abs(mo - mn) / max(so, sn) if max(so, sn) > 0 else 0.0
            print(f"| {metric} | {e + 1} | {mo:.4f} ({so:.4f}) | {mn:.4f} ({sn:.4f}) | {ratio:.2f} |")
PY
