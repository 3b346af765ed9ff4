"""The leaderboard's figures: training curves and the critical-difference diagram.

Training curves: mean train/loss per epoch and method, over seeds.

`training_curves` reads the curves from each run's metrics.json (Sacred's
{"train/loss": {"steps": [...], "values": [...]}}) and averages them per step; `plot_curves`
draws one dataset's curves. `cd_diagram` draws the overall ranking. Both use matplotlib's
object API on an Agg canvas, so pyplot's global state is never touched.

Drawing is most of a leaderboard's time on a large store, so a figure is drawn only when its
inputs changed: each PNG carries the key of what it was drawn from (byol_bench.report.figure_keys:
the numbers drawn and the title, this module's code, matplotlib's version and rc settings). A
PNG whose key matches is kept as it is; a missing, foreign or truncated one is drawn again.
"""
from __future__ import annotations

import io
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from byol_bench.report.figure_keys import KEY_FIELD, figure_key, stored_key
from byol_bench.report.stats import nonsignificant_groups
from byol_bench.store.atomic_io import atomic_write_bytes

CURVE = "train/loss"
CODE = Path(__file__)  # the drawing code: part of every figure's key


@dataclass
class Curve:
    """One method's curve on one dataset: mean and std over the seeds that logged each step."""
    steps: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n_seeds: int


def logged_entry(text: str, name: str):
    """The entry `name` of a metrics.json text, as json.loads(text)[name] gives it, decoding that
    entry alone: the file holds every scalar the run logged, each point with a timestamp, and a
    leaderboard reads thousands of them for one scalar. Sacred's file is an object of names, each
    holding only steps, timestamps and values, so the last `"name":` in the text is the top-level
    key json.loads keeps. Where the text does not read that way (the name escaped, or not
    followed by a colon, or the text not ending the object), the whole text is decoded."""
    key = json.dumps(name)
    at = text.rfind(key)
    if at >= 0 and text.rstrip().endswith("}"):
        colon = _skip_space(text, at + len(key))
        if text.startswith(":", colon):
            value, end = _DECODER.raw_decode(text, _skip_space(text, colon + 1))
            if text[_skip_space(text, end):_skip_space(text, end) + 1] in (",", "}"):
                return value
    return json.loads(text)[name]


_DECODER = json.JSONDecoder()


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\n\r":
        at += 1
    return at


def read_curve(run_path: Path | None, name: str = CURVE) -> dict[int, float]:
    """step -> value of one logged scalar; {} when the run logged none."""
    if run_path is None:
        return {}
    try:
        entry = logged_entry((Path(run_path) / "metrics.json").read_text(), name)
        return {int(s): float(v) for s, v in zip(entry["steps"], entry["values"])}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return {}


def training_curves(records, name: str = CURVE) -> dict[str, dict[str, Curve]]:
    """{dataset: {method: Curve}} over completed runs; methods that log nothing (random-init) are absent."""
    by_cell: dict[tuple[str, str], list[dict[int, float]]] = defaultdict(list)
    for record in records:
        curve = read_curve(record.path, name)
        if curve:
            dataset, method, _ = record.key
            by_cell[(dataset, method)].append(curve)
    out: dict[str, dict[str, Curve]] = defaultdict(dict)
    for (dataset, method), curves in sorted(by_cell.items()):
        out[dataset][method] = mean_curve(curves)
    return dict(out)


def mean_curve(curves: list[dict[int, float]]) -> Curve:
    """Mean and std (ddof=1; 0 for one value) per step over the finite values the curves have
    there; steps without any are left out."""
    steps = sorted({s for c in curves for s in c})
    if len(curves) > 1 and all(len(c) == len(steps) for c in curves):
        # Every curve logged every step: one (steps, seeds) array, reduced along its rows. Each
        # row is reduced as the 1-D list of the general case would be: the same numbers.
        table = np.array([[c[s] for c in curves] for s in steps], dtype=np.float64)
        if np.isfinite(table).all():
            return Curve(steps=np.array(steps), mean=table.mean(axis=1), std=table.std(axis=1, ddof=1),
                         n_seeds=len(curves))
    per_step = [[c[s] for c in curves if s in c and math.isfinite(c[s])] for s in steps]
    keep = [i for i, vals in enumerate(per_step) if vals]
    return Curve(
        steps=np.array([steps[i] for i in keep]),
        mean=np.array([np.mean(per_step[i]) for i in keep]),
        std=np.array([np.std(per_step[i], ddof=1) if len(per_step[i]) > 1 else 0.0 for i in keep]),
        n_seeds=len(curves))


def save_png(fig, path: Path, key: str | None = None, **savefig_kwargs) -> None:
    """Render to memory, then replace `path` atomically: a reader never sees half a PNG. `key`
    goes into the PNG as its KEY_FIELD text chunk."""
    if key is not None:
        savefig_kwargs["metadata"] = {**savefig_kwargs.get("metadata", {}), KEY_FIELD: key}
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", **savefig_kwargs)
    atomic_write_bytes(path, buffer.getvalue())


