#!/usr/bin/env python3
"""Paired differences of one model minus another, per problem, with a 95% bootstrap interval.

Every model of a findings run is evaluated on the same problems, so the difference per problem
(the model's pass@k averaged over the cells of one group, e.g. its three replicas, minus the
other model's in the same cells) is bootstrapped over problems (4,000 resamples, fixed seed).
`rlp report` gives the same differences (`--pair MODEL:BASE` for any two models, also across
runs; `--ops 8,9,10` for a set of ops); the paired numbers in docs/findings.md were first
computed with this script, kept as an independent check of the report's (its own reading of the
samples, its own bootstrap: the same means, intervals within about .01).

    python3 scripts/findings-paired.py RUN CELL_PREFIX [EVAL/]SPLIT OPS [MODEL [BASE]] [--base-run RUN2]
    python3 scripts/findings-paired.py runs/f1-edge 'range=7..=9' edge 9          # post - widen
    python3 scripts/findings-paired.py runs/f3-compute 'mid_share=80pct' edge 8,9,10 post mid

`--base-run RUN2` reads BASE from the same-named cells of another run of a file whose eval has the
same seed and splits (the same problems), e.g. `f2-size.rlp`'s `small` models against
`f2-context.rlp`'s `tiny` ones:

    python3 scripts/findings-paired.py runs/f2-size exposure=1pct teacher 2 widen widen --base-run runs/f2-context
"""
import argparse
import json
import random

from findings_lib import evaluated_cells, pass_at_k


def mean_pass(counts, k):
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)


def read_counts(run, group, eval_name, split, ops, model):
    """{(op, prompt): [(samples, verified), one per cell of the group]} for one model."""
    rows = {}
    for cell, *_ in evaluated_cells(run, eval_name):
        if not cell.name.startswith(group):
            continue
        for line in (cell / "eval" / f"{eval_name}-samples.jsonl").open():
            row = json.loads(line)
            if row["split"] == split and row["op"] in ops and row["model"] == model:
                # A base the group's cells share appears once per cell, the same each time; a
                # replicated one (`further` minus `post`) once per replica: both averaged.
                key = (row["op"], row["prompt"])
                rows.setdefault(key, []).append((row["samples"], row["verified_samples"]))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("group", help="the cells whose names start with this")
    parser.add_argument("split", help="SPLIT of the eval `eval`, or EVAL/SPLIT")
    parser.add_argument("ops", help="comma-separated ops")
    parser.add_argument("model", nargs="?", default="post")
    parser.add_argument("base", nargs="?", default="widen")
    parser.add_argument("--base-run", help="read BASE from this run's cells instead")
    args = parser.parse_args()
    group, model, base_model = args.group, args.model, args.base
    eval_name, split = args.split.split("/", 1) if "/" in args.split else ("eval", args.split)
    ops = [int(o) for o in args.ops.split(",")]
    post = read_counts(args.run, group, eval_name, split, ops, model)
    base = read_counts(args.base_run or args.run, group, eval_name, split, ops, base_model)
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
