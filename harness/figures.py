"""Training-curve figures for the leaderboard: mean train/loss per epoch and method, over seeds.

`training_curves` reads the curves from each run's metrics.json (Sacred's
{"train/loss": {"steps": [...], "values": [...]}}) and averages them per step; `plot_curves`
draws one dataset's curves. matplotlib's object API on an Agg canvas, as `stats.cd_diagram`,
so pyplot's global state is never touched.
"""
from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CURVE = "train/loss"


@dataclass
class Curve:
    """One method's curve on one dataset: mean and std over the seeds that logged each step."""
    steps: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n_seeds: int


def read_curve(run_path: Path | None, name: str = CURVE) -> dict[int, float]:
    """step -> value of one logged scalar; {} when the run logged none."""
    if run_path is None:
        return {}
    try:
        metrics = json.loads((Path(run_path) / "metrics.json").read_text())
        entry = metrics[name]
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
        steps = sorted({s for c in curves for s in c})
        per_step = [[c[s] for c in curves if s in c and math.isfinite(c[s])] for s in steps]
        keep = [i for i, vals in enumerate(per_step) if vals]
        out[dataset][method] = Curve(
            steps=np.array([steps[i] for i in keep]),
            mean=np.array([np.mean(per_step[i]) for i in keep]),
            std=np.array([np.std(per_step[i], ddof=1) if len(per_step[i]) > 1 else 0.0 for i in keep]),
            n_seeds=len(curves))
    return dict(out)


def safe_name(text: str) -> str:
    """A file-name-safe version of a dataset or method name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def plot_curves(curves: dict[str, Curve], dataset: str, path: Path) -> Path:
    """One PNG: each method's mean curve with a +-1 std band, methods in name order."""
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
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    return out
