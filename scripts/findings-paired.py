#!/usr/bin/env python3
"""Paired differences of one model minus another, per problem, with a 95% bootstrap interval.

Every model of a findings run is evaluated on the same problems, so the difference per problem
(the model's pass@k averaged over the cells of one group, e.g. its three replicas, minus the
other model's in the same cells) is bootstrapped over problems (4,000 resamples, fixed seed).
`rlp report` gives each model's own intervals; this is the paired comparison it does not make.

    python3 scripts/findings-paired.py RUN CELL_PREFIX [EVAL/]SPLIT OPS [MODEL [BASE]]
    python3 scripts/findings-paired.py runs/f1-edge 'range=7..=9' edge 9          # post - widen
    python3 scripts/findings-paired.py runs/f3-compute 'mid_share=80pct' edge 8,9,10 post mid
"""
import json
import random
import sys
from pathlib import Path

from findings_lib import pass_at_k


def mean_pass(counts, k):
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)


def main():
    run, group, split = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    # `EVAL/SPLIT` names a split of another eval than `eval`.
    eval_name, split = split.split("/", 1) if "/" in split else ("eval", split)
    ops = [int(o) for o in sys.argv[4].split(",")]
    model = sys.argv[5] if len(sys.argv) > 5 else "post"
    base_model = sys.argv[6] if len(sys.argv) > 6 else "widen"
    base, post = {}, {}
    for cell in sorted(run.iterdir()):
        samples = cell / "eval" / f"{eval_name}-samples.jsonl"
        if not samples.is_file():
            continue
        for line in samples.open():
            row = json.loads(line)
            if row["split"] != split or row["op"] not in ops:
                continue
            key = (row["op"], row["prompt"])
            counts = (row["samples"], row["verified_samples"])
            if not cell.name.startswith(group):
                continue
            if row["model"] == model:
                post.setdefault(key, []).append(counts)
            elif row["model"] == base_model:
                # A base the group's cells share appears once per cell, the same each time; a
                # replicated one (`further` minus `post`) once per replica: both averaged.
                base.setdefault(key, []).append(counts)
    keys = sorted(set(base) & set(post))
    # pass@1, pass@8 and pass@64, or the largest k the samples allow (32 in F2).
    samples = min(n for p in keys for n, _ in base[p] + post[p])
    for k in sorted({min(k, samples) for k in (1, 8, 64)}):
        diffs = [
            mean_pass(post[p], k) - mean_pass(base[p], k)
            for p in keys
        ]
        rng = random.Random(0)
        means = sorted(
            sum(diffs[rng.randrange(len(diffs))] for _ in diffs) / len(diffs) for _ in range(4000)
        )
        print(
            f"{group} {split} ops {ops} {model} - {base_model} pass@{k}: {sum(diffs) / len(diffs):+.3f} "
            f"[{means[100]:+.3f}, {means[3899]:+.3f}] over {len(keys)} problems"
        )


if __name__ == "__main__":
    main()
