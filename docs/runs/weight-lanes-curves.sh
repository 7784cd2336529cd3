#!/bin/sh
# Learning curves of docs/validation.md's section on the output-channel-lane
# weight gradient (docs/performance.md, entry 38): ResNet-20 and VGG with
# batch norm on the synthetic set, 3 seeds, the build with the new kernel
# as the default (NEW) against the build before it (OLD: Winograd's weight
# gradient at 16-32 channels), then a table of the last epoch's train and
# validation loss per seed. Usage, from the repository root:
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
    vgg-bn) args="--model vgg --batch-norm on" ;;
    *) args="--model $run" ;;
  esac
  for seed in 0 1 2; do
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
print("| model | seed | old train loss | new train loss | old val loss | new val loss |")
print("|---|---|---|---|---|---|")
for run in ("resnet20", "vgg-bn"):
    cols = {"old": ([], []), "new": ([], [])}
    for seed in (0, 1, 2):
        row = {}
        for build in ("old", "new"):
            with open(f"{out}/{run}-{build}-{seed}/metrics.csv") as f:
                last = list(csv.DictReader(f))[-1]
            row[build] = (float(last["train_loss"]), float(last["val_loss"]))
            cols[build][0].append(row[build][0])
            cols[build][1].append(row[build][1])
        print(f"| {run} | {seed} | {row['old'][0]:.4f} | {row['new'][0]:.4f} "
              f"| {row['old'][1]:.4f} | {row['new'][1]:.4f} |")
    o, n = cols["old"], cols["new"]
    f = lambda v: f"{statistics.mean(v):.4f} ({statistics.stdev(v):.4f})"
    print(f"| {run} | mean (std) | {f(o[0])} | {f(n[0])} | {f(o[1])} | {f(n[1])} |")
PY
