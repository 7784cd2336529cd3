#!/bin/sh
# Learning curves of docs/validation.md's Winograd section: ResNet-20 and
# VGG on the synthetic set, 3 seeds, with the default choice (Winograd
# F(4x4,3x3) where it pays) and with CNN_CPU_CONV=nowinograd (the direct
# and im2col + GEMM paths as before Winograd), then the picture
# (docs/runs/winograd-curves.py). Usage: sh docs/runs/winograd-curves.sh
# [OUT] from the repository root after `cargo build --release -p cnn-cli`.
set -eu
out=${1:-runs/winograd-curves}
# VGG without batch norm hardly leaves chance level in so few steps, so
# it runs with batch norm too (vgg-bn, 5 epochs).
for run in resnet20 vgg vgg-bn; do
  case $run in
    vgg-bn) args="--model vgg --batch-norm on --epochs 5" ;;
    *) args="--model $run --epochs 3" ;;
  esac
  for seed in 1 2 3; do
    for alg in default nowinograd; do
      dir=$out/$run-$alg-$seed
      [ -f "$dir/metrics.csv" ] && continue
      # shellcheck disable=SC2086
      CNN_CPU_CONV=$alg nice -n 10 target/release/cnn train $args \
        --data synthetic --limit-train 384 --batch-size 64 \
        --seed "$seed" --threads 2 --out "$dir" --quiet
    done
  done
done
python3 docs/runs/winograd-curves.py "$out" docs/img/synthetic-winograd-curves.svg
