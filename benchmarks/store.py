"""The store at the size of a real sweep: `--leaderboard`, `--status` and `--dry-run` timed on it.

    python -m benchmarks.store --runs 10000 --repeat 3
    PYTHONPATH=/other/checkout python -m benchmarks.store ...   # time another checkout's commands

Builds (once, cached under --store-dir) a synthetic store of --runs Sacred run folders in the
runner's on-disk layout: config.json as the plan resolves it (fingerprints and describe block
included: each config comes from `expand_grid`, so the hashes are the real ones), run.json as
Sacred writes it (host, experiment, dependencies, result, heartbeat; fail_trace for FAILED runs),
metrics.json with --epochs points per curve, info.json and cout.txt. The sweep is --methods x
--datasets x --seeds per recipe (benchmark.recipe r00, r01, ... until --runs folders exist);
about 3% of the runs failed first, 1% were interrupted, 2% were run twice (duplicates), and the
newest recipe is the one in progress: part of it done, some runs RUNNING (with heartbeats long
stale by now), the rest queued. `grid.yaml` in the store folder is that newest recipe's config,
so --dry-run and --status plan its whole grid against the store.

Then times each command as a user runs it: a fresh interpreter (`python -m byol_bench`), the
median of --repeat runs, the commands taken in turn (A, B, C, A, B, C, ...) so a noisy machine
weighs on each alike. Interpreter start-up (`python -c pass`) and importing the commands' modules
are timed the same way and reported separately. `--leaderboard` keeps the figures whose inputs
did not change (the warm case after a first run); `--leaderboard-cold` deletes results/figures
first, so every figure is drawn. Prints one JSON line; nothing here is a test.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

METHODS = ("byol", "byol-ccsl", "byol-cssl", "byol-nn", "byol-nobn-gn", "byol-nobn-gn-ws", "byol-nobn-ln",
           "byol-nobn-ln-ws", "byol-nobn-none", "byol-nobn-none-ws", "byol-tracin", "random-init", "supervised")
DATASETS = ("digits", "fashion-mnist", "mnist", "kmnist", "dermamnist", "stl10")
COMMANDS = ("--leaderboard", "--status", "--dry-run")
COLD = {"--leaderboard-cold": "--leaderboard"}  # --leaderboard after deleting results/figures
LAYOUT = 1  # bump when the store's shape changes: a cached store of another layout is rebuilt


def recipe_yaml(recipe: int, methods, datasets, seeds: int, data_root: Path) -> str:
    """One recipe's config: the sweep's grid under its own benchmark.recipe (its own tables)."""
    return (f"# synthetic sweep, recipe r{recipe:02d} (benchmarks/store.py)\n"
            f"benchmark:\n  methods: [{', '.join(methods)}]\n  datasets: [{', '.join(datasets)}]\n"
            f"  seeds: {seeds}\n  protocols: [linear, knn]\n  recipe: r{recipe:02d}\n"
            f"backbone: {{name: small-cnn, width: 32}}\n"
            f"pretrain: {{epochs: {100 + 50 * (recipe % 4)}, batch_size: {128 * (1 + recipe % 2)}}}\n"
            f"data: {{root: {str(data_root)!r}}}\n")


def sacred_run_json(rng: random.Random, rc: dict, status: str, start: datetime) -> dict:
    """run.json as Sacred's FileStorageObserver writes it for our adapter."""
    method, seed = rc["method"], rc["seed"]
    skill = 0.70 + 0.02 * (zlib.crc32(method.encode()) % 7) + 0.01 * (zlib.crc32(rc["dataset"].encode()) % 5)
    result = {}
    if status == "COMPLETED":
        for protocol in rc["protocols"]:
            acc = min(0.999, skill + rng.gauss(0, 0.01) + (0.02 if protocol == "linear" else 0.0))
            result.update({f"{protocol}/accuracy": acc, f"{protocol}/balanced_accuracy": acc - 0.003,
                           f"{protocol}/macro_auroc": min(0.9999, acc + 0.15), f"{protocol}/macro_f1": acc - 0.002})
        result.update({"cost/peak_mem_mb": 900 + rng.random() * 50, "cost/pretrain_img_per_s": 800 + rng.random() * 100,
                       "cost/pretrain_s": 600 + rng.random() * 60, "cost/wall_s": 650 + rng.random() * 60})
    stop = start + timedelta(seconds=650 + seed)
    run = {"artifacts": [], "command": "main",
           "experiment": {"base_dir": "/home/user/byol-bench/harness/run",
                          "dependencies": ["accelerate==1.16.0", "byol-bench==0.1.0", "numpy==2.4.6", "sacred==0.8.7",
                                           "scipy==1.17.1", "torch==2.14.1", "torchvision==0.29.1", "tqdm==4.70.1"],
                          "mainfile": "sacred_adapter.py", "name": f"{rc['dataset']}.{method}",
                          "repositories": [{"commit": "a0ea0ded2a6eed17e3afcecb0f7fccbc94628d03", "dirty": False,
                                            "url": "git@example.org:lab/byol-bench.git"}],
                          "sources": [["sacred_adapter.py", "_sources/sacred_adapter_2eff778617d8c62575a4e55991b43bbf.py"]]},
           "heartbeat": stop.replace(tzinfo=None).isoformat(),
           "host": {"ENV": {}, "cpu": "AMD EPYC 7763 64-Core Processor", "gpus": {"driver_version": "550.54.15",
                    "gpus": [{"model": "NVIDIA A100-SXM4-80GB", "persistence_mode": False, "total_memory": 81920}]},
                    "hostname": f"node{rng.randrange(40):02d}", "os": ["Linux", "Linux-5.14.0-x86_64-with-glibc2.34"],
                    "python_version": "3.11.7"},
           "meta": {"command": "main", "named_configs": [], "options": {"--loglevel": "ERROR", "--unobserved": False}},
           "resources": [], "result": result or None, "start_time": start.replace(tzinfo=None).isoformat(),
           "status": status}
    if status != "RUNNING":
        run["stop_time"] = stop.replace(tzinfo=None).isoformat()
    if status == "FAILED":
        run["fail_trace"] = ["Traceback (most recent call last):\n", '  File "harness/training/loop.py", line 212\n',
                             "RuntimeError: loss is NaN at step 4096 (diverged)\n"]
    return run


