#!/usr/bin/env python3
"""Pass@k tables with 95% confidence intervals for a findings run directory.

Reads every cell's `eval/<eval>-samples.jsonl` (per problem: samples drawn and samples
verified) and prints, per model, cell group and op range: unbiased pass@k (Chen et al.'s
estimator, averaged over problems), a 95% bootstrap interval over problems (2,000 resamples,
fixed seed), and for cells that differ only in `replica`, the mean over replicas with the
spread (min-max) of the per-replica values and a bootstrap that resamples problems within
each replica. Stop-gap until `rlp report` (issue 19) does this in rlp itself.

    python3 scripts/findings-ci.py runs/f1-edge [--eval eval] [--k 1,8,64] [--by-op] [--bases-differ]
"""
import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

from findings_lib import group_and_replica, pass_at_k




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
    parser.add_argument(
        "--bases-differ",
        action="store_true",
        help="the models before RL differ between cell groups (F2's exposures): one row per group",
    )
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    # (model, cell group, split) -> replica -> [(n, c)]
    table = defaultdict(lambda: defaultdict(list))
    seen_base = set()
    for cell in sorted(Path(args.run).iterdir()):
        samples = cell / "eval" / f"{args.eval}-samples.jsonl"
        if not samples.is_file():
            continue
        group, replica = group_and_replica(cell.name)
        for line in samples.open():
            row = json.loads(line)
            model = row["model"]
            # The shared base is evaluated in every cell with the same problems: count it once.
            key_group = group if model == "post" or args.bases_differ else "-"
            if model != "post":
                seen = (model, key_group, row["split"], row["op"], row["prompt"])
                if seen in seen_base:
                    continue
                seen_base.add(seen)
                replica_key = "-"
            else:
                replica_key = replica
            split = f'{row["split"]} op {row["op"]}' if args.by_op else row["split"]
            table[(model, key_group, split)][replica_key].append(
                (row["samples"], row["verified_samples"])
            )
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
