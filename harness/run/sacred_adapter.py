"""The Sacred adapter: each (dataset, method, seed) is one Sacred run observed under results/runs.

Only the main process attaches the FileStorageObserver. A run failing on any process is
recorded FAILED once, by Sacred on the main process, with every process's reason, and all
processes go on to the next run together; a preempted run is recorded INTERRUPTED, and so is a
run whose claim another invocation took over (ClaimLost: the grid goes on with its next run).
"""
from __future__ import annotations

import copy
import functools
import importlib.metadata
import json
import shutil
import subprocess
import warnings
from pathlib import Path

from accelerate import Accelerator
from tqdm.auto import tqdm

from byol_bench.data import LoadedDataset
from byol_bench.plan.grid import RunSpec
from byol_bench.run.execute import execute
from byol_bench.run.tracking import run_trackers
from byol_bench.shipped import checkout_folder
from byol_bench.store.run_index import note_run
from byol_bench.training.agreement import Agreement
from byol_bench.training.preemption import ClaimLost


@functools.lru_cache(maxsize=1)
def _git_available() -> bool:
    """Sacred records the commit of the checkout the code runs from; an installed wheel has none."""
    checkout = checkout_folder()
    if checkout is None or not (checkout / ".git").exists() or shutil.which("git") is None:
        return False
    probe = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True)
    return probe.returncode == 0


def _installed_version() -> str | None:
    """byol-bench's version when it runs installed (not from a checkout): the run's code provenance."""
    if checkout_folder() is not None:
        return None
    try:
        return importlib.metadata.version("byol-bench")
    except importlib.metadata.PackageNotFoundError:
        return None


def sacred_run(spec: RunSpec, data: LoadedDataset, accelerator: Accelerator, runs_dir: Path,
               load_other=None, agreement: Agreement | None = None, checkpoint_every_s: float = 600.0) -> str:
    """One Sacred run; returns its status (COMPLETED, FAILED, or INTERRUPTED when its claim was
    taken over). Never raises for a failed run."""
    with warnings.catch_warnings():  # sacred 0.8.7 imports the deprecated pkg_resources
        warnings.simplefilter("ignore", UserWarning)
        from sacred import SETTINGS, Experiment
    from sacred.observers import FileStorageObserver

    SETTINGS.CAPTURE_MODE = "sys"      # 'fd' would start tee subprocesses
    ex = Experiment(f"{spec.dataset}.{spec.method}", interactive=True, save_git_info=_git_available())
    ex.add_config(copy.deepcopy(spec.config))
    for package in ("torch", "torchvision", "accelerate", "sacred", "scipy", "numpy"):
        ex.add_package_dependency(package, importlib.metadata.version(package))
    if _installed_version():  # no git commit to record: the report says "installed byol-bench <version>"
        ex.add_package_dependency("byol-bench", _installed_version())
    if accelerator.is_main_process:
        ex.observers.append(FileStorageObserver(str(runs_dir)))

    @ex.main
    def main(_config, _run):
        config = json.loads(json.dumps(_config))   # Sacred's read-only containers -> plain
        if accelerator.is_main_process:  # found by its run hash without a pass over the store
            note_run(runs_dir, config["run_hash"], str(_run._id))
        with run_trackers(accelerator, spec.watch.get("log_with", "none"), runs_dir.parent, str(_run._id), config):
            return execute(config, data, accelerator, _run.log_scalar, _run.info, load_other, agreement,
                           results_dir=runs_dir.parent, run_id=str(_run._id), action=spec.action,
                           checkpoint_every_s=checkpoint_every_s, watch=spec.watch or None)

    try:
        run = ex.run(options={"--loglevel": "ERROR"})
        return run.status
    except ClaimLost as exc:  # recorded INTERRUPTED by the observer; the other invocation runs it
        if accelerator.is_main_process:
            tqdm.write(f"INTERRUPTED {spec.label}: {exc}")
        return "INTERRUPTED"
    except Exception as exc:  # recorded FAILED by the observer; every process goes on together
        if accelerator.is_main_process:
            tqdm.write(f"FAILED {spec.label}: {type(exc).__name__}: {exc}")
        return "FAILED"
