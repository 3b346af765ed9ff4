"""The CLI end to end on tiny settings: Sacred runs on disk, result contract, skip, failures,
and bad input (exit 2, one line, nothing written)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from byol_bench.cli import main
from byol_bench.method import METHODS

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", str(ROOT / "configs/smoke.yaml"), "--set", "backbone.width=4",
        "--set", "byol.proj_hidden=16", "--set", "byol.pred_hidden=16", "--set", "byol.proj_dim=8"]


def run_cli(tmp_path, *args):
    return main([*TINY, "--results-dir", str(tmp_path / "results"), *args])


def run_folders(tmp_path):
    runs = tmp_path / "results" / "runs"
    return sorted((p for p in runs.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)) if runs.exists() else []


def test_end_to_end_writes_sacred_runs_and_leaderboard_then_skips(tmp_path, capsys):
    assert run_cli(tmp_path, "--methods", "byol,random-init", "--seeds", "0,1") == 0
    folders = run_folders(tmp_path)
    assert len(folders) == 4
    for folder in folders:
        run = json.loads((folder / "run.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        assert run["status"] == "COMPLETED"
        assert {"dataset", "method", "seed", "run_hash"} <= set(config)
        result = run["result"]
        for key in ("linear/accuracy", "linear/balanced_accuracy", "knn/accuracy",
                    "cost/pretrain_img_per_s", "cost/peak_mem_mb", "cost/wall_s"):
            assert isinstance(result[key], float), key
        assert 0.0 <= result["linear/accuracy"] <= 1.0
        if config["method"] == "byol":
            metrics = json.loads((folder / "metrics.json").read_text())
            assert len(metrics["train/loss"]["values"]) == 1
            assert result["cost/pretrain_img_per_s"] > 0
    board = (tmp_path / "results" / "LEADERBOARD.md").read_text()
    assert "| byol" in board and "| random-init" in board
    records = json.loads((tmp_path / "results" / "leaderboard.json").read_text())
    assert {r["method"] for r in records} == {"byol", "random-init"}
    capsys.readouterr()

    # The same command again: everything is skipped, nothing new on disk.
    assert run_cli(tmp_path, "--methods", "byol,random-init", "--seeds", "0,1") == 0
    assert "0 completed, 0 failed, 4 skipped" in capsys.readouterr().out
    assert len(run_folders(tmp_path)) == 4

    # A changed setting is a different run; the leaderboard can be rebuilt from the store alone.
    assert run_cli(tmp_path, "--methods", "random-init", "--seeds", "1", "--dry-run") == 0
    assert "1 runs in the grid: 0 to pretrain and evaluate, 0 to evaluate from a saved encoder, " \
        "1 already completed" in capsys.readouterr().out
    assert main(["--leaderboard", "--results-dir", str(tmp_path / "results")]) == 0


def test_failed_run_is_recorded_and_the_grid_goes_on(tmp_path, capsys):
    byol = METHODS.get("byol")
    if "test-nan" not in METHODS:
        class NanLoss(byol):
            """A method whose loss is NaN (test only)."""
            def extra_loss(self, out, ctx):
                return torch.tensor(float("nan")), {}
        METHODS.add("test-nan", NanLoss)
    assert run_cli(tmp_path, "--methods", "test-nan,random-init", "--seeds", "1") == 0
    statuses = {json.loads((f / "config.json").read_text())["method"]: json.loads((f / "run.json").read_text())
                for f in run_folders(tmp_path)}
    assert statuses["test-nan"]["status"] == "FAILED"
    assert "non-finite training loss" in statuses["test-nan"]["fail_trace"][-1]
    assert statuses["random-init"]["status"] == "COMPLETED"
    out = capsys.readouterr().out
    assert "1 completed, 1 failed" in out
    board = (tmp_path / "results" / "LEADERBOARD.md").read_text()
    assert "Failed runs" in board and "non-finite training loss" in board


BAD_INPUT = [
    (["--methods", "byol,moco"], "unknown method 'moco'; valid methods: "),
    (["--datasets", "mnistt"], "unknown dataset 'mnistt'; valid datasets: "),
    (["--protocols", "linear,svm"], "unknown protocol 'svm'; valid protocols: "),
    (["--set", "pretrain.epoch=3"], "unknown config key 'pretrain.epoch'"),
    (["--set", "pretrain.epochs"], "malformed --set"),
    (["--set", "pretrain.epochs=many"], "wants a int"),
    (["--config", "no/such.yaml"], "cannot read config file no/such.yaml"),
    (["--seeds", "two"], "--seeds wants a count"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--set", "method_options.byol.lam=1"], "unknown option(s) lam for method 'byol'"),
    (["--set", "eval.transfer.pairs=[digits]"], "must look like 'chestxray14->pneumonia'"),
]


@pytest.mark.parametrize("args, message", BAD_INPUT)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(ROOT)
    results = tmp_path / "results"
    assert main(["--results-dir", str(results), *args]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert not results.exists()


@pytest.mark.parametrize("pair", ["isic->dermamnist", "isic2019 -> dermamnist"])
def test_transfer_pair_sharing_an_image_source_exits_2_with_one_line(tmp_path, capsys, pair):
    """ISIC 2019 contains HAM10000, which is DermaMNIST: refused before anything runs or loads."""
    results = tmp_path / "results"
    assert main([*TINY, "--results-dir", str(results), "--datasets", "digits",
                 "--set", f"eval.transfer.pairs=['chestxray14->pneumonia', '{pair}']"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "is not a transfer" in lines[0], lines[0]
    assert "isic and dermamnist share the image source HAM10000" in lines[0], lines[0]
    assert not results.exists()


def test_medical_paper_config_has_no_leaking_transfer_pair(capsys):
    """The shipped config resolves (its pairs pass the source check) and no longer holds isic->dermamnist."""
    from byol_bench.config import load_config
    from byol_bench.plan.grid import resolve_selection
    cfg = load_config(ROOT / "configs/medical-paper.yaml")
    assert cfg["eval"]["transfer"]["pairs"] == ["chestxray14->pneumonia"]
    resolve_selection(cfg)


@pytest.mark.parametrize("args, message", [BAD_INPUT[0], BAD_INPUT[8]])
def test_bad_input_from_the_shell_has_no_traceback(tmp_path, args, message):
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(ROOT / "run_bench.py"), "--results-dir", str(results), *args],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not results.exists()


def test_list_shows_every_registry():
    proc = subprocess.run([sys.executable, str(ROOT / "run_bench.py"), "--list"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0
    for word in ("methods:", "byol", "random-init", "supervised", "datasets:", "digits",
                 "protocols:", "linear", "knn", "backbones:", "resnet50"):
        assert word in proc.stdout
