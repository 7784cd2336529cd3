#!/bin/sh
# Learning curves of docs/validation.md's Winograd section: ResNet-20 and
# VGG on the synthetic set, 3 seeds, with the default choice (Winograd
# F(4x4,3x3) where it pays) and with CNN_CPU_CONV=nowinograd (the direct
# and im2col + GEMM paths as before Winograd), then the picture
# (docs/runs/winograd-curves.py). Usage: sh docs/runs/winograd-curves.sh
# [OUT] from the repository root after `cargo build --release -p cnn-cli`.
set -eu
out=${1:-runs/winograd-curves}
for model in resnet20 vgg; do
  for seed in 1 2 3; do
    for alg in default nowinograd; do
      dir=$out/$model-$alg-$seed
      [ -f "$dir/metrics.csv" ] && continue
      CNN_CPU_CONV=$alg nice -n 10 target/release/cnn train --model "$model" \
        --data synthetic --limit-train 384 --epochs 3 --batch-size 64 \
        --seed "$seed" --threads 2 --out "$dir" --quiet
    done
  done
done
python3 docs/runs/winograd-curves.py "$out" docs/img/synthetic-winograd-curves.svg
