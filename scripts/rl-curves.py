#!/usr/bin/env python3
"""An RL metric over training, per cell group: means over windows of steps, and the spread of
the per-seed means (cells that differ only in `replica` form a group).

    python3 scripts/rl-curves.py RUN[,RUN...] [METRIC ...] [--window 20] [--at 1,50,100,150,181]
        [--svg OUT.svg]
    python3 scripts/rl-curves.py runs/f4-rewards rollout/answer_right_process_wrong

With `--svg`, also draws the first metric over training (means over consecutive windows of
`--window` steps, seeds averaged), one line per cell group.

Reads each cell's `manifest.json` for its `rl` stage directory and that stage's
`metrics.jsonl`. Stop-gap until `rlp report` (issue 19) draws these curves.
"""
import argparse
import json
from collections import defaultdict
from pathlib import Path

from findings_lib import group_and_replica, line_chart


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("metrics", nargs="*", default=["reward/mean", "rollout/verified_acc"])
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--at", default="1,51,101,151,181")
    parser.add_argument("--svg")
    args = parser.parse_args()
    starts = [int(a) for a in args.at.split(",")]
    groups = defaultdict(list)
    cells = sorted(c for run in args.run.split(",") for c in Path(run).iterdir())
    for cell in cells:
        manifest = cell / "manifest.json"
        if not manifest.is_file():
            continue
        stages = json.loads(manifest.read_text())["stages"]
        rl = [s for s in stages if s.get("kind") == "rl"]
        if not rl:
            continue
        metrics = cell / rl[-1]["dir"] / "metrics.jsonl"
        if not metrics.is_file():  # a cell still running, or stopped before its RL stage
            continue
        rows = [json.loads(l) for l in metrics.open()]
        group, _ = group_and_replica(cell.name)
        groups[group].append(rows)
    for metric in args.metrics:
        print(f"\n{metric}, mean over steps [s, s + {args.window}) (seed min-max)\n")
        print("| cell | " + " | ".join(f"steps {s}-{s + args.window - 1}" for s in starts) + " |")
        print("|---|" + "---|" * len(starts))
        for group, runs in sorted(groups.items()):
            cells = []
            for s in starts:
                per = []
                for rows in runs:
                    window = [r[metric] for r in rows if s <= r["step"] < s + args.window and metric in r]
                    if window:
                        per.append(sum(window) / len(window))
                if per:
                    spread = f" ({min(per):.2f}-{max(per):.2f})" if len(per) > 1 else ""
                    cells.append(f"{sum(per) / len(per):.2f}{spread}")
                else:
                    cells.append("-")
            print(f"| {group} | " + " | ".join(cells) + " |")


    if args.svg:
        draw(groups, args.metrics[0], args.window, args.svg)


def draw(groups, metric, window, out_path):
    curves = {}
    for group, runs in sorted(groups.items()):
        last = max(r["step"] for rows in runs for r in rows)
        points = []
        for s in range(1, last + 1, window):
            per = []
            for rows in runs:
                values = [r[metric] for r in rows if s <= r["step"] < s + window and metric in r]
                if values:
                    per.append(sum(values) / len(values))
            if per:
                points.append((s + window / 2, sum(per) / len(per)))
        curves[group] = points
    steps = max(x for pts in curves.values() for x, _ in pts) + window / 2
    top_value = max(0.05, max(v for pts in curves.values() for _, v in pts))
    line_chart(
        out_path,
        f"{metric} over RL steps (seeds averaged)",
        curves,
        x=lambda v: 350 * v / steps,
        y=lambda v: 290 * (1 - v / top_value),
        x_ticks=[round(steps * i / 4) for i in range(5)],
        y_ticks=[top_value * i / 4 for i in range(5)],
        x_label="step",
    )


if __name__ == "__main__":
    main()
