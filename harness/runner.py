"""Run the grid: each (dataset, method, seed) is one Sacred run observed under results/runs.

Accelerate owns devices and processes (one CPU process is the degenerate case); only the main
process attaches the FileStorageObserver. A completed run with the same resolved-config hash is
skipped; a run failing on any process is recorded FAILED once, by Sacred on the main process,
with every process's reason, and all processes go on to the next run together.
"""
from __future__ import annotations

import copy
import functools
import importlib.metadata
import json
import shutil
import subprocess
import threading
import time
import warnings
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, get_grad_scaler, set_seed
from tqdm.auto import tqdm

from harness.agreement import Agreement
from harness.data import LoadedDataset, load_dataset_shared
from harness.errors import UserError
from harness.evaluation import PROTOCOLS, EvalContext
from harness.evaluation.transfer import transfer_targets
from harness.grid import RunSpec
from harness.method import METHODS
from harness.models.backbones import build_encoder
from harness.models.sync_batchnorm import revert_sync_batchnorm
from harness.train import train

REPO_ROOT = Path(__file__).resolve().parents[1]


class PeakMemory:
    """Peak memory during a block: CUDA max allocated, or on CPU the peak resident set size
    sampled every 20 ms by a thread (the process-wide ru_maxrss never goes down across runs)."""

    def __init__(self, device: torch.device):
        self.device, self.peak_mb, self._stop = device, 0.0, threading.Event()

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            import psutil
            proc = psutil.Process()

            def sample():
                while not self._stop.wait(0.02):
                    self.peak_mb = max(self.peak_mb, proc.memory_info().rss / 2**20)
            self.peak_mb = proc.memory_info().rss / 2**20
            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            self._thread.join()


def execute(config: dict, data: LoadedDataset, accelerator: Accelerator, log_scalar, info: dict,
            load_other=None, agreement: Agreement | None = None) -> dict:
    """Build, pretrain and evaluate one run; returns the flat result dict of the result contract.

    Under DDP every process trains; the main process alone evaluates, while the others wait
    at an agreement check (a gloo group whose timeout is `run.wait_timeout_h`, so no NCCL
    collective is pending meanwhile). An exception on any process becomes the same RunFailed
    on every process (harness.agreement), and whatever happened, the accelerator lets go of
    the run's model, optimizer and loader."""
    agreement = agreement or Agreement(1)
    start = time.perf_counter()
    seed = config["seed"]
    fresh_grad_scaler(accelerator)
    try:
        set_seed(seed)
        card = data.card
        encoder = build_encoder(config["backbone"], card.channels)
        cls = METHODS.get(config["method"])
        method = cls(encoder, config, config["method_options"], data.num_classes, card.task).to(accelerator.device)
        info["world_size"] = accelerator.num_processes
        info["device"] = str(accelerator.device)
        with PeakMemory(accelerator.device) as mem:
            stats = train(method, data, config, accelerator, seed, log_scalar, agreement)
        agreement.check()  # every process finished training
        result: dict[str, float] = {}
        if accelerator.is_main_process:
            # Evaluation runs on this process alone: no SyncBatchNorm may all_gather in it.
            ctx = EvalContext(revert_sync_batchnorm(method.encoder), data, config, seed, accelerator,
                              load_dataset=load_other)
            for protocol in config["protocols"]:
                result.update(PROTOCOLS.get(protocol)(ctx))
            info["selection"] = ctx.info
        agreement.check()  # the other processes wait here through the evaluation
    except Exception as exc:
        raise agreement.outcome(exc) from exc
    finally:
        accelerator.free_memory()  # drop the run's prepared model, optimizer and loader
    result["cost/pretrain_img_per_s"] = stats.img_per_s
    result["cost/pretrain_s"] = stats.seconds
    result["cost/peak_mem_mb"] = mem.peak_mb
    result["cost/wall_s"] = time.perf_counter() - start
    return result


def fresh_grad_scaler(accelerator: Accelerator) -> None:
    """fp16: a new GradScaler per run (its scale and growth tracker would carry over)."""
    if accelerator.scaler is not None:
        kwargs = accelerator.scaler_handler.to_kwargs() if accelerator.scaler_handler is not None else {}
        accelerator.scaler = get_grad_scaler(accelerator.distributed_type, **kwargs)


