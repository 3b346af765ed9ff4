"""--launcher local --workers N: N runs at once on this machine (a 4-8 GPU workstation
without SLURM, or a CPU box).

Design: N child processes of the same command (python -m byol_bench) with `--launcher inline`, each walking the grid
in order. Run claims (harness/store/claims.py) make each run execute exactly once: a worker skips a
run another worker holds and takes the next, so the N workers spread over the grid with no
scheduler of their own, and a run started by another invocation on the same results folder is
left to it as well. The parent

- resolves the config once and hands the children that resolved config as a YAML file (so the
  children expand the same grid, with the same run hashes: checked before they start),
- decodes every dataset into the shared cache first (the children memory-map it),
- gives worker i one GPU (CUDA_VISIBLE_DEVICES=<i-th visible GPU>), or on CPU cores // N
  threads (OMP_NUM_THREADS, MKL_NUM_THREADS) and its own slice of the cores (affinity); N as
  asked, even when fewer runs are left to start (so the thread count, and with it a run's
  numbers, does not depend on how much of the grid was done before),
- sends each child's output to <results>/local/<stamp>/worker-<i>.log and prints one progress
  line whenever the store changes,
- forwards SIGTERM / SIGUSR2 to the children and turns SIGINT (Ctrl-C) into SIGTERM, so every
  run in progress checkpoints at its next step; then exits 128 + the signal number like the
  inline launcher (the same command resumes),
- counts from the store (harness/launch/common.py), reports a worker that failed with its log,
  and writes the leaderboard once at the end (the children are started with the hidden
  `--worker` flag, which skips theirs).

Numerics on CPU. PyTorch's CPU kernels split their reductions (matmul, convolution, sums) by
the number of intra-op threads, so a run trained with 1 thread and the same run trained with 2
differ in the low bits, and through training in the reported figures (measured on the smoke
grid: BYOL's epoch-1 loss 2.943235 with 1 thread, 2.943455 with 2; neither MKL_CBWR=STRICT nor
disabling oneDNN makes them agree). Everything else (seeds, data order, augmentation streams)
is the same whatever the launcher, so a run gives the same numbers with the same thread count:
`--launcher local --workers 2` on 2 cores equals `OMP_NUM_THREADS=1 python run_bench.py`, run
for run, bit for bit (tests/test_launch_local.py). An OMP_NUM_THREADS already set for the
parent is kept for every worker (and no affinity is set then). Each run records its thread
count in info.json (`cpu_threads`). On GPUs the CPU thread count does not enter the numbers.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from byol_bench.errors import UserError
from byol_bench.launch.common import (Progress, child_env, entry_point, finish, progress_line, runs_to_do,
                                      summary_counts, warm_cache, watch)

POLL_S = 2.0


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (empty without CUDA)."""
    import torch
    if not torch.cuda.is_available():
        return []
    count = torch.cuda.device_count()
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def worker_plan(workers: int, gpus: list[str], cores: list[int], env: dict) -> list[tuple[dict, list[int] | None]]:
    """(extra environment, CPU affinity or None) for each worker."""
    if gpus and workers > len(gpus):
        raise UserError(f"--workers {workers}: only {len(gpus)} GPU(s) visible ({','.join(gpus)}); "
                        "one GPU per worker")
    threads_given = env.get("OMP_NUM_THREADS")
    per = max(1, len(cores) // workers)
    plan = []
    for i in range(workers):
        extra: dict[str, str] = {}
        if gpus:
            extra["CUDA_VISIBLE_DEVICES"] = gpus[i]
        affinity = None
        if threads_given:
            extra["MKL_NUM_THREADS"] = env.get("MKL_NUM_THREADS", threads_given)
        else:
            extra["OMP_NUM_THREADS"] = extra["MKL_NUM_THREADS"] = str(per)
            if workers <= len(cores):
                affinity = cores[i * per:(i + 1) * per]
        plan.append((extra, affinity))
    return plan


def run_local(cfg: dict, specs: list, results_dir: Path, workers: int) -> int:
    results_dir = Path(results_dir)
    runs_dir = results_dir / "runs"
    stale = cfg["run"]["stale_after_s"]
    skipped = sum(s.done for s in specs)
    todo, held = runs_to_do(specs, results_dir, stale, cfg["run"]["heartbeat_s"])
    if not todo:
        finish(cfg, results_dir, summary_counts([], skipped, len(held), {}))
        return 0
    gpus = visible_gpus()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    # Threads per run from the N asked for, not from how many start (no idle children when
    # fewer runs are left): a run's CPU numbers depend on its thread count, which must not
    # depend on how much of the grid was done before.
    plan = worker_plan(workers, gpus, cores, dict(os.environ))[:len(todo)]
    cache_dir = Path(cfg["data"]["cache_dir"]) if cfg["data"]["cache_dir"] else results_dir / "cache"
    warm_cache(todo, Path(cfg["data"]["root"]), cache_dir)

    folder = results_dir / "local" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    from byol_bench.config import load_config
    if load_config(config_path) != cfg:  # the children must expand exactly this grid
        raise RuntimeError(f"the resolved config does not survive YAML ({config_path}); please report this")

    argv = ["--config", str(config_path), "--results-dir", str(results_dir), "--launcher", "inline", "--worker"]
    launched = watch(todo, runs_dir, stale)
    procs, logs = [], []
    received: list[int] = []

    def forward(signum, frame):
        received.append(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)
    previous = {sig: signal.signal(sig, forward) for sig in handled}
    try:
        for i, (extra, affinity) in enumerate(plan):
            env = child_env({**os.environ, **extra})  # a checkout's children import that checkout
            log = folder / f"worker-{i}.log"
            logs.append(log)
            with open(log, "w") as out:
                # Own session: a Ctrl-C reaches the parent alone, which forwards it as SIGTERM.
                procs.append(subprocess.Popen(entry_point(*argv), env=env, stdin=subprocess.DEVNULL,
                                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
            if affinity and hasattr(os, "sched_setaffinity"):
                # Before the child's torch starts its thread pool (it is still importing). Cores
                # this process may not use (a cgroup): OSError, and the child runs unpinned.
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(procs[-1].pid, affinity)
            where = f"GPU {extra['CUDA_VISIBLE_DEVICES']}" if gpus else \
                f"{extra.get('OMP_NUM_THREADS', os.environ.get('OMP_NUM_THREADS'))} CPU thread(s)" + \
                (f" on core(s) {','.join(map(str, affinity))}" if affinity else "")
            print(f"local: worker {i} (pid {procs[-1].pid}, {where}) -> {log}", flush=True)
        print(f"local: {len(todo)} run(s) to do over {len(procs)} worker(s)"
              f"{f', {len(held)} left to the invocation that holds them' if held else ''}", flush=True)
        progress = Progress("local")
        while any(p.poll() is None for p in procs):
            progress.show(progress_line(launched.poll()))
            time.sleep(POLL_S)
    finally:
        for proc in procs:  # an exception here (not a signal): stop the children, then wait
            if proc.poll() is None and not received:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    states = launched.poll(fresh=True)  # as the workers left it
    progress.show(progress_line(states))
    failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode != 0]
    finish(cfg, results_dir, summary_counts(todo, skipped, len(held), states))
    if received:
        print(f"interrupted: {signal.Signals(received[0]).name} forwarded to the workers, whose runs "
              "checkpointed; run the same command to resume", file=sys.stderr)
        return 128 + received[0]
    for i, rc in failed:
        tail = logs[i].read_text(errors="replace").strip().splitlines()[-5:]
        print(f"local: worker {i} exited with code {rc}; its log: {logs[i]}", file=sys.stderr)
        for line in tail:
            print(f"  {line}", file=sys.stderr)
    return 1 if failed else 0
