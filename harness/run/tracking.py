"""Accelerate's experiment trackers, one per run, chosen by `run.log_with`.

One Accelerator serves a whole grid (and a SLURM task builds its own), while a tracker belongs
to one run: each run attaches a tracker made by Accelerate's own class to
`accelerator.trackers` on the main process, logs through `accelerator.log` (main process only),
and finishes and detaches it when the run ends. (`Accelerator.end_training` would also destroy
the process group the next run needs.) Every run gets its own folder, named by its Sacred run
id and its run hash, so `tensorboard --logdir results/tensorboard` shows a grid side by side:

    <results-dir>/tensorboard/<run id>-<run hash>/events.out.tfevents.*
    <results-dir>/mlflow, <results-dir>/aim, <results-dir>/wandb: the same names as run names
"""
from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from accelerate import Accelerator
from accelerate.tracking import LOGGER_TYPE_TO_CLASS, GeneralTracker

from byol_bench.errors import UserError

PROJECT = "byol-bench"  # wandb's project and mlflow's experiment
# run.log_with -> (the module it needs, how to install it)
TRACKER_NEEDS = {"tensorboard": ("tensorboard", "pip install tensorboard"),
                 "wandb": ("wandb", 'pip install "byol-bench[wandb]"'),
                 "mlflow": ("mlflow", 'pip install "byol-bench[mlflow]"'),
                 "aim": ("aim", "pip install aim")}


def check_tracker_installed(log_with: str) -> None:
    """One line before the grid runs when the tracker's package is missing."""
    if log_with in TRACKER_NEEDS:
        module, install = TRACKER_NEEDS[log_with]
        if importlib.util.find_spec(module) is None:
            raise UserError(f"run.log_with is {log_with!r} but the {module} package is not installed: "
                            f"{install} (or run.log_with: none)")


def run_name(run_id: str, run_hash: str) -> str:
    return f"{run_id}-{run_hash}"


def make_tracker(log_with: str, name: str, results_dir: Path) -> GeneralTracker:
    """Accelerate's tracker class for `log_with`, writing under <results_dir>/<log_with>/."""
    folder = str(Path(results_dir) / log_with)
    cls = LOGGER_TYPE_TO_CLASS[log_with]
    if log_with == "tensorboard":
        return cls(name, folder)
    if log_with == "wandb":
        Path(folder).mkdir(parents=True, exist_ok=True)
        return cls(PROJECT, name=name, dir=folder)
    if log_with == "mlflow":
        return cls(PROJECT, logging_dir=folder, run_name=name)
    if log_with == "aim":
        return cls(name, folder)
    raise UserError(f"unknown run.log_with {log_with!r}; valid: {', '.join([*TRACKER_NEEDS, 'none'])}")


@contextmanager
def run_trackers(accelerator: Accelerator, log_with: str, results_dir: Path, run_id: str, config: dict
                 ) -> Iterator[None]:
    """The run's tracker attached to `accelerator` for the duration (main process only)."""
    if log_with == "none" or not accelerator.is_main_process:
        yield
        return
    tracker = make_tracker(log_with, run_name(run_id, config["run_hash"]), results_dir)
    tracker.start()
    if log_with != "tensorboard":  # TensorBoard's hparams would add a folder per run
        tracker.store_init_configuration({k: config[k] for k in ("dataset", "method", "seed", "run_hash",
                                                                  "pretrain_hash")})
    accelerator.trackers.append(tracker)
    try:
        yield
    finally:
        accelerator.trackers.remove(tracker)
        tracker.finish()
