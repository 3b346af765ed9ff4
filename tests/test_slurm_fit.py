"""--launcher slurm on the one-node SLURM of scripts/slurm-local.sh (2 CPUs, about 23.5 GB, no GPU;
tests/slurm_cluster.py) with requests the partition can never run (issue 15, item 10): refused
in one line before anything is submitted; sbatch's own refusal in one line; and `--wait` on a
job that pends for a reason that cannot clear ends in one line and cancels it, instead of
printing "queued" for ever. Every wait is bounded (tests/bounded.py). The rules themselves,
without a cluster: tests/test_slurm_fit_rules.py.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("submitit")

from bounded import deadline  # noqa: E402
from byol_bench.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--config", str(ROOT / "configs/smoke.yaml"), "--methods", "random-init"]
FITS = ["--launcher", "slurm", "--set", "slurm.partition=debug", "--set", "slurm.gpus_per_run=0",
        "--set", "slurm.cpus_per_run=1", "--set", "slurm.mem_gb=1", "--set", "slurm.time_min=10",
        "--set", "slurm.signal_delay_s=30", "--set", "slurm.poll_s=1"]
DEADLINE_S = 60


def jobs_from(folder: Path) -> list[str]:
    """Ids of the queued jobs whose batch script lies under `folder` (other users of the cluster
    may have jobs of their own)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%o"], capture_output=True, text=True, timeout=30).stdout
    return [line.split("|", 1)[0] for line in out.splitlines() if str(folder) in line]


@pytest.fixture(autouse=True)
def _cancel_leftovers(tmp_path):
    """A job a failing test left in the queue would pend for ever on the shared cluster."""
    yield
    if left := jobs_from(tmp_path):
        subprocess.run(["scancel", *left], timeout=30)


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_the_default_request_is_refused_before_submitting(slurm_cluster, tmp_path, capsys):
    """The defaults (8 CPUs, 32 GB, 1 GPU per run) with gpus_per_run=0: CPUs and memory exceed the
    node; before this check the array pended with PartitionConfig for ever."""
    results = tmp_path / "results"
    with deadline(DEADLINE_S):
        rc = main([*GRID, "--launcher", "slurm", "--set", "slurm.partition=debug", "--set", "slurm.gpus_per_run=0",
                   "--results-dir", str(results)])
    line = one_error_line(capsys.readouterr().err)
    assert rc == 2
    assert "nothing submitted" in line and "asked 8 CPUs, 32 GB memory" in line
    assert "largest node of partition debug" in line and "2 CPUs" in line
    assert "slurm.cpus_per_run to at most 2" in line and "slurm.mem_gb to at most" in line
    assert not (results / "slurm" / "jobs.json").exists() and not jobs_from(tmp_path)


def test_a_gpu_on_the_cpu_partition_is_refused_in_one_line(slurm_cluster, tmp_path, capsys):
    results = tmp_path / "results"
    with deadline(DEADLINE_S):
        rc = main([*GRID, *FITS, "--set", "slurm.gpus_per_run=1", "--results-dir", str(results)])
    line = one_error_line(capsys.readouterr().err)
    assert rc == 2
    assert "asked 1 CPU, 1 GB memory, 1 GPU" in line and "no GPU" in line
    assert "slurm.gpus_per_run to 0 or slurm.partition to a GPU partition" in line
    assert not (results / "slurm" / "jobs.json").exists() and not jobs_from(tmp_path)


def test_sbatch_refusal_is_one_line(slurm_cluster, tmp_path, capsys):
    """A partition scontrol does not list is left to sbatch (it may be hidden); its refusal comes
    back as one line (submitit printed sbatch's stderr, then raised) naming the partitions."""
    results = tmp_path / "results"
    with deadline(DEADLINE_S):
        rc = main([*GRID, *FITS, "--set", "slurm.partition=no-such-partition", "--results-dir", str(results)])
    line = one_error_line(capsys.readouterr().err)
    assert rc == 2
    assert line.startswith("error: sbatch refused the job array: ") and "Invalid partition name specified" in line
    assert "slurm.partition 'no-such-partition' is not among this cluster's partitions (debug" in line
    assert not (results / "slurm" / "jobs.json").exists() and not jobs_from(tmp_path)


def test_wait_on_a_job_that_can_never_start_ends_in_one_line_and_cancels_it(slurm_cluster, tmp_path, capsys):
    """An array task submitted earlier with the defaults (8 CPUs, 32 GB: what the command did
    before it checked the partition) is still queued, pending with PartitionConfig. The same grid
    with settings that fit and --wait leaves the run to that job (results/slurm/jobs.json) and
    waited for it for ever; now it ends in one line and cancels the job."""
    results = tmp_path / "results"
    assert main([*GRID, "--dry-run", "--results-dir", str(results)]) == 0
    (run_hash,) = [line.rsplit("[", 1)[1].rstrip("]") for line in capsys.readouterr().out.splitlines()
                   if line.rstrip().endswith("]")]
    folder = results / "slurm"
    folder.mkdir(parents=True)
    script = folder / "earlier-submission.sh"
    script.write_text("#!/bin/bash\nsleep 1\n")
    job_id = subprocess.run(["sbatch", "--parsable", "-J", "byol-bench", "-p", "debug", "-c", "8", "--mem", "32GB",
                             "-t", "240", "-o", "/dev/null", str(script)],
                            capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    (folder / "jobs.json").write_text(json.dumps({run_hash: job_id}))
    with deadline(DEADLINE_S, lambda: subprocess.run(["scancel", job_id], timeout=30)):
        rc = main([*GRID, *FITS, "--wait", "--results-dir", str(results)])
    captured = capsys.readouterr()
    assert f"left to job {job_id}, still queued or running" in captured.out
    line = one_error_line(captured.err)
    assert rc == 2
    assert f"({job_id}) can never start: pending for PartitionConfig" in line
    assert "asked 8 CPUs, 32 GB memory, no GPU, 240 min per run, but the largest node of partition debug" in line
    assert "cancelled them" in line
    assert job_id not in jobs_from(folder)