def safe_name(text: str) -> str:
    """A file-name-safe version of a dataset or method name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def curves_key(curves: dict[str, Curve], dataset: str) -> str:
    """The key of `plot_curves`' figure: every number it draws, the labels and the title."""
    return figure_key(CODE, "curves", dataset, [(m, curves[m].n_seeds, curves[m].steps, curves[m].mean,
                                                 curves[m].std) for m in sorted(curves)])


def plot_curves(curves: dict[str, Curve], dataset: str, path: Path) -> Path:
    """One PNG: each method's mean curve with a +-1 std band, methods in name order. Kept as it
    is when it was drawn from the same curves by the same code (its key)."""
    out = Path(path)
    key = curves_key(curves, dataset)
    if stored_key(out) == key:
        return out
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for method in sorted(curves):
        c = curves[method]
        line, = ax.plot(c.steps, c.mean, marker="o" if c.steps.size < 12 else None, ms=3,
                        label=f"{method} ({c.n_seeds} seed{'s' if c.n_seeds != 1 else ''})")
        ax.fill_between(c.steps, c.mean - c.std, c.mean + c.std, color=line.get_color(), alpha=0.15, lw=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss (each method's own loss)")
    ax.set_title(f"{dataset}: training loss, mean ± std over seeds")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, out, key, dpi=120, metadata={"Software": None})
    return out


def cd_diagram(avg_ranks: Mapping[str, float], cd: float, path, title: str | None = None) -> Path:
    """Draw a critical-difference diagram (Demsar 2006, Fig. 1) to the PNG `path`.

    A rank axis from 1 (best, left) to k, the CD as a bar of that length above it, each method
    hanging from its average rank to a label on the left (better half) or right side, and thick
    bars joining the methods whose ranks differ by less than the CD (`nonsignificant_groups`).
    Uses matplotlib's object API on an Agg canvas, so pyplot's global state is never touched.
    Kept as it is when it was drawn from the same ranks, CD, groups and title by the same code
    (its key).
    """
    if len(avg_ranks) < 2:
        raise ValueError("a CD diagram needs at least 2 methods")
    names = sorted(avg_ranks, key=lambda name: (avg_ranks[name], name))
    ranks = [float(avg_ranks[name]) for name in names]
    k = len(names)
    n_left = (k + 1) // 2
    groups = nonsignificant_groups(ranks, cd)
    out = Path(path)
    key = figure_key(CODE, "cd-diagram", [str(name) for name in names], ranks, float(cd), title, groups)
    if stored_key(out) == key:
        return out
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Vertical layout in data units (y grows downward): CD bar, axis at 0, group bars, labels.
    group_y0, group_step = 0.3, 0.14
    label_y0 = group_y0 + max(len(groups), 1) * group_step + 0.15
    label_step = 0.32
    bottom = label_y0 + (n_left - 1) * label_step + 0.25
    top = -0.95 if title is None else -1.3
    # The axis runs past k when the CD is longer than the ranks can span, so the CD bar stays to scale.
    low, high = 1.0, float(max(k, math.ceil(max(ranks)), math.ceil(1.0 + cd)))

    fig = Figure(figsize=(7.0, 0.55 * (bottom - top) + 0.3))
    FigureCanvasAgg(fig)
    # The rank axis takes the middle of the figure; labels live in the side margins.
    ax = fig.add_axes((0.25, 0.02, 0.5, 0.96))
    ax.set_xlim(low, high)
    ax.set_ylim(bottom, top)
    ax.set_axis_off()

    ax.plot([low, high], [0, 0], color="black", lw=1.2, clip_on=False)
    for r in np.arange(low, high + 0.25, 0.5):
        major = float(r).is_integer()
        ax.plot([r, r], [0, -0.1 if major else -0.05], color="black", lw=1.0, clip_on=False)
        if major:
            ax.text(r, -0.15, f"{int(r)}", ha="center", va="bottom", fontsize=10)

    cd_y = -0.6
    ax.plot([low, low + cd], [cd_y, cd_y], color="black", lw=1.5, clip_on=False)
    for end in (low, low + cd):
        ax.plot([end, end], [cd_y - 0.05, cd_y + 0.05], color="black", lw=1.5, clip_on=False)
    ax.text(low + cd / 2.0, cd_y - 0.08, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=10)
    if title:
        ax.text((low + high) / 2.0, top + 0.05, title, ha="center", va="top", fontsize=11)

    side_pad = 0.04 * (high - low) + 0.05
    for i, (name, rank) in enumerate(zip(names, ranks)):
        on_left = i < n_left
        row = i if on_left else k - 1 - i
        y = label_y0 + row * label_step
        x_end = low - side_pad if on_left else high + side_pad
        ax.plot([rank, rank, x_end], [0, y, y], color="black", lw=0.9, clip_on=False)
        ax.text(x_end - 0.03 if on_left else x_end + 0.03, y, f"{name} ({rank:.2f})",
                ha="right" if on_left else "left", va="center", fontsize=10)

    for g, (i, j) in enumerate(groups):
        y = group_y0 + g * group_step
        # Overhang the end ranks slightly so a bar over two close ranks stays visible.
        ax.plot([ranks[i] - 0.03, ranks[j] + 0.03], [y, y], color="black", lw=4,
                solid_capstyle="butt", clip_on=False)

    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, out, key, dpi=150)
    return out
