"""A run whose encoder another invocation is pretraining waits for it (issue 10): started while
the plain grid trains, the same grid with another evaluation (`eval.knn.k=5`: another run
hash, the same pretrain_hash) trains nothing and evaluates the encoder the first one saved.
Bounded: the first invocation has a hard timeout, the second a SIGALRM deadline."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bounded import deadline
from byol_bench.cli import main
from byol_bench.run import encoder_wait

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--config", str(ROOT / "configs/smoke.yaml"), "--methods", "byol", "--set", "backbone.width=4",
        "--set", "byol.proj_hidden=16", "--set", "byol.pred_hidden=16", "--set", "byol.proj_dim=8",
        "--set", "pretrain.epochs=20", "--set", "run.checkpoint_every_min=0"]
CLI = "import sys\nfrom byol_bench.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def test_a_run_waits_for_the_encoder_another_invocation_is_pretraining(tmp_path, capsys, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setattr(encoder_wait, "WAIT_POLL_S", 0.2)
    first = subprocess.Popen([sys.executable, "-c", CLI, *GRID, "--results-dir", str(results)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 120
        while not list((results / "checkpoints").glob("*/ckpt-*.pt")):  # it is pretraining
            if time.monotonic() > end or first.poll() is not None:
                pytest.fail(f"the first invocation never checkpointed: {first.communicate(timeout=60)[1][-2000:]}")
            time.sleep(0.05)

        with deadline(120):
            assert main([*GRID, "--set", "eval.knn.k=5", "--results-dir", str(results)]) == 0
        assert first.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
    out = capsys.readouterr()
    assert "waiting for encoder" in out.out + out.err
    runs = {}
    for folder in (results / "runs").glob("[0-9]*"):
        config = json.loads((folder / "config.json").read_text())
        runs[config["eval"]["knn"]["k"]] = {"id": folder.name, "run": json.loads((folder / "run.json").read_text()),
                                           "info": json.loads((folder / "info.json").read_text())}
    assert sorted(runs) == [5, 20]
    assert all(r["run"]["status"] == "COMPLETED" for r in runs.values())
    assert runs[20]["info"]["pretrain_steps"] == 20 * 16
    assert runs[5]["info"]["pretrain_steps"] == 0  # trained nothing: evaluated the other's encoder
    assert runs[5]["info"]["pretrained_by"]["run_id"] == runs[20]["id"]
    assert len(list((results / "encoders").glob("*.safetensors"))) == 1
    assert not list((results / "claims").glob("*.json"))
