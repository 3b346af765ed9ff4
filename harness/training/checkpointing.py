"""When a run checkpoints, and the state it resumes from (files: byol_bench.store.checkpoints).

A checkpoint holds the state every process shares (networks, optimizer, step, ...) once, and
under "processes" what each process has of its own, by process index: its random streams, the
method's running sums and the epoch's partial loss sums (`ProcessState`). The main process
gathers them and writes the one file; each process resumes its own entry.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from byol_bench.store.atomic_io import DiskFullError
from byol_bench.store.checkpoints import write_checkpoint


@dataclass
class Checkpointing:
    """Where and how often a run checkpoints, and the state it resumes from (byol_bench.store.checkpoints).
    `curves` is the run's list of logged [name, value, step], saved with each checkpoint, and
    `fingerprints` the pretraining code and data it is made from (harness/store/staleness.py).
    `gather_to_main` collects every process's own state on the main process
    (byol_bench.training.agreement.Agreement.gather_to_main; one process: itself)."""
    folder: Path
    every_s: float                     # run.checkpoint_every_min * 60; 0: at every epoch's end
    is_main: bool                      # only the main process writes
    resume: dict | None = None
    curves: list = field(default_factory=list)
    fingerprints: dict | None = None
    last: float = field(default_factory=time.monotonic)
    gather_to_main: Callable[[object], list | None] = lambda own: [own]

    def due(self) -> bool:
        """This process's view of whether a periodic checkpoint is due (the loop agrees on it)."""
        return time.monotonic() - self.last >= self.every_s

    def save(self, shared: dict, own: dict) -> str:
        """Every process calls this at the same point: `own` (this process's streams and sums)
        goes to the main process, which writes one file with all of them. Returns the path, or ""
        when it could not be written for want of space: a checkpoint only saves time, so the run
        warns in one line and trains on."""
        self.last = time.monotonic()
        per_process = self.gather_to_main(on_cpu(own))
        if not self.is_main:
            return ""
        extra = {"fingerprints": self.fingerprints} if self.fingerprints is not None else {}
        try:
            return str(write_checkpoint(self.folder, {**shared, "processes": per_process,
                                                      "curves": list(self.curves), **extra}))
        except DiskFullError as exc:
            tqdm.write(f"warning: checkpoint not saved ({exc}); training goes on without it")
            return ""


def generator_state(gen: torch.Generator | None):
    return gen.get_state() if gen is not None else None


def on_cpu(obj):
    """`obj` with every tensor copied to the CPU (gathered over gloo, and readable anywhere)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(on_cpu(v) for v in obj)
    return obj


def saved_processes(resume: dict) -> list[dict]:
    """Each process's own state in a checkpoint, by process index. A checkpoint written before
    they were saved per process holds the main process's only, at the top level."""
    if "processes" in resume:
        return list(resume["processes"])
    return [{"rng": resume["rng"], "method": resume["method"], "partial": resume["partial"]}]


@dataclass
class ProcessResume:
    """What one process continues from: its own saved state (None: fresh streams and running
    sums), the epoch's partial sums, the loader's shuffling state at the epoch's start, and the
    one line to print when the process count changed (else None)."""
    own: dict | None
    partial: dict
    loader_epoch_start: torch.Tensor
    notice: str | None


def process_resume(resume: dict, index: int, count: int) -> ProcessResume:
    """This process's part of `resume`, for process `index` of `count`.

    The same count: each process takes its own entry, and the continuation is exact. Another
    count: the networks, optimizer and step still resume (the caller does that); a process
    whose index was saved keeps its streams, the others start fresh ones, and every process
    continues the epoch's loss sums from the saved processes' mean (the logged epoch figure is
    the mean over processes, so it stays the mean over all the epoch's steps)."""
    saved = saved_processes(resume)
    own = saved[index] if index < len(saved) else None
    loader = (own or saved[0])["rng"]["loader_epoch_start"]  # Accelerate syncs it from the main process
    if len(saved) == count:
        return ProcessResume(own, own["partial"], loader, None)
    if count > len(saved):
        new = range(len(saved), count)
        change = f"{describe_processes(new)} start{'s' if len(new) == 1 else ''} fresh streams"
    else:
        change = f"the streams of {describe_processes(range(count, len(saved)))} are left unused"
    notice = (f"checkpoint at step {resume['step']} holds the random streams of {len(saved)} process(es), "
              f"this run has {count}: networks, optimizer and step resume, {change}; "
              "the result will not be bit-identical to an uninterrupted run")
    return ProcessResume(own, mean_partial([p["partial"] for p in saved]), loader, notice)


def describe_processes(indices: range) -> str:
    return ("process " if len(indices) == 1 else "processes ") + ", ".join(map(str, indices))


def mean_partial(partials: list[dict]) -> dict:
    """The processes' mean of the epoch's partial loss sums (and of each logged sum)."""
    keys = sorted({k for p in partials for k in p["log_sums"]})
    return {"loss_sum": sum(torch.as_tensor(p["loss_sum"]) for p in partials) / len(partials),
            "log_sums": {k: sum(torch.as_tensor(p["log_sums"].get(k, 0.0)) for p in partials) / len(partials)
                         for k in keys}}
