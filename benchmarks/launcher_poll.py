"""One poll of a launcher (`--launcher local`, `--launcher slurm --wait`) on the store at the size
of a real sweep: what the launcher reads every few seconds while its runs go on.

    python -m benchmarks.launcher_poll --runs 10000 --store-dir /tmp/store-10000 --polls 5
    PYTHONPATH=/other/checkout python benchmarks/launcher_poll.py ...   # another checkout's poll

Uses the synthetic store of benchmarks/store.py (built once under --store-dir, or reused), plans
its grid.yaml against it (the sweep's newest recipe, part of it done, some runs RUNNING), and
watches the runs not done, as a launcher launches them. Times, in this process, the start (the
store read once when the command starts) and --polls polls with nothing changed in between (the
median is reported). A checkout from before the watch (store/watch.py) polls with its
`outcomes(...)`, which read the whole store each time. Prints one JSON line; nothing here is a test.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # run as a file: benchmarks.store, after PYTHONPATH


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10_000, help="run folders in the store (default: %(default)s)")
    p.add_argument("--store-dir", type=Path, help="where the store is built and kept (default: "
                   "$TMPDIR/byol-bench-store-<runs>, as benchmarks/store.py)")
    p.add_argument("--polls", type=int, default=5, help="polls timed; the median is reported")
    args = p.parse_args(argv)
    from benchmarks.store import cached_store
    import byol_bench
    from byol_bench.config import load_config
    from byol_bench.launch import common
    from byol_bench.plan.grid import expand_grid
    from byol_bench.store.records import load_runs

    store_dir = args.store_dir or Path(os.environ.get("TMPDIR", "/tmp")) / f"byol-bench-store-{args.runs}"
    results = cached_store(store_dir.resolve(), args.runs, 100)
    runs_dir, cfg = results / "runs", load_config(results.parent / "grid.yaml")
    stale = cfg["run"]["stale_after_s"]
    todo = [s for s in expand_grid(cfg, runs_dir, load_runs(runs_dir, stale)) if not s.done]
    t0 = time.perf_counter()
    if hasattr(common, "watch"):
        launched = common.watch(todo, runs_dir, stale)
        poll = launched.poll
    else:  # before store/watch.py: every poll read the whole store
        since = common.ended_before(todo, runs_dir, stale)
        def poll():
            return common.outcomes(todo, runs_dir, stale, since)
    start_s = time.perf_counter() - t0
    polls, states = [], None
    for _ in range(args.polls):
        t0 = time.perf_counter()
        states = poll()
        polls.append(time.perf_counter() - t0)
    print(json.dumps({"runs": args.runs, "watched": len(todo), "checkout": str(Path(byol_bench.__file__).parents[1]),
                      "start_s": round(start_s, 4), "poll_median_s": round(statistics.median(polls), 4),
                      "polls_s": [round(x, 4) for x in polls],
                      "states": {str(k): list(states.values()).count(k) for k in set(states.values())},
                      "load_average": os.getloadavg()}))


if __name__ == "__main__":
    main()
