"""Issue 15, item 12 (read-only results): a benchmark, --leaderboard and --launcher local on a
results folder that cannot be written are one line naming the folder, exit 2, no traceback.

Read-only is made for real: chmod for an ordinary user; for root (who writes through any
mode bits) a read-only tmpfs mounted on the folder, skipped where mounting is not permitted."""
import os
import subprocess
from pathlib import Path

import pytest

from byol_bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", str(ROOT / "configs/smoke.yaml"), "--datasets", "digits", "--methods", "random-init",
        "--seeds", "1"]


@pytest.fixture
def read_only(tmp_path: Path):
    folder = tmp_path / "results"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs as root here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize("argv", [[], ["--leaderboard"], ["--launcher", "local", "--workers", "1"]],
                         ids=["benchmark", "leaderboard", "launcher-local"])
def test_read_only_results_folder_is_one_line(read_only: Path, capsys, argv):
    code = main([*TINY, "--results-dir", str(read_only), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: results folder {read_only} is not writable"), err


def test_a_read_only_folder_inside_the_store_is_found_too(tmp_path: Path, capsys):
    """runs/ read-only in an otherwise writable store (a group folder with one bad mode)."""
    runs = tmp_path / "results" / "runs"
    runs.mkdir(parents=True)
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(runs)]).returncode:
            pytest.skip("cannot mount a read-only tmpfs")
    else:
        runs.chmod(0o555)
    try:
        assert main([*TINY, "--results-dir", str(tmp_path / "results")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"({runs}:" in err and "not writable" in err, err
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(runs)], check=False)
        else:
            runs.chmod(0o755)
