"""Where a grid's wall time went, from its stored runs; one JSON line.

    /usr/bin/time -f %e python run_bench.py --results-dir /tmp/r    # note the total
    python -m benchmarks.time_split /tmp/r [--total-s 183.4]

Per run the store has `cost/wall_s` (build, pretraining, evaluation: harness/run/execute.py),
`cost/pretrain_s`, and each protocol's seconds in info.json's `seconds` (the first protocol
also pays the one feature extraction the protocols share). Summed over the runs:
`pretrain_s`, `<protocol>_s`, `run_other_s` (building the method, saving the encoder, the rest
of execute), and `between_runs_s`: the Sacred run's own start and end, the tracker, the claim
(Sacred's start-to-stop time minus cost/wall_s). With `--total-s` (the command's wall time),
`outside_runs_s` is the rest: interpreter start-up and imports, the grid's expansion, loading or
building the dataset cache, the leaderboard.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path


def split(results_dir: Path, total_s: float | None = None) -> dict:
    sums: dict[str, float] = {"runs": 0, "pretrain_s": 0.0, "run_other_s": 0.0, "between_runs_s": 0.0}
    for run in sorted((results_dir / "runs").iterdir()):
        if not (run / "run.json").exists():
            continue
        record = json.loads((run / "run.json").read_text())
        if record.get("status") != "COMPLETED":
            continue
        result = record["result"]
        seconds = json.loads((run / "info.json").read_text()).get("seconds", {})
        sacred_s = (datetime.fromisoformat(record["stop_time"]) - datetime.fromisoformat(record["start_time"])).total_seconds()
        sums["runs"] += 1
        sums["pretrain_s"] += result["cost/pretrain_s"]
        for protocol, s in seconds.items():
            sums[f"{protocol}_s"] = sums.get(f"{protocol}_s", 0.0) + s
        sums["run_other_s"] += result["cost/wall_s"] - result["cost/pretrain_s"] - sum(seconds.values())
        sums["between_runs_s"] += sacred_s - result["cost/wall_s"]
    if total_s is not None:
        in_runs = sum(v for k, v in sums.items() if k != "runs")
        sums["total_s"] = total_s
        sums["outside_runs_s"] = total_s - in_runs
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in sums.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("--total-s", type=float, default=None, help="the command's wall time")
    args = parser.parse_args(argv)
    print(json.dumps(split(args.results_dir, args.total_s)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
