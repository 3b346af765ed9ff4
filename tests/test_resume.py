"""Checkpoints and resume (issue 10): a run killed with SIGKILL, or stopped by SIGTERM, is
resumed by the same command and ends bit-identical to an uninterrupted run with the same seed;
a corrupt checkpoint is set aside and the previous one used."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from byol_bench.cli import main
from byol_bench.store.encoders import load_encoder

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--config", str(ROOT / "configs/smoke.yaml"), "--methods", "byol", "--seeds", "1",
        "--set", "backbone.width=4", "--set", "byol.proj_hidden=16", "--set", "byol.pred_hidden=16",
        "--set", "byol.proj_dim=8", "--set", "pretrain.epochs=6", "--set", "run.checkpoint_every_min=0",
        "--set", "run.log_every_steps=4"]
CLI = "import sys\nfrom byol_bench.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def completed(results: Path) -> dict:
    for folder in sorted((results / "runs").glob("[0-9]*"), key=lambda p: int(p.name), reverse=True):
        run = json.loads((folder / "run.json").read_text())
        if run["status"] == "COMPLETED":
            return {"run": run, "info": json.loads((folder / "info.json").read_text()),
                    "metrics": json.loads((folder / "metrics.json").read_text())}
    raise AssertionError("no completed run")


def encoder_state(results: Path) -> dict:
    (path,) = (results / "encoders").glob("*.safetensors")
    return load_encoder(path)["state_dict"]


def logged_losses(results: Path) -> dict[int, float]:
    """step -> step/loss in the TensorBoard folder of the newest run (<run id>-<run hash>)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    folder = max((results / "tensorboard").iterdir(), key=lambda p: int(p.name.split("-")[0]))
    events = EventAccumulator(str(folder))
    events.Reload()
    return {e.step: e.value for e in events.Scalars("step/loss")}


def scores(run: dict) -> dict:
    return {k: v for k, v in run["run"]["result"].items() if not k.startswith("cost/")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    results = tmp_path_factory.mktemp("uninterrupted")
    assert main([*GRID, "--results-dir", str(results)]) == 0
    return results


def start_and_interrupt(results: Path, sig: int, after_checkpoints: int) -> subprocess.Popen:
    """Start the grid in a subprocess and send `sig` once `after_checkpoints` checkpoints exist."""
    proc = subprocess.Popen([sys.executable, "-c", CLI, *GRID, "--results-dir", str(results)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    seen = set()
    while time.time() < deadline and proc.poll() is None:
        seen |= {p.name for p in (results / "checkpoints").glob("*/ckpt-*.pt")}
        if len(seen) >= after_checkpoints:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"the run ended or stalled before {after_checkpoints} checkpoints: {proc.stderr.read()[-2000:]}")
    os.kill(proc.pid, sig)
    proc.wait(timeout=120)
    return proc


def test_sigkill_in_the_middle_of_pretraining_then_the_same_command_is_bit_identical(tmp_path, uninterrupted):
    results = tmp_path / "killed"
    start_and_interrupt(results, signal.SIGKILL, after_checkpoints=2)
    assert not (results / "encoders").exists()  # it did not finish
    assert main([*GRID, "--results-dir", str(results)]) == 0
    resumed = completed(results)
    assert resumed["info"]["resumed_from"]["step"] > 0
    reference = completed(uninterrupted)
    assert scores(resumed) == scores(reference)
    assert resumed["metrics"]["train/loss"]["values"] == reference["metrics"]["train/loss"]["values"]
    assert resumed["metrics"]["train/loss"]["steps"] == [1, 2, 3, 4, 5, 6]
    # The resumed run's tracker goes on counting optimizer steps where the checkpoint was.
    start, every = resumed["info"]["resumed_from"]["step"], 4
    logged, reference_log = logged_losses(results), logged_losses(uninterrupted)
    assert list(logged) == [s for s in reference_log if s > start] and list(logged)[0] == start - start % every + every
    assert all(logged[s] == reference_log[s] for s in list(logged)[1:])  # a whole interval after resume
    mine, theirs = encoder_state(results), encoder_state(uninterrupted)
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert not list((results / "checkpoints").glob("*/ckpt-*.pt"))  # removed once complete


def test_sigterm_checkpoints_at_the_next_step_records_interrupted_and_resumes(tmp_path, uninterrupted):
    results = tmp_path / "terminated"
    proc = start_and_interrupt(results, signal.SIGTERM, after_checkpoints=1)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr.read()[-2000:]
    (folder,) = (results / "runs").glob("[0-9]*")
    assert json.loads((folder / "run.json").read_text())["status"] == "INTERRUPTED"
    assert len(list((results / "checkpoints").glob("*/ckpt-*.pt"))) >= 1
    assert main([*GRID, "--results-dir", str(results)]) == 0
    resumed = completed(results)
    assert scores(resumed) == scores(completed(uninterrupted))
    mine, theirs = encoder_state(results), encoder_state(uninterrupted)
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_a_corrupt_checkpoint_is_set_aside_and_the_previous_one_used(tmp_path, uninterrupted, capsys):
    results = tmp_path / "corrupt"
    start_and_interrupt(results, signal.SIGKILL, after_checkpoints=3)
    checkpoints = sorted((results / "checkpoints").glob("*/ckpt-*.pt"))
    assert len(checkpoints) == 2  # the two newest are kept
    newest = checkpoints[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated
    assert main([*GRID, "--results-dir", str(results)]) == 0
    out = capsys.readouterr()
    assert sum("unreadable" in line for line in (out.out + out.err).splitlines()) == 1
    assert newest.with_suffix(".corrupt").exists()
    resumed = completed(results)
    assert scores(resumed) == scores(completed(uninterrupted))
    mine, theirs = encoder_state(results), encoder_state(uninterrupted)
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_two_identical_invocations_started_together_run_each_configuration_once(tmp_path):
    """Run claims: two copies of one command on one results folder. Every configuration is
    executed exactly once, and the store holds one COMPLETED run per configuration."""
    results = tmp_path / "shared"
    grid = [*GRID[:3], "byol,random-init", "--seeds", "0,1", *GRID[6:-4], "--results-dir", str(results)]
    procs = [subprocess.Popen([sys.executable, "-c", CLI, *grid], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    statuses = {}
    for folder in (results / "runs").glob("[0-9]*"):
        config = json.loads((folder / "config.json").read_text())
        statuses.setdefault(config["run_hash"], []).append(json.loads((folder / "run.json").read_text())["status"])
    assert len(statuses) == 4
    assert all(v == ["COMPLETED"] for v in statuses.values()), statuses
    assert not list((results / "claims").glob("*.json"))  # every claim released
