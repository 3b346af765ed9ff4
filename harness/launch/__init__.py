"""Launchers (issue 10): where the runs of a grid execute.

    --launcher inline            this process walks the grid (the default; `accelerate launch` for DDP)
    --launcher local --workers N N child processes on this machine, one GPU each (CUDA_VISIBLE_DEVICES),
                                 or on CPU the cores divided between them (harness/launch/local.py)
    --launcher slurm [--wait]    one submitit job-array task per run still to do (harness/launch/slurm.py)

Whatever the launcher, a run executes through the same `run_grid` (harness/run/execute.py): the
store, run claims, checkpoints and resume are the launchers' only means of coordination, so a
run executes exactly once however many invocations and workers share a results folder, and
its numbers do not depend on the launcher (given the same number of CPU threads per run on
CPU: see local.py).
"""
from __future__ import annotations

import os

from byol_bench.errors import UserError

LAUNCHERS = ("inline", "local", "slurm")


def check_flags(args) -> None:
    """The launcher flags that go together; one clear message otherwise (before any work)."""
    if args.workers is not None and args.launcher != "local":
        raise UserError("--workers goes with --launcher local (N runs at once on this machine)")
    if args.launcher == "local":
        if args.workers is None:
            raise UserError("--launcher local needs --workers N (runs at once: one per GPU, or CPU cores divided by N)")
        if args.workers < 1:
            raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.wait and args.launcher != "slurm":
        raise UserError("--wait goes with --launcher slurm (wait for the job array, then write the leaderboard)")
    if args.launcher != "inline" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError(f"--launcher {args.launcher} starts its own processes; run it without accelerate "
                        "launch / torchrun (for data-parallel runs on SLURM set slurm.gpus_per_run)")


def launch(args, cfg: dict, specs: list, results_dir) -> int:
    """Hand the expanded grid to the chosen launcher; returns the command's exit code."""
    if args.launcher == "local":
        from byol_bench.launch.local import run_local
        return run_local(cfg, specs, results_dir, args.workers)
    if args.launcher == "slurm":
        from byol_bench.launch.slurm import submit
        return submit(cfg, specs, results_dir, wait=args.wait)
    raise AssertionError(args.launcher)
