#!/bin/sh
# Learning curves of docs/validation.md's stride-2 section: ResNet-20 on
# 1,024 synthetic images, 3 epochs, batch 64, seeds 0-2, with a build
# before the polyphase stride-2 kernels (OLD, e.g. main's `cnn` before
# performance.md entry 39) and with this one (NEW), then the table of
# each epoch's mean and standard deviation over the seeds (also entry
# 42's curves: OLD the build before it, NEW entry 42's). Usage:
# sh docs/runs/stride2-curves.sh OLD_CNN NEW_CNN [OUT] from the repository
# root (NEW_CNN is usually target/release/cnn).
set -eu
old=$1
new=$2
out=${3:-runs/stride2-curves}
for seed in 0 1 2; do
  for build in old new; do
    dir=$out/$build-$seed
    [ -f "$dir/metrics.csv" ] && continue
    if [ "$build" = old ]; then bin=$old; else bin=$new; fi
    "$bin" train --model resnet20 --data synthetic --limit-train 1024 \
      --epochs 3 --batch-size 64 --seed "$seed" --threads 2 \
      --out "$dir" --quiet
  done
done
python3 - "$out" <<'PY'
import csv, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
def rows(build, seed):
    with open(out / f"{build}-{seed}" / "metrics.csv") as f:
        return list(csv.DictReader(f))
runs = {b: [rows(b, s) for s in range(3)] for b in ("old", "new")}
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
