"""Issue 15, item 12 (full disk): a write that fails for want of space says so and where
("no space left on device writing <path>"). A periodic checkpoint that cannot be written is a
one-line warning and training goes on; an encoder that cannot be saved fails the run with that
message, and the same command succeeds once there is room.

The full disk is real: a tiny tmpfs (mounted as root), filled up, on the store folder under test;
skipped with the reason where mounting is not permitted."""
import json
import subprocess
from pathlib import Path

import pytest
import torch

from byol_bench.cli import main
from byol_bench.store.atomic_io import atomic_torch_save

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--config", str(ROOT / "configs/smoke.yaml"), "--methods", "byol", "--seeds", "1",
        "--set", "backbone.width=4", "--set", "byol.proj_hidden=16", "--set", "byol.pred_hidden=16",
        "--set", "byol.proj_dim=8", "--set", "pretrain.epochs=3", "--set", "run.checkpoint_every_min=0",
        "--set", "eval.linear.max_iter=5"]


def mount_full(folder: Path):
    """A 16 KiB tmpfs on `folder`, filled to the last byte; returns the unmount callable."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip() or done.returncode}")
    try:
        with open(folder / ".filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass
    return lambda: subprocess.run(["umount", str(folder)], check=False)


def run_with_full(results: Path, folder: str) -> None:
    """The grid, exit 0, with `results/folder` on a full disk for the whole command."""
    unmount = mount_full(results / folder)
    try:
        assert main([*GRID, "--results-dir", str(results)]) == 0
    finally:
        unmount()


def runs(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("[0-9]*/run.json"),
                                                      key=lambda p: int(p.parent.name))]


def test_a_full_disk_is_named_with_the_path(tmp_path: Path):
    unmount = mount_full(tmp_path / "full")
    try:
        target = tmp_path / "full" / "x.pt"
        with pytest.raises(OSError) as err:  # DiskFullError: an OSError with errno ENOSPC
            atomic_torch_save(target, {"w": torch.zeros(100_000)})
        assert str(err.value) == f"no space left on device writing {target}" and err.value.errno == 28
        assert sorted(p.name for p in (tmp_path / "full").iterdir()) == [".filler"]  # no temporary left
    finally:
        unmount()


def test_periodic_checkpoints_on_a_full_disk_warn_and_training_goes_on(tmp_path: Path, capsys):
    results = tmp_path / "results"
    run_with_full(results, "checkpoints")
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if "checkpoint not saved" in line]
    assert len(warnings) == 2, out  # after epochs 1 and 2 (none after the last)
    assert "no space left on device writing" in warnings[0] and "training goes on" in warnings[0]
    assert [r["status"] for r in runs(results)] == ["COMPLETED"]


def test_an_encoder_that_cannot_be_saved_fails_the_run_saying_why(tmp_path: Path):
    results = tmp_path / "results"
    run_with_full(results, "encoders")
    (failed,) = runs(results)
    assert failed["status"] == "FAILED"
    reason = failed["fail_trace"][-1]
    assert "no space left on device writing" in reason and str(results / "encoders") in reason, reason
    # With room again the same command completes (resuming from the last checkpoint).
    assert main([*GRID, "--results-dir", str(results)]) == 0
    assert [r["status"] for r in runs(results)] == ["FAILED", "COMPLETED"]
