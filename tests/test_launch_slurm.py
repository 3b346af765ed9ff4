"""--launcher slurm on the one-node SLURM of scripts/slurm-local.sh (issue 10): the smoke grid
as a submitit job array; a task cancelled mid-run (scancel: SIGTERM) and the same command
submitted again, which resumes it from its checkpoint; a task signalled with SIGUSR2, which
requeues itself and resumes; a run data-parallel over two tasks (gloo, one CPU each).

The final store and leaderboard equal those of an inline run of the same grid with the same
number of CPU threads per run (1: the tasks get one CPU each, and on CPU a run's numbers depend
on its thread count, harness/launch/local.py). Skipped with one reason where no cluster can be
had (tests/slurm_cluster.py). Every wait has a deadline: a hang fails the test and cancels its
jobs, never blocks the suite.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("submitit")

from bounded import deadline  # noqa: E402
from byol_bench.cli import main  # noqa: E402
from byol_bench.store.encoders import load_encoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--config", str(ROOT / "configs/smoke.yaml"), "--set", "backbone.width=4", "--set", "byol.proj_hidden=16",
        "--set", "byol.pred_hidden=16", "--set", "byol.proj_dim=8", "--set", "pretrain.epochs=12",
        "--set", "run.checkpoint_every_min=0"]
SLURM = ["--launcher", "slurm", "--set", "slurm.partition=debug", "--set", "slurm.gpus_per_run=0",
         "--set", "slurm.cpus_per_run=1", "--set", "slurm.mem_gb=1", "--set", "slurm.time_min=10",
         "--set", "slurm.signal_delay_s=30", "--set", "slurm.poll_s=1"]
DEADLINE_S = 120


def cancel_jobs(results: Path) -> None:
    jobs = json.loads((results / "slurm" / "jobs.json").read_text()) if (results / "slurm" / "jobs.json").exists() else {}
    if jobs:
        subprocess.run(["scancel", *jobs.values()], timeout=30)


def squeue(job_ids) -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True, timeout=30).stdout
    states = dict(line.split("|", 1) for line in out.split())
    return {j: states[j] for j in job_ids if j in states}


def wait_until(predicate, what: str, timeout: float = DEADLINE_S, every: float = 0.2):
    end = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
    return value


def submitted(out: str) -> dict[str, str]:
    """run hash -> job id, from the lines `  <job id>  <label>  [<run hash>]` the command prints."""
    found = {}
    for line in out.splitlines():
        if line.startswith("  ") and line.rstrip().endswith("]"):
            job_id, *_, tag = line.split()
            found[tag.strip("[]")] = job_id
    return found


def records(results: Path) -> list[dict]:
    out = []
    for folder in sorted((results / "runs").glob("[0-9]*"), key=lambda p: int(p.name)):
        out.append({"id": int(folder.name), "config": json.loads((folder / "config.json").read_text()),
                    "run": json.loads((folder / "run.json").read_text()),
                    "info": json.loads((folder / "info.json").read_text()) if (folder / "info.json").exists() else {},
                    "metrics": json.loads((folder / "metrics.json").read_text())})
    return out


def newest(results: Path) -> dict[str, dict]:
    """run hash -> its newest record."""
    return {r["config"]["run_hash"]: r for r in records(results)}


def numbers(record: dict) -> tuple:
    scores = {k: v for k, v in record["run"]["result"].items() if not k.startswith("cost/")}
    return scores, record["metrics"].get("train/loss", {}).get("values")


def encoders(results: Path) -> dict[str, dict]:
    return {p.stem: load_encoder(p)["state_dict"] for p in (results / "encoders").glob("*.safetensors")}


def assert_same_as_inline(results: Path, inline: Path) -> None:
    mine, theirs = newest(results), newest(inline)
    for store in (results, inline):  # every run noted by its run hash: a task looks up only its own
        assert all((store / "runs" / "_by_hash" / r["config"]["run_hash"] / str(r["id"])).is_file()
                   for r in records(store))
    assert all(r["run"]["status"] == "COMPLETED" for r in mine.values())
    for run_hash, record in mine.items():
        assert numbers(record) == numbers(theirs[run_hash]), record["config"]["method"]
    a, b = encoders(results), encoders(inline)
    assert a.keys() <= b.keys()
    assert all(torch.equal(a[k][n], b[k][n]) for k in a for n in a[k])


@pytest.fixture(scope="module")
def inline(tmp_path_factory):
    """The smoke grid run inline with one CPU thread, like each array task."""
    results = tmp_path_factory.mktemp("inline")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*GRID, "--results-dir", str(results)]) == 0
    finally:
        torch.set_num_threads(threads)
    return results


def test_array_task_cancelled_mid_run_then_the_same_command_completes_it_equal_to_inline(
        slurm_cluster, tmp_path, inline, capsys):
    results = tmp_path / "results"
    command = [*GRID, *SLURM, "--results-dir", str(results)]
    with deadline(DEADLINE_S, lambda: cancel_jobs(results)):
        assert main(command) == 0
        out = capsys.readouterr().out
        jobs = submitted(out)
        assert "submitted 2 run(s) as job array" in out and len(jobs) == 2
        specs = {r["config"]["method"]: r["config"] for r in newest(inline).values()}
        byol, random_init = specs["byol"], specs["random-init"]
        assert [j.split("_")[1] for j in jobs.values()] == ["0", "1"]  # one array, a task per run
        folder = results / "checkpoints" / byol["pretrain_hash"]
        wait_until(lambda: list(folder.glob("ckpt-*.pt")), "the BYOL task's first checkpoint", every=0.05)
        subprocess.run(["scancel", jobs[byol["run_hash"]]], check=True, timeout=30)
        wait_until(lambda: not squeue(jobs.values()), "both array tasks to end", every=0.5)
        after_cancel = newest(results)
        assert after_cancel[byol["run_hash"]]["run"]["status"] == "INTERRUPTED"
        assert after_cancel[random_init["run_hash"]]["run"]["status"] == "COMPLETED"
        assert list(folder.glob("ckpt-*.pt"))  # checkpointed at the step it was stopped

        assert main([*command, "--wait"]) == 0  # the same command again: only the cancelled run
        out = capsys.readouterr().out
    assert "submitted 1 run(s)" in out and list(submitted(out)) == [byol["run_hash"]]
    assert "1 completed, 0 failed, 1 skipped (already completed)" in out
    final = newest(results)
    assert final[byol["run_hash"]]["info"]["resumed_from"]["step"] > 0
    assert final[byol["run_hash"]]["metrics"]["train/loss"]["steps"] == list(range(1, 13))
    assert final[byol["run_hash"]]["info"]["cpu_threads"] == 1
    assert_same_as_inline(results, inline)
    assert json.loads((results / "leaderboard.json").read_text()) == json.loads((inline / "leaderboard.json").read_text())
    assert [r["run"]["status"] for r in records(results)].count("COMPLETED") == 2
    assert not list((results / "claims").glob("*.json"))


def test_sigusr2_requeues_the_task_which_resumes_from_its_checkpoint(slurm_cluster, tmp_path, inline, capsys):
    """SLURM's time-limit warning (and submitit's preemption signal): the run checkpoints, the
    task requeues itself through submitit, and the requeued task completes the run. SLURM holds
    a requeued batch job for about two minutes (BeginTime); the test releases it at once."""
    results = tmp_path / "results"
    command = [*GRID, *SLURM, "--methods", "byol", "--results-dir", str(results)]
    with deadline(DEADLINE_S, lambda: cancel_jobs(results)):
        assert main(command) == 0
        (run_hash, job_id), = submitted(capsys.readouterr().out).items()
        pretrain_hash = newest(inline)[run_hash]["config"]["pretrain_hash"]
        wait_until(lambda: list((results / "checkpoints" / pretrain_hash).glob("ckpt-*.pt")),
                   "the first checkpoint", every=0.05)
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=30)
        wait_until(lambda: squeue([job_id]).get(job_id) == "PENDING", "the task to be requeued", every=0.2)
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True, timeout=30)
        assert main([*command, "--wait"]) == 0  # nothing to submit: it waits for the requeued task
        out = capsys.readouterr().out
    assert f"left to job {job_id}, still queued or running" in out and "submitted" not in out
    statuses = [r["run"]["status"] for r in records(results)]
    assert statuses == ["INTERRUPTED", "COMPLETED"]
    final = newest(results)[run_hash]
    assert final["info"]["resumed_from"]["step"] > 0
    assert numbers(final) == numbers(newest(inline)[run_hash])
    assert_same_as_inline(results, inline)


def test_a_run_data_parallel_over_two_tasks_and_wait_for_a_running_task(slurm_cluster, tmp_path, capsys):
    """slurm.tasks_per_run=2 on CPU: the job's two tasks form one gloo group from submitit's
    JobEnvironment; the run is observed once, by the main process, with world size 2. The same
    command with --wait, given while that task runs, submits nothing and waits for it."""
    results = tmp_path / "results"
    command = [*GRID, *SLURM, "--methods", "byol", "--set", "pretrain.epochs=8", "--set", "slurm.tasks_per_run=2",
               "--set", "slurm.cpus_per_run=2", "--results-dir", str(results)]
    with deadline(DEADLINE_S, lambda: cancel_jobs(results)):
        assert main(command) == 0
        (job_id,) = submitted(capsys.readouterr().out).values()
        wait_until(lambda: list((results / "runs").glob("[0-9]*/run.json")), "the run to start", every=0.1)
        assert main([*command, "--wait"]) == 0
    out = capsys.readouterr().out
    assert f"left to job {job_id}, still queued or running" in out and "submitted" not in out
    assert "1 completed, 0 failed, 0 skipped (already completed)" in out
    (record,) = records(results)
    assert record["run"]["status"] == "COMPLETED"
    assert record["info"]["world_size"] == 2 and record["info"]["pretrain_steps"] == 8 * 16
