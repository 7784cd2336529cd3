"""Draw docs/validation.md's Winograd learning curves as an SVG (no
plotting library needed) and print the per-epoch table.

Usage: python3 docs/runs/winograd-curves.py RUNS_DIR OUT.svg, where
RUNS_DIR holds MODEL-ALG-SEED run directories (docs/runs/winograd-curves.sh).
"""
import csv
import statistics
import sys
from pathlib import Path

MODELS = ["resnet20", "vgg", "vgg-bn"]
ALGS = {"default": ("Winograd where it pays (default)", "#1f77b4"),
        "nowinograd": ("CNN_CPU_CONV=nowinograd", "#ff7f0e")}
SEEDS = [1, 2, 3]
METRICS = [("train_loss", "training loss"), ("val_accuracy", "validation accuracy")]


def read(d):
    with open(d / "metrics.csv") as f:
        return list(csv.DictReader(f))


def main():
    runs, out = Path(sys.argv[1]), Path(sys.argv[2])
    data = {(m, a, s): read(runs / f"{m}-{a}-{s}") for m in MODELS for a in ALGS for s in SEEDS}
    w, h, pad = 360, 240, 48
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w}" height="{len(MODELS) * h + 40}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect width="{2 * w}" height="{len(MODELS) * h + 40}" fill="white"/>']
    for row, model in enumerate(MODELS):
        for col, (key, label) in enumerate(METRICS):
            x0, y0 = col * w + pad, row * h + 20
            pw, ph = w - pad - 12, h - 60
            series = {k: [float(r[key]) for r in v] for k, v in data.items() if k[0] == model}
            vals = [v for s in series.values() for v in s]
            lo, hi = min(vals), max(vals)
            lo, hi = lo - 0.05 * (hi - lo + 1e-9), hi + 0.05 * (hi - lo + 1e-9)
            n = max(len(s) for s in series.values())
            sx = lambda e: x0 + (e - 1) / max(n - 1, 1) * pw
            sy = lambda v: y0 + ph - (v - lo) / (hi - lo) * ph
            svg.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
            svg.append(f'<text x="{x0 + pw / 2}" y="{y0 - 6}" text-anchor="middle">{model}: {label}</text>')
            for i in range(5):
                v = lo + (hi - lo) * i / 4
                svg.append(f'<text x="{x0 - 4}" y="{sy(v) + 4}" text-anchor="end">{v:.4g}</text>')
            for e in range(1, n + 1):
                svg.append(f'<text x="{sx(e)}" y="{y0 + ph + 14}" text-anchor="middle">{e}</text>')
            svg.append(f'<text x="{x0 + pw / 2}" y="{y0 + ph + 28}" text-anchor="middle">epoch</text>')
            for (m, a, s), ys in series.items():
                pts = " ".join(f"{sx(e + 1):.1f},{sy(v):.1f}" for e, v in enumerate(ys))
                dash = ' stroke-dasharray="5,3"' if a == "nowinograd" else ""
                svg.append(f'<polyline points="{pts}" fill="none" stroke="{ALGS[a][1]}" '
                           f'stroke-width="1.5"{dash}/>')
    for i, (a, (label, color)) in enumerate(ALGS.items()):
        x = 60 + i * 300
        dash = ' stroke-dasharray="5,3"' if a == "nowinograd" else ""
        svg.append(f'<line x1="{x}" y1="{len(MODELS) * h + 20}" x2="{x + 30}" y2="{len(MODELS) * h + 20}" '
                   f'stroke="{color}" stroke-width="2"{dash}/>')
        svg.append(f'<text x="{x + 36}" y="{len(MODELS) * h + 24}">{label}, seeds 1-3</text>')
    svg.append("</svg>")
    out.write_text("\n".join(svg) + "\n")

    print("| model | metric | epoch | default mean (std) | nowinograd mean (std) | |difference| / larger std |")
    print("|---|---|---|---|---|---|")
    for model in MODELS:
        for key, _ in METRICS:
            n = min(len(v) for k, v in data.items() if k[0] == model)
            for e in range(n):
                st = {}
                for a in ALGS:
                    v = [float(data[(model, a, s)][e][key]) for s in SEEDS]
                    st[a] = (statistics.mean(v), statistics.stdev(v))
                d = abs(st["default"][0] - st["nowinograd"][0])
                ratio = d / max(st["default"][1], st["nowinograd"][1], 1e-12)
                print(f"| {model} | {key} | {e + 1} | {st['default'][0]:.4f} ({st['default'][1]:.4f}) "
                      f"| {st['nowinograd'][0]:.4f} ({st['nowinograd'][1]:.4f}) | {ratio:.2f} |")


if __name__ == "__main__":
    main()
