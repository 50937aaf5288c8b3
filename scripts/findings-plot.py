#!/usr/bin/env python3
"""pass@k against k (log scale) for a findings run: one line per cell group (seeds averaged)
and one for the model before RL, on chosen ops of one split, written as a standalone SVG.

The shape of the paper's figures. Unbiased pass@k (Chen et al.) per problem, averaged over
problems, then over the replicas of a group. Stop-gap until `rlp report` (issue 19) plots this
in rlp itself.

    python3 scripts/findings-plot.py RUN SPLIT OPS OUT.svg [--title T] [--eval NAME]
    python3 scripts/findings-plot.py runs/f3-compute hard 11 docs/img/f3-op11.svg
"""
import argparse
import json
from collections import defaultdict
from math import log2
from pathlib import Path

from findings_lib import evaluated_cells, line_chart, model_groups, pass_at_k


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("split")
    parser.add_argument("ops")
    parser.add_argument("out")
    parser.add_argument("--title", default="")
    parser.add_argument("--eval", default="eval")
    parser.add_argument("--rl", default="post", help="the stage drawn as `RL, <group>`")
    parser.add_argument("--ymax", type=float, default=1.0, help="top of the pass@k axis")
    args = parser.parse_args()
    ops = {int(o) for o in args.ops.split(",")}
    # line label -> trained model -> problem -> (n, c)
    lines = defaultdict(lambda: defaultdict(dict))
    cells = evaluated_cells(args.run, args.eval)
    groups_of = model_groups(cells)
    for cell, group, _, dirs in cells:
        for line in (cell / "eval" / f"{args.eval}-samples.jsonl").open():
            row = json.loads(line)
            if row["split"] != args.split or row["op"] not in ops:
                continue
            model, directory = row["model"], dirs[row["model"]]
            name = "RL" if model == args.rl else model
            shared = len(groups_of[(model, directory)]) > 1
            label = name if shared else f"{name}, {group}"
            lines[label][directory][(row["op"], row["prompt"])] = (row["samples"], row["verified_samples"])
    n = min(nc[0] for reps in lines.values() for probs in reps.values() for nc in probs.values())
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= n]
    curves = {}
    for label, reps in lines.items():
        per_rep = []
        for probs in reps.values():
            per_rep.append([sum(pass_at_k(a, b, k) for a, b in probs.values()) / len(probs) for k in ks])
        curves[label] = [sum(v[i] for v in per_rep) / len(per_rep) for i in range(len(ks))]
    top_k = max(1, log2(ks[-1]))
    line_chart(
        args.out,
        args.title or f"{args.split}, op {args.ops}: verified pass@k",
        {label: list(zip(ks, values)) for label, values in sorted(curves.items())},
        x=lambda k: 350 * log2(k) / top_k,
        y=lambda v: 290 * (1 - v / args.ymax),
        x_ticks=ks,
        y_ticks=[args.ymax * i / 4 for i in range(5)],
        x_label="k (log scale)",
    )
    for label, values in sorted(curves.items()):
        print(label, " ".join(f"{v:.2f}" for v in values))


if __name__ == "__main__":
    main()
