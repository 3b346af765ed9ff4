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
import signal
import subprocess
import time
import warnings
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, get_grad_scaler, set_seed
from tqdm.auto import tqdm

from harness import preemption
from harness.preemption import Preempted
from harness.agreement import Agreement
from harness.checkpoint import checkpoint_dir, latest_checkpoint, remove_checkpoints
from harness.claims import try_claim
from harness.data import LoadedDataset, load_dataset_shared
from harness.encoder_store import encoder_path, load_encoder, save_encoder
from harness.errors import UserError
from harness.evaluation import PROTOCOLS, EvalContext
from harness.evaluation.transfer import transfer_targets
from harness.grid import RunSpec
from harness.launch.encoder_wait import wait_for_pretraining
from harness.method import METHODS
from harness.models.backbones import build_encoder
from harness.results import load_runs
from harness.models.sync_batchnorm import revert_sync_batchnorm
from harness.peak_memory import peak_memory
from harness.train import Checkpointing, train

REPO_ROOT = Path(__file__).resolve().parents[1]


def execute(config: dict, data: LoadedDataset, accelerator: Accelerator, log_scalar, info: dict,
            load_other=None, agreement: Agreement | None = None, results_dir: Path | None = None,
            run_id: str = "", action: str = "pretrain", checkpoint_every_s: float = 600.0) -> dict:
    """Build, pretrain (or load the saved encoder) and evaluate one run; returns the flat result
    dict of the result contract.

    `action` "evaluate": the encoder of this run's pretraining identity is saved in the store
    (harness.encoder_store): it is loaded and evaluated, nothing trains, and the pretraining's
    curves and costs are copied from it. "pretrain": train, then save the encoder (main process,
    atomically) before evaluating, so a later grid that changes only evaluation trains nothing.

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
        info["cpu_threads"] = torch.get_num_threads()  # CPU numerics depend on it (harness/launch/local.py)
        path = encoder_path(results_dir, config["pretrain_hash"]) if results_dir is not None else None
        saved = saved_encoder(path, accelerator) if action == "evaluate" and path is not None else None
        if saved is not None:
            if saved["state_dict"] is not None:  # the main process: the one that evaluates
                method.encoder.load_state_dict(saved["state_dict"])
            costs = saved["train_stats"]
            for name, value, step in saved["curves"]:
                log_scalar(name, value, step)
            info["pretrained_by"] = {"run_id": saved["run_id"], "pretrain_hash": saved["pretrain_hash"]}
            info["pretrain_steps"] = 0
        else:
            checkpointing = None
            if results_dir is not None:
                folder = checkpoint_dir(results_dir, config["pretrain_hash"])
                checkpointing = Checkpointing(folder, checkpoint_every_s, accelerator.is_main_process,
                                              resume=resume_state(folder, accelerator))
                if checkpointing.resume is not None:
                    info["resumed_from"] = {"step": checkpointing.resume["step"],
                                            "epoch": checkpointing.resume["epoch"],
                                            "batch": checkpointing.resume["batch"]}
            curves = checkpointing.curves if checkpointing is not None else []

            def log_and_keep(name, value, step):
                curves.append([name, float(value), int(step)])
                log_scalar(name, value, step)

            with peak_memory(accelerator.device) as mem:
                stats = train(method, data, config, accelerator, seed, log_and_keep, agreement, checkpointing)
            costs = {"img_per_s": stats.img_per_s, "seconds": stats.seconds, "peak_mem_mb": mem.peak_mb}
            info["pretrain_steps"] = stats.steps
            agreement.check()  # every process finished training
            if accelerator.is_main_process and path is not None:
                save_encoder(path, revert_sync_batchnorm(method.encoder), costs, config["pretrain_hash"],
                             run_id, curves)
                remove_checkpoints(checkpointing.folder)  # the saved encoder supersedes them
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
    result["cost/pretrain_img_per_s"] = costs["img_per_s"]
    result["cost/pretrain_s"] = costs["seconds"]
    result["cost/peak_mem_mb"] = costs["peak_mem_mb"]
    result["cost/wall_s"] = time.perf_counter() - start
    return result


def resume_state(folder: Path, accelerator: Accelerator) -> dict | None:
    """The newest readable checkpoint of this pretraining identity (the main process picks it,
    setting unreadable ones aside; every process then reads that same file), or None."""
    found = latest_checkpoint(folder) if accelerator.is_main_process else None
    chosen = [str(found[0]) if found else None]
    if accelerator.num_processes > 1:
        broadcast_object_list(chosen)
    if chosen[0] is None:
        return None
    if found is not None:
        return found[1]
    return torch.load(chosen[0], map_location="cpu", weights_only=True)


def saved_encoder(path: Path, accelerator: Accelerator) -> dict | None:
    """The saved payload if the main process can read it, else None on every process (the run
    then pretrains: a corrupt or missing file costs time, never a wrong result)."""
    payload = load_encoder(path) if accelerator.is_main_process else None
    readable = [payload is not None]
    if accelerator.num_processes > 1:
        broadcast_object_list(readable)
    if not readable[0]:
        if accelerator.is_main_process:
            tqdm.write(f"saved encoder {path} unreadable: pretraining instead")
        return None
    if accelerator.is_main_process:
        return payload
    # The other processes evaluate nothing: they only need to know that no training happens.
    return {"state_dict": None, "curves": [], "run_id": "", "pretrain_hash": "",
            "train_stats": {"img_per_s": 0.0, "seconds": 0.0, "peak_mem_mb": 0.0}}


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
               load_other=None, agreement: Agreement | None = None, checkpoint_every_s: float = 600.0) -> str:
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
        return execute(config, data, accelerator, _run.log_scalar, _run.info, load_other, agreement,
                       results_dir=runs_dir.parent, run_id=str(_run._id), action=spec.action,
                       checkpoint_every_s=checkpoint_every_s)

    try:
        run = ex.run(options={"--loglevel": "ERROR"})
        return run.status
    except Exception as exc:  # recorded FAILED by the observer; every process goes on together
        if accelerator.is_main_process:
            tqdm.write(f"FAILED {spec.label}: {type(exc).__name__}: {exc}")
        return "FAILED"


def completed_in_store(runs_dir: Path, run_hash: str) -> bool:
    return any(r.status == "COMPLETED" and r.config.get("run_hash") == run_hash for r in load_runs(runs_dir))


def run_grid(specs: list[RunSpec], accelerator: Accelerator, results_dir: Path, data_root: Path,
             cache_dir: Path, wait_timeout_h: float = 48.0, checkpoint_every_min: float = 10.0,
             stale_after_s: float = 120.0) -> dict[str, int]:
    """Run every spec not already done; returns counts by status. On SIGTERM / SIGUSR2 the run
    in progress checkpoints and `Preempted` propagates (the same command resumes it)."""
    with preemption.handled():
        return _run_grid(specs, accelerator, results_dir, data_root, cache_dir, wait_timeout_h,
                         checkpoint_every_min, stale_after_s)


def _run_grid(specs, accelerator, results_dir, data_root, cache_dir, wait_timeout_h,
              checkpoint_every_min, stale_after_s) -> dict[str, int]:
    runs_dir = results_dir / "runs"
    agreement = Agreement(accelerator.num_processes, wait_timeout_h * 3600)
    # Every process must agree on what to run: the main process's view of the store decides.
    actions = [[s.action for s in specs]]
    if accelerator.num_processes > 1:
        broadcast_object_list(actions)
    for spec, action in zip(specs, actions[0]):
        spec.action, spec.done = action, action == "skip"
    todo = [s for s in specs if not s.done]
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
        signum = preemption.requested()
        if agreement.check(signum is not None):  # a signal between runs: stop before the next
            raise Preempted(signum or signal.SIGTERM)
        # Another invocation on this store may hold the run: the main process asks for the
        # claim, and every process follows its answer.
        claim = try_claim(results_dir, spec.config["run_hash"], stale_after_s) if accelerator.is_main_process else None
        if claim is not None and completed_in_store(runs_dir, spec.config["run_hash"]):
            claim.release()  # finished by another invocation since this grid was expanded
            claim = None
        # Its encoder may be in training elsewhere (same pretrain_hash, other evaluation): wait
        # for it rather than train it twice (harness/launch/encoder_wait.py).
        pretraining, signum = None, None
        if claim is not None and spec.action == "pretrain":
            spec.action, pretraining, signum = wait_for_pretraining(results_dir, spec.config["pretrain_hash"],
                                                                    stale_after_s)
        decided = [claim is not None, spec.action, signum]
        if accelerator.num_processes > 1:  # on the gloo group: the main process may wait for hours
            torch.distributed.broadcast_object_list(decided, src=0, group=agreement.group)
        held, spec.action, signum = decided
        if signum is not None:
            if claim is not None:
                claim.release()
            raise Preempted(signum)
        if not held:
            counts["claimed elsewhere"] = counts.get("claimed elsewhere", 0) + 1
            continue
        try:
            size, sub = spec.config["data"]["image_size"], spec.config["data"].get("train_subsample", 0)
            status = sacred_run(spec, get(spec.dataset, size, sub), accelerator, runs_dir,
                                load_other=lambda name, size=size, sub=sub: get(name, size, sub),
                                agreement=agreement, checkpoint_every_s=checkpoint_every_min * 60)
        finally:
            for held_claim in (claim, pretraining):
                if held_claim is not None:
                    held_claim.release()
        counts[status] = counts.get(status, 0) + 1
    return counts
