"""What the findings scripts share: the pass@k estimator, a cell's group and replica, and an
SVG line chart. Stop-gaps until `rlp report` (issue 19)."""
import json
import re
from collections import defaultdict
from math import comb
from pathlib import Path

COLORS = ["#1b6ca8", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6a9f", "#30343f", "#e07a5f"]


def pass_at_k(n, c, k):
    """Chen et al.'s unbiased pass@k from n samples of which c are correct."""
    if k > n:
        # The estimator needs k of the n samples: with fewer, every problem would read 1.
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, not {n}")
    return 1.0 if n - c < k else 1.0 - comb(n - c, k) / comb(n, k)


def group_and_replica(cell_name):
    """The cell's bindings without `replica`, and its replica ("-" when it has none)."""
    group = re.sub(r",?replica=[^,]+", "", cell_name) or "main"
    replica = (re.search(r"replica=([^,]+)", cell_name) or [None, "-"])[1]
    return group, replica


def evaluated_cells(run, eval_name="eval"):
    """Every cell of a run directory that has rows of the eval, as (cell directory, group,
    replica, {stage name: stage directory}) from its manifest."""
    cells = []
    for cell in sorted(Path(run).iterdir()):
        samples = cell / "eval" / f"{eval_name}-samples.jsonl"
        if not samples.is_file():
            continue
        manifest = json.loads((cell / "manifest.json").read_text())
        dirs = {stage["name"]: stage["dir"] for stage in manifest["stages"]}
        cells.append((cell, *group_and_replica(cell.name), dirs))
    return cells


def model_groups(cells):
    """(stage name, stage directory) -> the cell groups whose cells use that trained model. A
    model several groups share (F1's base) is one model, shown once; one trained per group
    (F2's bases) or per cell (every RL stage) is shown per group, its cells as replicas."""
    groups = defaultdict(set)
    for _, group, _, dirs in cells:
        for name, directory in dirs.items():
            groups[(name, directory)].add(group)
    return groups


def line_chart(path, title, curves, x, y, x_ticks, y_ticks, x_label):
    """Writes a standalone SVG: `curves` maps a label to [(x, y)] points, drawn through the
    `x` and `y` scales (data -> pixels within the plot area, which is 350 x 290 at (60, 40))."""
    left, top, pw, ph = 60, 40, 350, 290
    # Wide and tall enough for the legend (about 7 px a character at 12 px, 18 px a line).
    longest = max((len(label) for label in curves), default=0)
    w = max(640, left + pw + 40 + 7 * longest + 10)
    h = max(380, top + 10 + 18 * len(curves) + 10)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="14">{title}</text>',
    ]
    for v in y_ticks:
        py = top + y(v)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py:.1f}" y2="{py:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{py + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for v in x_ticks:
        out.append(f'<text x="{left + x(v):.1f}" y="{top + ph + 18}" text-anchor="middle">{v:g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 10}" text-anchor="middle">{x_label}</text>')
    for i, (label, points) in enumerate(curves.items()):
        color = COLORS[i % len(COLORS)]
        # Past the palette, the colours come round again dashed.
        dash = ' stroke-dasharray="6 3"' if (i // len(COLORS)) % 2 else ""
        line = " ".join(f"{left + x(a):.1f},{top + y(b):.1f}" for a, b in points)
        out.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        ly = top + 10 + 18 * i
        out.append(f'<line x1="{left + pw + 15}" x2="{left + pw + 35}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{left + pw + 40}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")