def metrics_json(rng: random.Random, rc: dict, epochs: int, start: datetime) -> dict:
    """Sacred's metrics.json: per-epoch curves (random-init logs none)."""
    if rc["method"] == "random-init":
        return {}
    steps = list(range(epochs))
    stamps = [(start + timedelta(seconds=3 * s)).replace(tzinfo=None).isoformat() for s in steps]
    level = 1.0 + rng.random()
    names = ["train/loss", f"train/loss/{rc['method'].split('-')[0]}", "monitor/rankme", "monitor/proj_std"]
    return {name: {"steps": steps, "timestamps": stamps,
                   "values": [level * (1 + 3 / (1 + s)) + rng.gauss(0, 0.01) for s in steps]} for name in names}


def write_run(folder: Path, rc: dict, run: dict, metrics: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(rc, indent=2, sort_keys=True))
    (folder / "run.json").write_text(json.dumps(run, indent=2, sort_keys=True))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    (folder / "info.json").write_text(json.dumps({"cpu_threads": 16, "device": "cuda", "world_size": 1}, indent=2))
    (folder / "cout.txt").write_text("epochs: 100%|██████████| done\n")


def build_store(store_dir: Path, runs: int, methods=METHODS, datasets=DATASETS, seeds: int = 10,
                epochs: int = 100, seed: int = 0) -> Path:
    """Write the synthetic store under `store_dir` (results/runs/<id>/ and grid.yaml); returns the
    results folder. Each recipe's configs come from the plan itself (expand_grid on an empty store)."""
    from byol_bench.config import load_config
    from byol_bench.plan.grid import expand_grid

    rng = random.Random(seed)
    results = store_dir / "results"
    runs_dir = results / "runs"
    data_root, empty = store_dir / "data", store_dir / "empty-runs"
    data_root.mkdir(parents=True, exist_ok=True)
    (runs_dir / "_sources").mkdir(parents=True)
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    run_id, recipe = 0, 0

    def add(rc: dict, status: str) -> None:
        nonlocal run_id, start
        run_id += 1
        start += timedelta(seconds=97)
        write_run(runs_dir / str(run_id), rc, sacred_run_json(rng, rc, status, start),
                  metrics_json(rng, rc, epochs if status == "COMPLETED" else epochs // 3, start))

    while run_id < runs:
        grid_yaml = store_dir / "grid.yaml"
        grid_yaml.write_text(recipe_yaml(recipe, methods, datasets, seeds, data_root))
        specs = expand_grid(load_config(grid_yaml), empty)
        left = runs - run_id
        # The newest recipe is in progress when its grid does not fit whole.
        in_progress = left < len(specs) * 1.07
        for spec in specs:
            if in_progress and run_id >= runs - 3:
                add(spec.config, "RUNNING")  # the newest recipe: 3 runs in progress, the rest queued
                if run_id >= runs:
                    break
                continue
            if run_id >= runs:
                break
            draw = rng.random()
            if draw < 0.03:
                add(spec.config, "FAILED")      # failed first, then re-run to completion
            elif draw < 0.04:
                add(spec.config, "INTERRUPTED")  # preempted, then resumed by a new run
            if run_id < runs:
                add(spec.config, "COMPLETED")
            if draw > 0.98 and run_id < runs:
                add(spec.config, "COMPLETED")   # run twice: the newest per hash counts
        recipe += 1
        if in_progress:
            break
    while run_id < runs:  # the grid ended before --runs: pad with duplicates of its last run
        add(specs[-1].config, "COMPLETED")
    shutil.rmtree(empty, ignore_errors=True)
    return results


def cached_store(store_dir: Path, runs: int, epochs: int) -> Path:
    """The store under `store_dir`, built unless one of this size and layout is there already."""
    stamp = store_dir / "built.json"
    wanted = {"runs": runs, "epochs": epochs, "layout": LAYOUT}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return store_dir / "results"
    shutil.rmtree(store_dir, ignore_errors=True)
    store_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    results = build_store(store_dir, runs, epochs=epochs)
    print(f"built {runs} runs under {results} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    stamp.write_text(json.dumps(wanted))
    return results


def timed(argv: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10_000, help="run folders in the store (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=100, help="points per logged curve (default: %(default)s)")
    p.add_argument("--store-dir", type=Path, help="where the store is built and kept (default: "
                   "$TMPDIR/byol-bench-store-<runs>)")
    p.add_argument("--repeat", type=int, default=3, help="timings per command; the median is reported")
    p.add_argument("--commands", default=",".join(COMMANDS),
                   help="comma list of %(default)s and --leaderboard-cold (figures/ deleted first)")
    args = p.parse_args(argv)
    store_dir = args.store_dir or Path(os.environ.get("TMPDIR", "/tmp")) / f"byol-bench-store-{args.runs}"
    results = cached_store(store_dir.resolve(), args.runs, args.epochs)
    grid = results.parent / "grid.yaml"
    py = sys.executable
    commands = [c.strip() for c in args.commands.split(",") if c.strip()]
    probes = {"interpreter": [py, "-c", "pass"],
              "import": [py, "-c", "import byol_bench.cli, byol_bench.plan.grid, byol_bench.report.leaderboard"]}
    for command in commands:
        flag = COLD.get(command, command)
        probes[command] = [py, "-m", "byol_bench", "--config", str(grid), "--results-dir", str(results), flag]
    times: dict[str, list[float]] = {name: [] for name in probes}
    for _ in range(args.repeat):
        for name, argv_ in probes.items():
            if name in COLD:  # the leaderboard with no figure to keep: every one drawn
                shutil.rmtree(results / "figures", ignore_errors=True)
            times[name].append(timed(argv_, results.parent))
    import byol_bench
    print(json.dumps({"runs": args.runs, "store": str(results), "checkout": str(Path(byol_bench.__file__).parents[1]),
                      "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
                      "all_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
                      "load_average": os.getloadavg(), "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
