#!/bin/sh
# Learning curves of docs/validation.md's section on the output-channel-lane
# weight gradient (docs/performance.md, entry 38): ResNet-20 and VGG with
# batch norm on the synthetic set (5 seeds for ResNet-20, 3 for VGG), the build with the new kernel
# as the default (NEW) against the build before it (OLD: Winograd's weight
# gradient at 16-32 channels), then a table of the last epoch's train and
# validation loss and accuracy per seed. Usage, from the repository root:
#   sh docs/runs/weight-lanes-curves.sh OLD_CNN NEW_CNN [OUT]
# (OLD_CNN: a `cnn` built at the commit before entry 38, NEW_CNN:
# target/release/cnn after `cargo build --release -p cnn-cli`).
set -eu
old=$1
new=$2
out=${3:-runs/weight-lanes-curves}
# VGG without batch norm hardly leaves chance level in so few steps (see
# the Winograd section), so VGG runs with batch norm.
for run in resnet20 vgg-bn; do
  case $run in
    vgg-bn) args="--model vgg --batch-norm on" seeds="0 1 2" ;;
    *) args="--model $run" seeds="0 1 2 3 4" ;;
  esac
  for seed in $seeds; do
    for build in old new; do
      dir=$out/$run-$build-$seed
      [ -f "$dir/metrics.csv" ] && continue
      bin=$old
      [ "$build" = new ] && bin=$new
      # shellcheck disable=SC2086
      nice -n 10 "$bin" train $args --data synthetic --limit-train 512 \
        --epochs 3 --batch-size 64 --seed "$seed" --threads 2 \
        --out "$dir" --quiet &
    done
    wait
  done
done
python3 - "$out" <<'PY'
import csv, statistics, sys
out = sys.argv[1]
lines = []
lines.append("| model | seed | train loss, old | train loss, new | val loss, old | val loss, new | val accuracy, old | val accuracy, new |")
lines.append("|---|---|---|---|---|---|---|---|")
for run, seeds in (("resnet20", (0, 1, 2, 3, 4)), ("vgg-bn", (0, 1, 2))):
    cols = {b: ([], [], []) for b in ("old", "new")}
    for seed in seeds:
        row = {}
        ok = True
        for b in ("old", "new"):
            try:
                rows = list(csv.DictReader(open(f"{out}/{run}-{b}-{seed}/metrics.csv")))
            except FileNotFoundError:
                ok = False
                continue
            if len(rows) < 3:
                ok = False
                continue
            last = rows[-1]
            row[b] = (float(last["train_loss"]), float(last["val_loss"]), float(last["val_accuracy"]))
        if not ok:
            continue
        for b in ("old", "new"):
            for i in range(3):
                cols[b][i].append(row[b][i])
        o, n = row["old"], row["new"]
        lines.append(f"| {run} | {seed} | {o[0]:.4f} | {n[0]:.4f} | {o[1]:.4f} | {n[1]:.4f} | {o[2]:.3f} | {n[2]:.3f} |")
    o, n = cols["old"], cols["new"]
    if len(o[0]) >= 2:
        f = lambda v, d=4: f"{statistics.mean(v):.{d}f} ({statistics.stdev(v):.{d}f})"
        lines.append(f"| {run} | mean (std) | {f(o[0])} | {f(n[0])} | {f(o[1])} | {f(n[1])} | {f(o[2],3)} | {f(n[2],3)} |")
print("\n".join(lines))
PY