@functools.lru_cache(maxsize=1)
def _git_available() -> bool:
    if not (REPO_ROOT / ".git").exists() or shutil.which("git") is None:
        return False
    probe = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True)
    return probe.returncode == 0


def sacred_run(spec: RunSpec, data: LoadedDataset, accelerator: Accelerator, runs_dir: Path,
               load_other=None, agreement: Agreement | None = None) -> str:
    """One Sacred run; returns its status (COMPLETED or FAILED). Never raises for a failed run."""
    with warnings.catch_warnings():  # sacred 0.8.7 imports the deprecated pkg_resources
        warnings.simplefilter("ignore", UserWarning)
        from sacred import SETTINGS, Experiment
    from sacred.observers import FileStorageObserver

    SETTINGS.CAPTURE_MODE = "sys"      # 'fd' would start tee subprocesses
    ex = Experiment(f"{spec.dataset}.{spec.method}", interactive=True, save_git_info=_git_available())
    ex.add_config(copy.deepcopy(spec.config))
    for package in ("torch", "torchvision", "accelerate", "sacred", "scipy", "numpy"):
        ex.add_package_dependency(package, importlib.metadata.version(package))
    if accelerator.is_main_process:
        ex.observers.append(FileStorageObserver(str(runs_dir)))

    @ex.main
    def main(_config, _run):
        config = json.loads(json.dumps(_config))   # Sacred's read-only containers -> plain
        return execute(config, data, accelerator, _run.log_scalar, _run.info, load_other, agreement)

    try:
        run = ex.run(options={"--loglevel": "ERROR"})
        return run.status
    except Exception as exc:  # recorded FAILED by the observer; every process goes on together
        if accelerator.is_main_process:
            tqdm.write(f"FAILED {spec.label}: {type(exc).__name__}: {exc}")
        return "FAILED"


def run_grid(specs: list[RunSpec], accelerator: Accelerator, results_dir: Path, data_root: Path,
             cache_dir: Path, wait_timeout_h: float = 48.0) -> dict[str, int]:
    """Run every spec not already done; returns counts by status."""
    runs_dir = results_dir / "runs"
    agreement = Agreement(accelerator.num_processes, wait_timeout_h * 3600)
    # Every process must agree on what to run: the main process's view of the store decides.
    todo_flags = [[not s.done for s in specs]]
    if accelerator.num_processes > 1:
        broadcast_object_list(todo_flags)
    todo = [s for s, flag in zip(specs, todo_flags[0]) if flag]
    counts = {"skipped": len(specs) - len(todo), "COMPLETED": 0, "FAILED": 0}
    datasets: dict[tuple[str, int], LoadedDataset] = {}

    def get(name: str, size: int, train_subsample: int = 0) -> LoadedDataset:
        if (name, size, train_subsample) not in datasets:
            data = load_dataset_shared(name, data_root, size, cache_dir, accelerator)  # mmap, one decode
            data = data.train_subset(train_subsample)
            empty = [split for split in ("train", "val", "test") if len(data.images[split]) == 0]
            if empty:
                raise UserError(f"dataset {name!r}: the {', '.join(empty)} split(s) are empty; every "
                                "benchmark needs train, val (for selection) and test images")
            datasets[(name, size, train_subsample)] = data
        return datasets[(name, size, train_subsample)]

    # Load (or decode into the cache) every dataset first, transfer targets included (at the
    # pretraining dataset's size): missing data fails before any run is written.
    for spec in todo:
        size, sub = spec.config["data"]["image_size"], spec.config["data"].get("train_subsample", 0)
        get(spec.dataset, size, sub)
        if "transfer" in spec.config["protocols"]:
            for target in transfer_targets(spec.dataset, spec.config["eval"]["transfer"]["pairs"]):
                get(target, size, sub)
    bar = tqdm(todo, desc="grid", disable=not accelerator.is_main_process)
    for spec in bar:
        bar.set_postfix_str(spec.label)
        size, sub = spec.config["data"]["image_size"], spec.config["data"].get("train_subsample", 0)
        status = sacred_run(spec, get(spec.dataset, size, sub), accelerator, runs_dir,
                            load_other=lambda name, size=size, sub=sub: get(name, size, sub), agreement=agreement)
        counts[status] = counts.get(status, 0) + 1
    return counts
