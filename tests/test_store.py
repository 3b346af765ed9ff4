"""The run store as the one source of truth (issue 9): evaluation changes reuse the saved
encoders and train nothing, a killed run shows as interrupted and is run again, and the
leaderboard is rebuilt from the store alone, without the cards or method files that made it."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from byol_bench.cli import main
from byol_bench.store.encoders import load_encoder

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", str(ROOT / "configs/smoke.yaml"), "--set", "backbone.width=4",
        "--set", "byol.proj_hidden=16", "--set", "byol.pred_hidden=16", "--set", "byol.proj_dim=8"]


def runs(results: Path) -> list[dict]:
    out = []
    for folder in sorted((results / "runs").iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1):
        if folder.name.isdigit():
            out.append({"id": folder.name, "config": json.loads((folder / "config.json").read_text()),
                        "run": json.loads((folder / "run.json").read_text()),
                        "info": json.loads((folder / "info.json").read_text()) if (folder / "info.json").exists() else {},
                        "metrics": json.loads((folder / "metrics.json").read_text())})
    return out


def test_changed_evaluation_reuses_the_saved_encoders_and_trains_nothing(tmp_path, capsys):
    """Smoke grid, then the same with eval.knn.k=5, then with the semi protocol added: the
    second and third commands run zero pretraining steps (the store says so), and their
    results equal a fresh run with those settings. All three protocols here are deterministic
    at a given seed (L-BFGS, kNN, and fine-tuning drawn from the run seed), so 'equal' is exact."""
    store = tmp_path / "store"
    grid = [*TINY, "--methods", "byol,random-init", "--seeds", "1", "--results-dir"]
    assert main([*grid, str(store)]) == 0
    first = runs(store)
    assert all(r["info"]["pretrain_steps"] > 0 for r in first if r["config"]["method"] == "byol")
    encoders = sorted((store / "encoders").glob("*.safetensors"))
    assert len(encoders) == 2 and all(load_encoder(p) is not None for p in encoders)

    capsys.readouterr()
    assert main([*grid, str(store), "--set", "eval.knn.k=5", "--dry-run"]) == 0
    assert "0 to pretrain and evaluate, 2 to evaluate from a saved encoder" in capsys.readouterr().out
    for i, extra in enumerate((["--set", "eval.knn.k=5"],
                  ["--set", "eval.knn.k=5", "--protocols", "linear,knn,semi", "--set", "eval.semi.fractions=[50]",
                   "--set", "eval.finetune.epochs=2"])):
        fresh = tmp_path / f"fresh{i}"
        before = len(runs(store))
        assert main([*grid, str(store), *extra]) == 0
        assert main([*grid, str(fresh), *extra]) == 0
        new = runs(store)[before:]
        assert len(new) == 2
        for r in new:
            assert r["run"]["status"] == "COMPLETED"
            assert r["info"]["pretrain_steps"] == 0 and r["info"]["pretrained_by"]["run_id"]
            twin = next(f for f in runs(fresh) if f["config"]["method"] == r["config"]["method"])
            assert twin["info"]["pretrain_steps"] > 0 or r["config"]["method"] == "random-init"
            scores = {k: v for k, v in r["run"]["result"].items() if not k.startswith("cost/")}
            assert scores == {k: v for k, v in twin["run"]["result"].items() if not k.startswith("cost/")}
            if r["config"]["method"] == "byol":  # the pretraining's curves travel with the encoder
                assert r["metrics"]["train/loss"]["values"] == twin["metrics"]["train/loss"]["values"]
    assert len(list((store / "encoders").glob("*.safetensors"))) == 2


KILLABLE = """
import sys
from byol_bench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_run_shows_as_interrupted_and_is_run_again(tmp_path, capsys):
    results = tmp_path / "results"
    args = [*TINY, "--methods", "byol", "--seeds", "1", "--results-dir", str(results), "--set", "run.heartbeat_s=0.25",
            "--set", "pretrain.epochs=200", "--set", "run.stale_after_s=1"]
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # wait until the run is RUNNING and training
            found = list((results / "runs").glob("[0-9]*/metrics.json"))
            if found and json.loads(found[0].read_text()).get("train/loss"):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the run never started training")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    time.sleep(1.5)
    killed = runs(results)
    assert len(killed) == 1 and killed[0]["run"]["status"] == "RUNNING"  # what Sacred left behind

    assert main([*args, "--leaderboard"]) == 0
    board = (results / "LEADERBOARD.md").read_text()
    assert "INTERRUPTED" in board and "no heartbeat" in board
    capsys.readouterr()
    assert main([*args, "--dry-run"]) == 0
    assert f"re-runs interrupted run {killed[0]['id']}" in capsys.readouterr().out
    assert main([*args, "--status"]) == 0
    status = capsys.readouterr().out
    assert status.startswith("interrupted") and "0 done, 0 evaluating, 0 running, 1 interrupted" in status

    assert main([*args[:-4], "--set", "run.stale_after_s=1"]) == 0  # the same grid, 1 epoch
    after = runs(results)
    assert [r["run"]["status"] for r in after][-1] == "COMPLETED"


def test_the_leaderboard_is_rebuilt_from_the_store_alone(tmp_path):
    """A store with three methods on two datasets, one also a transfer target; then a copy of
    the checkout without the reference rows' method file and without that dataset's card
    rebuilds a byte-identical leaderboard (apart from the generation time). Read from today's
    registry, random-init would lose its reference role and pneumonia its primary metric
    (balanced accuracy, not the fallback accuracy)."""
    from fixtures_data import make_pneumonia

    data = tmp_path / "data"
    make_pneumonia(data)
    results = tmp_path / "results"
    assert main([*TINY, "--methods", "byol,byol-nn,random-init", "--datasets", "digits,pneumonia", "--seeds", "0,1",
                 "--protocols", "linear,knn,transfer", "--set", "eval.transfer.pairs=[digits->pneumonia]",
                 "--set", "eval.transfer.protocols=[linear]", "--set", "data.image_size=16",
                 "--data-root", str(data), "--results-dir", str(results)]) == 0
    assert main([*TINY, "--leaderboard", "--results-dir", str(results)]) == 0
    with_all = (results / "LEADERBOARD.md").read_text(), (results / "leaderboard.json").read_text()
    assert "transfer-pneumonia-linear" in with_all[0] and "balanced_accuracy" in with_all[0]

    checkout = tmp_path / "checkout"
    at_root = {".git", "results", "data"}  # the checkout's own, not harness/data
    shutil.copytree(ROOT, checkout, ignore=lambda folder, names: [
        n for n in names if n == "__pycache__" or n.startswith(".venv") or (folder == str(ROOT) and n in at_root)])
    (checkout / "methods" / "reference.py").unlink()
    (checkout / "datasets" / "pneumonia.yaml").unlink()
    copy_results = tmp_path / "copy-results"
    shutil.copytree(results / "runs", copy_results / "runs")
    proc = subprocess.run([sys.executable, "run_bench.py", "--leaderboard", "--results-dir", str(copy_results)],
                          cwd=checkout, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(checkout)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    without = (copy_results / "LEADERBOARD.md").read_text(), (copy_results / "leaderboard.json").read_text()

    def undated(markdown: str) -> list[str]:
        return [line for line in markdown.splitlines() if not line.startswith("Generated ")]

    assert undated(without[0]) == undated(with_all[0])
    assert without[1] == with_all[1]
