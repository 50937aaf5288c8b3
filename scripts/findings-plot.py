#!/usr/bin/env python3
"""pass@k against k (log scale) for a findings run: one line per cell group (seeds averaged)
and one for the model before RL, on chosen ops of one split, written as a standalone SVG.

The shape of the paper's figures. Unbiased pass@k (Chen et al.) per problem, averaged over
problems, then over the replicas of a group. Stop-gap until `rlp report` (issue 19) plots this
in rlp itself.

    python3 scripts/findings-plot.py RUN SPLIT OPS OUT.svg [--title T] [--bases-differ]
    python3 scripts/findings-plot.py runs/f3-compute hard 11 docs/img/f3-op11.svg
"""
import argparse
import json
import re
from collections import defaultdict
from math import comb, log2
from pathlib import Path

COLORS = ["#1b6ca8", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6a9f", "#30343f", "#e07a5f"]


def pass_at_k(n, c, k):
    return 1.0 if n - c < k else 1.0 - comb(n - c, k) / comb(n, k)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("split")
    parser.add_argument("ops")
    parser.add_argument("out")
    parser.add_argument("--title", default="")
    parser.add_argument("--bases-differ", action="store_true")
    args = parser.parse_args()
    ops = {int(o) for o in args.ops.split(",")}
    # line label -> replica -> problem prompt -> (n, c)
    lines = defaultdict(lambda: defaultdict(dict))
    for cell in sorted(Path(args.run).iterdir()):
        samples = cell / "eval" / "eval-samples.jsonl"
        if not samples.is_file():
            continue
        group = re.sub(r",?replica=[^,]+", "", cell.name) or "main"
        replica = (re.search(r"replica=([^,]+)", cell.name) or [None, "-"])[1]
        for line in samples.open():
            row = json.loads(line)
            if row["split"] != args.split or row["op"] not in ops:
                continue
            if row["model"] == "post":
                label, rep = f"RL, {group}", replica
            else:
                label = f'{row["model"]}, {group}' if args.bases_differ else row["model"]
                rep = "-"
            lines[label][rep][(row["op"], row["prompt"])] = (row["samples"], row["verified_samples"])
    n = min(nc[0] for reps in lines.values() for probs in reps.values() for nc in probs.values())
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= n]
    curves = {}
    for label, reps in lines.items():
        per_rep = []
        for probs in reps.values():
            per_rep.append([sum(pass_at_k(a, b, k) for a, b in probs.values()) / len(probs) for k in ks])
        curves[label] = [sum(v[i] for v in per_rep) / len(per_rep) for i in range(len(ks))]
    w, h, left, right, top, bottom = 640, 400, 60, 230, 40, 50
    pw, ph = w - left - right, h - top - bottom
    x = lambda k: left + pw * (log2(k) / max(1, log2(ks[-1])))
    y = lambda v: top + ph * (1 - v)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14">{args.title or f"{args.split}, op {args.ops}: verified pass@k"}</text>']
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for k in ks:
        out.append(f'<text x="{x(k):.1f}" y="{top + ph + 18}" text-anchor="middle">{k}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 10}" text-anchor="middle">k (log scale)</text>')
    for i, (label, values) in enumerate(sorted(curves.items())):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in zip(ks, values))
        out.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
        ly = top + 10 + 18 * i
        out.append(f'<line x1="{left + pw + 15}" x2="{left + pw + 35}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{left + pw + 40}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    Path(args.out).write_text("\n".join(out) + "\n")
    for label, values in sorted(curves.items()):
        print(label, " ".join(f"{v:.2f}" for v in values))


if __name__ == "__main__":
    main()
