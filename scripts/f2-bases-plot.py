#!/usr/bin/env python3
"""F2 per base: how well each `widen` base solves the seeded teacher op (op 2 pass@1) against
what RL from it adds on teacher op 3, never seen in pre-training (paired pass@k gain, RL minus
its base over the same problems, three RL seeds), from `rlp report` JSON. Prints one row per
base and the rank correlation, and draws the points with their 95% intervals as an SVG.

    rlp report runs/f2-context --k 1,8 --format json --out /tmp/f2c
    rlp report runs/f2-base-seeds --k 1,8 --format json --out /tmp/f2s \\
        --pair 'post[base_seed=7]:widen' --pair 'post[base_seed=11]:widen' \\
        --pair 'post[base_seed=13]:widen'
    python3 scripts/f2-bases-plot.py /tmp/f2c/report.json /tmp/f2s/report.json \\
        --svg docs/img/f2-bases.svg

A paired row counts when its cells (a group's, narrowed by the model's `[VAR=VALUE]`) share one
base; a group that pools two bases (a base seed the report takes for a replica) is left to the
rows asked per base.
"""
import argparse
import json
import re
from pathlib import Path

from findings_lib import COLORS

K = 8


def value(estimates, k):
    return next(e for e in estimates if e["k"] == k)


def is_op(selection, op):
    return isinstance(selection, dict) and selection.get("op") == op


def points(report):
    """[(label, base op-2 pass@1, base op-3 pass@K, gain, lo, hi)] of one report."""
    cells = {c["name"]: c for c in report["cells"]}
    teacher = next(s for s in report["splits"] if s["split"] == "teacher")
    base_op2 = {}
    base_op3 = {}
    for row in teacher["cells"]:
        if row["model"] != "widen":
            continue
        for unit in row["units"]:
            if is_op(row["selection"], 2):
                base_op2[unit] = value(row["verified"], 1)["value"]
            if is_op(row["selection"], 3):
                base_op3[unit] = value(row["verified"], K)["value"]
    out, seen = [], set()
    for row in teacher["paired"]:
        if row["base"] != "widen" or not is_op(row["selection"], 3):
            continue
        wanted = dict(re.findall(r"(\w+)=([^,\]]+)", row["model"].partition("[")[2]))
        members = sorted(
            name
            for name, cell in cells.items()
            if cell["group"] in row["units"]
            and all(dict(cell["bindings"]).get(v) == x.strip() for v, x in wanted.items())
        )
        if len({base_op2[m] for m in members}) != 1 or tuple(members) in seen:
            continue
        seen.add(tuple(members))
        bindings = dict(cells[members[0]]["bindings"])
        label = bindings["exposure"] + (f", seed {bindings['base_seed']}" if "base_seed" in bindings else "")
        gain = value(row["verified"], K)
        out.append((label, base_op2[members[0]], base_op3[members[0]], gain["value"], gain["lo"], gain["hi"]))
    return out


def ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for t in range(i, j + 1):
            r[order[t]] = (i + j) / 2
        i = j + 1
    return r


def spearman(xs, ys):
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (vx * vy)


def svg(path, rows):
    """Each base a point with its interval, coloured by exposure (legend on the right)."""
    left, top, pw, ph = 70, 40, 420, 300
    xmax, ymin, ymax = 0.5, -0.05, 0.3
    x = lambda v: left + pw * v / xmax
    y = lambda v: top + ph * (ymax - v) / (ymax - ymin)
    exposures = sorted({r[0].split(",")[0] for r in rows}, key=lambda e: float(e.rstrip("%")))
    colour = {e: COLORS[i % len(COLORS)] for i, e in enumerate(exposures)}
    w, h = left + pw + 120, top + ph + 60
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="14">F2 per base: RL\'s teacher op-3 gain by the base\'s op-2 skill</text>',
        f'<text x="16" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 {top + ph / 2})">RL - base, teacher op 3 pass@{K} (paired)</text>',
    ]
    for v in [-0.05, 0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]:
        stroke = "#999" if v == 0 else "#ddd"
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="{stroke}"/>')
        out.append(f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:+.2f}</text>')
    for v in [0, 0.1, 0.2, 0.3, 0.4, 0.5]:
        out.append(f'<text x="{x(v):.1f}" y="{top + ph + 18}" text-anchor="middle">{v:.1f}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{top + ph + 42}" text-anchor="middle">base (widen): teacher op 2 verified pass@1</text>')
    for label, op2, _, gain, lo, hi in rows:
        c = colour[label.split(",")[0]]
        px = x(op2)
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{y(lo):.1f}" y2="{y(hi):.1f}" stroke="{c}"/>')
        out.append(f'<circle cx="{px:.1f}" cy="{y(gain):.1f}" r="4" fill="{c}"><title>{label}</title></circle>')
    for i, e in enumerate(exposures):
        ly = top + 10 + 18 * i
        out.append(f'<circle cx="{left + pw + 25}" cy="{ly}" r="4" fill="{colour[e]}"/>')
        out.append(f'<text x="{left + pw + 35}" y="{ly + 4}">{e} exposure</text>')
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("reports", nargs="+", help="report.json files")
    parser.add_argument("--svg", help="write the plot here")
    args = parser.parse_args()
    rows = []
    for path in args.reports:
        rows += points(json.loads(Path(path).read_text()))
    rows.sort(key=lambda r: r[1])
    print(f"| base | teacher op 2 pass@1 | teacher op 3 pass@{K} | RL - base, op 3 pass@{K} (paired) |")
    print("|---|---|---|---|")
    for label, op2, op3, gain, lo, hi in rows:
        print(f"| {label} | {op2:.3f} | {op3:.3f} | {gain:+.3f} [{lo:+.3f}, {hi:+.3f}] |")
    print(f"Spearman rank correlation over {len(rows)} bases: {spearman([r[1] for r in rows], [r[3] for r in rows]):.2f}")
    if args.svg:
        svg(args.svg, rows)


if __name__ == "__main__":
    main()
