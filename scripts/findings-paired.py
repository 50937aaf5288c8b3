#!/usr/bin/env python3
"""Paired differences RL model minus base, per problem, with a 95% bootstrap interval.

The base and every RL model of a findings run are evaluated on the same problems, so the
difference per problem (RL pass@k averaged over the cells of one group, e.g. its three
replicas, minus the base's) is bootstrapped over problems (4,000 resamples, fixed seed).
Stop-gap until `rlp report` (issue 19) does this in rlp itself.

    python3 scripts/findings-paired.py RUN CELL_PREFIX SPLIT OPS
    python3 scripts/findings-paired.py runs/f1-edge 'range=7..=9' edge 9
"""
import json
import random
import sys
from pathlib import Path

from findings_lib import pass_at_k




def main():
    run, group, split = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    ops = [int(o) for o in sys.argv[4].split(",")]
    base, post = {}, {}
    for cell in sorted(run.iterdir()):
        samples = cell / "eval" / "eval-samples.jsonl"
        if not samples.is_file():
            continue
        for line in samples.open():
            row = json.loads(line)
            if row["split"] != split or row["op"] not in ops:
                continue
            key = (row["op"], row["prompt"])
            counts = (row["samples"], row["verified_samples"])
            if row["model"] == "post":
                if cell.name.startswith(group):
                    post.setdefault(key, []).append(counts)
            else:
                base[key] = counts
    keys = sorted(set(base) & set(post))
    for k in (1, 8, 64):
        diffs = [
            sum(pass_at_k(n, c, k) for n, c in post[p]) / len(post[p]) - pass_at_k(*base[p], k)
            for p in keys
        ]
        rng = random.Random(0)
        means = sorted(
            sum(diffs[rng.randrange(len(diffs))] for _ in diffs) / len(diffs) for _ in range(4000)
        )
        print(
            f"{group} {split} ops {ops} pass@{k}: {sum(diffs) / len(diffs):+.3f} "
            f"[{means[100]:+.3f}, {means[3899]:+.3f}] over {len(keys)} problems"
        )


if __name__ == "__main__":
    main()
