#!/usr/bin/env python3
"""An RL metric over training, per cell group: means over windows of steps, and the spread of
the per-seed means (cells that differ only in `replica` form a group).

    python3 scripts/rl-curves.py RUN [METRIC ...] [--window 20] [--at 1,50,100,150,181]
    python3 scripts/rl-curves.py runs/f4-rewards rollout/answer_right_process_wrong

Reads each cell's `manifest.json` for its `rl` stage directory and that stage's
`metrics.jsonl`. Stop-gap until `rlp report` (issue 19) draws these curves.
"""
import argparse
import json
import re
from collections import defaultdict
from pathlib import Path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("metrics", nargs="*", default=["reward/mean", "rollout/verified_acc"])
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--at", default="1,51,101,151,181")
    args = parser.parse_args()
    starts = [int(a) for a in args.at.split(",")]
    groups = defaultdict(list)
    for cell in sorted(Path(args.run).iterdir()):
        manifest = cell / "manifest.json"
        if not manifest.is_file():
            continue
        stages = json.loads(manifest.read_text())["stages"]
        rl = [s for s in stages if s.get("kind") == "rl"]
        if not rl:
            continue
        rows = [json.loads(l) for l in (cell / rl[-1]["dir"] / "metrics.jsonl").open()]
        group = re.sub(r",?replica=[^,]+", "", cell.name) or "main"
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


if __name__ == "__main__":
    main()
