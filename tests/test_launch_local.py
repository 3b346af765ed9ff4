"""--launcher local --workers N (issue 10): the same numbers as inline, run for run; each run
executed once; SIGTERM to the launcher checkpoints every worker's run and the same command
resumes them; the launcher flags and the slurm settings fail in one line; the slurm section is
not part of any run's identity.

On CPU a run's numbers depend on its thread count (harness/launch/local.py), so the inline
reference runs with the workers' thread count: 2 workers on this 2-core machine get 1 each.
Every wait has a deadline (SIGALRM): a hang fails the test, and the launcher's cleanup stops its
workers.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from bounded import deadline
from byol_bench.cli import main
from byol_bench.store.encoders import load_encoder

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", str(ROOT / "configs/smoke.yaml"), "--set", "backbone.width=4", "--set", "byol.proj_hidden=16",
        "--set", "byol.pred_hidden=16", "--set", "byol.proj_dim=8"]
GRID = [*TINY, "--methods", "byol,random-init", "--seeds", "0,1", "--set", "pretrain.epochs=2"]
WORKERS = 2


@contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def records(results: Path) -> list[dict]:
    out = []
    for folder in sorted((results / "runs").glob("[0-9]*"), key=lambda p: int(p.name)):
        out.append({"config": json.loads((folder / "config.json").read_text()),
                    "run": json.loads((folder / "run.json").read_text()),
                    "info": json.loads((folder / "info.json").read_text()) if (folder / "info.json").exists() else {},
                    "metrics": json.loads((folder / "metrics.json").read_text())})
    return out


def numbers(record: dict) -> tuple:
    scores = {k: v for k, v in record["run"]["result"].items() if not k.startswith("cost/")}
    return scores, record["metrics"].get("train/loss", {}).get("values")


def encoders(results: Path) -> dict:
    return {p.stem: load_encoder(p)["state_dict"] for p in (results / "encoders").glob("*.safetensors")}


def threads_per_worker() -> int:
    return max(1, len(os.sched_getaffinity(0)) // WORKERS)


def test_two_workers_give_the_numbers_of_inline_run_for_run(tmp_path, capsys):
    inline, local = tmp_path / "inline", tmp_path / "local"
    with torch_threads(threads_per_worker()):
        assert main([*GRID, "--results-dir", str(inline)]) == 0
    capsys.readouterr()
    with deadline(240):
        assert main([*GRID, "--results-dir", str(local), "--launcher", "local", "--workers", str(WORKERS)]) == 0
    out = capsys.readouterr().out
    assert out.count("local: worker ") == WORKERS
    assert "4 completed, 0 failed, 0 skipped (already completed)" in out
    by_hash = {}
    for record in records(local):  # each run executed exactly once, by one of the workers
        by_hash.setdefault(record["config"]["run_hash"], []).append(record)
    reference = {r["config"]["run_hash"]: r for r in records(inline)}
    assert by_hash.keys() == reference.keys() and all(len(v) == 1 for v in by_hash.values())
    for run_hash, (record,) in by_hash.items():
        assert record["run"]["status"] == "COMPLETED"
        assert record["info"]["cpu_threads"] == threads_per_worker()
        assert numbers(record) == numbers(reference[run_hash]), record["config"]["method"]
    mine, theirs = encoders(local), encoders(inline)
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k][n], theirs[k][n]) for k in mine for n in mine[k])
    assert json.loads((local / "leaderboard.json").read_text()) == json.loads((inline / "leaderboard.json").read_text())
    assert not list((local / "claims").glob("*.json"))

    assert main([*GRID, "--results-dir", str(local), "--launcher", "local", "--workers", str(WORKERS)]) == 0
    assert "0 completed, 0 failed, 4 skipped (already completed)" in capsys.readouterr().out  # nothing started


def test_sigterm_to_the_launcher_checkpoints_each_workers_run_and_the_same_command_resumes(tmp_path, capsys):
    """The launcher runs in this process (its workers are children); a helper thread sends this
    process SIGTERM once both workers' runs have checkpointed."""
    results = tmp_path / "results"
    grid = [*TINY, "--methods", "byol", "--seeds", "0,1", "--set", "pretrain.epochs=12",
            "--set", "run.checkpoint_every_min=0", "--results-dir", str(results), "--launcher", "local",
            "--workers", str(WORKERS)]
    sent = threading.Event()

    def terminate_once_both_checkpointed():
        end = time.monotonic() + 120
        while time.monotonic() < end:
            if len([d for d in (results / "checkpoints").glob("*") if list(d.glob("ckpt-*.pt"))]) == 2:
                sent.set()
                os.kill(os.getpid(), signal.SIGTERM)  # the launcher's handler forwards it
                return
            time.sleep(0.05)

    helper = threading.Thread(target=terminate_once_both_checkpointed, daemon=True)
    helper.start()
    with deadline(180):
        code = main(grid)
    helper.join(timeout=5)
    assert sent.is_set(), "the two runs did not both checkpoint"
    assert code == 128 + signal.SIGTERM
    captured = capsys.readouterr()
    assert "0 completed, 0 failed, 0 skipped (already completed), 2 interrupted" in captured.out
    assert "SIGTERM forwarded to the workers" in captured.err
    assert [r["run"]["status"] for r in records(results)] == ["INTERRUPTED", "INTERRUPTED"]
    with deadline(180):
        assert main(grid) == 0
    assert "2 completed, 0 failed, 0 skipped" in capsys.readouterr().out
    resumed = [r for r in records(results) if r["run"]["status"] == "COMPLETED"]
    assert len(resumed) == 2 and all(r["info"]["resumed_from"]["step"] > 0 for r in resumed)
    assert all(r["metrics"]["train/loss"]["steps"] == list(range(1, 13)) for r in resumed)


@pytest.mark.parametrize("argv, message", [
    (["--workers", "2"], "--workers goes with --launcher local"),
    (["--launcher", "local"], "--launcher local needs --workers N"),
    (["--launcher", "local", "--workers", "0"], "--workers must be at least 1"),
    (["--wait"], "--wait goes with --launcher slurm"),
    (["--launcher", "pbs"], "invalid choice: 'pbs'"),
    (["--launcher", "slurm", "--set", "slurm.time_min=0", "--set", "slurm.cpus_per_run=3",
      "--set", "slurm.gpus_per_run=0", "--set", "slurm.tasks_per_run=2"],
     "bad slurm settings: slurm.time_min must be at least 1, got 0; slurm.cpus_per_run (3) must divide "
     "over the run's 2 tasks"),
    (["--launcher", "slurm", "--set", "slurm.mem_gb=lots"], "config key 'slurm.mem_gb' wants a float"),
])
def test_launcher_flags_and_slurm_settings_fail_in_one_line(tmp_path, capsys, argv, message):
    assert main([*TINY, "--results-dir", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_the_slurm_section_is_not_part_of_a_runs_identity(tmp_path):
    from byol_bench.config import load_config
    from byol_bench.plan.grid import expand_grid
    plain = expand_grid(load_config(ROOT / "configs/smoke.yaml"), tmp_path / "runs")
    other = expand_grid(load_config(ROOT / "configs/smoke.yaml", ["slurm.time_min=5", "slurm.gpus_per_run=4",
                                                                  "slurm.partition=gpu"]), tmp_path / "runs")
    assert [s.config["run_hash"] for s in plain] == [s.config["run_hash"] for s in other]
    assert all("slurm" not in s.config for s in plain)
