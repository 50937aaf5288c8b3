#!/usr/bin/env python3
"""Pass@k tables with 95% confidence intervals for a findings run directory.

Reads every cell's `eval/<eval>-samples.jsonl` (per problem: samples drawn, verified and
with the right answer) and prints, per model, cell group and op range: unbiased pass@k (Chen
et al.'s estimator, averaged over problems), a 95% bootstrap interval over problems (2,000 resamples,
fixed seed), and for a model trained once per cell of a group (cells that differ only in
`replica`), the mean over replicas with the spread (min-max) of the per-replica values and a
bootstrap that resamples problems within each replica. Cells' manifests say which trained
model each cell evaluated: a model several cells share is counted once.

    python3 scripts/findings-ci.py runs/f1-edge [--eval eval] [--k 1,8,64] [--by-op]
                                                [--metric verified|answer]
"""
import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

from findings_lib import evaluated_cells, model_groups, pass_at_k


def mean(xs):
    return sum(xs) / len(xs)


def bootstrap(groups, k, rounds=2000, seed=0):
    """groups: list (one per replica) of lists of (n, c). Resamples problems within each."""
    rng = random.Random(seed)
    values = []
    for _ in range(rounds):
        per_replica = []
        for problems in groups:
            sample = [problems[rng.randrange(len(problems))] for _ in problems]
            per_replica.append(mean([pass_at_k(n, c, k) for n, c in sample]))
        values.append(mean(per_replica))
    values.sort()
    return values[int(0.025 * rounds)], values[int(0.975 * rounds) - 1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--eval", default="eval")
    parser.add_argument("--k", default="1,8,64")
    parser.add_argument("--by-op", action="store_true", help="one row per op, not per split")
    parser.add_argument("--metric", choices=["verified", "answer"], default="verified",
                        help="count samples with every step checked, or with the right answer")
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    # (model, cell group or "-" when groups share it, split) -> trained model -> [(n, c)]
    table = defaultdict(lambda: defaultdict(list))
    cells = evaluated_cells(args.run, args.eval)
    groups_of = model_groups(cells)
    seen = set()
    for cell, group, _, dirs in cells:
        for line in (cell / "eval" / f"{args.eval}-samples.jsonl").open():
            row = json.loads(line)
            model = row["model"]
            directory = dirs[model]
            # A model several cells evaluated has the same problems in each: count it once.
            problem = (directory, row["split"], row["op"], row["prompt"])
            if problem in seen:
                continue
            seen.add(problem)
            key_group = group if len(groups_of[(model, directory)]) == 1 else "-"
            split = f'{row["split"]} op {row["op"]}' if args.by_op else row["split"]
            table[(model, key_group, split)][directory].append(
                (row["samples"], row[f"{args.metric}_samples"])
            )
    samples = min(n for replicas in table.values() for g in replicas.values() for n, _ in g)
    if max(ks) > samples:
        raise SystemExit(f"--k {args.k}: the evaluation drew {samples} samples per problem; "
                         f"ask for k up to {samples}")
    header = "| model | RL range | split | replicas | " + " | ".join(
        f"pass@{k} [95% CI] (seed min-max)" for k in ks
    ) + " |"
    print(header)
    print("|" + "---|" * (4 + len(ks)))
    for (model, group, split), replicas in sorted(table.items()):
        groups = list(replicas.values())
        cells = []
        for k in ks:
            per = [mean([pass_at_k(n, c, k) for n, c in g]) for g in groups]
            lo, hi = bootstrap(groups, k)
            spread = f" ({min(per):.2f}-{max(per):.2f})" if len(per) > 1 else ""
            cells.append(f"{mean(per):.2f} [{lo:.2f}, {hi:.2f}]{spread}")
        print(f"| {model} | {group} | {split} | {len(groups)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
